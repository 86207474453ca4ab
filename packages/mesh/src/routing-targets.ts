/**
 * What a route decision does to the target it sends a request to: the route's timeout and retry
 * settings as a policy layer over the target service's, the target's endpoints narrowed to its
 * subset, the route's edits of the response headers, and the targets' stats. The routing stage
 * (routing-stage.ts) decides; these are applied per target.
 */

import type { LoadBalancerPatch } from '@proxyless/balancer';
import {
  type Clock,
  type Disposable,
  type Endpoint,
  type EndpointSet,
  ForwardingHandler,
  Issues,
  KEEP_ALIVE,
  MeshError,
  type MeshHandler,
  type Resolver,
  type ResolverListener,
  type Timer,
} from '@proxyless/core';
import type { Dispatcher } from 'undici';
import type { TargetStats } from './api.js';
import { type Layer, parsePolicyPatch } from './config/layers.js';
import type { Destination } from './destination.js';
import {
  applyHeaderOps,
  type ChainTarget,
  type HeaderOps,
  type RouteDecision,
  type RoutingChain,
  subsetOf,
} from './routing/index.js';

/** A route's timeout and retry settings as a policy layer (the resilience keys of a service entry). */
export interface RouteOverrides {
  readonly key: string;
  readonly patch: Record<string, unknown>;
}

/**
 * A layer of config entries over a service's own (the resolver's `LoadBalancer`, a route's
 * settings): validated when the entries were; provenance shows it as the service's own layer.
 */
export function entryLayer(patch: Layer['patch']): Layer {
  return { name: 'file.services', version: 0, raw: undefined, patch };
}

/** A route's `RequestTimeout` / `NumRetries` / `RetryOn…` as a layer over its target's config. */
export function routeLayer(route: RouteOverrides): Layer {
  return entryLayer(parsePolicyPatch(route.patch, 'route settings', new Issues()));
}

/** Consul `RetryOn` values the retry stage knows (others are Envoy gRPC conditions: ignored). */
const RETRY_ON = new Set(['5xx', 'gateway-error', 'reset', 'connect-failure', 'refused-stream']);

const overridesCache = new WeakMap<RouteDecision, RouteOverrides | null>();

/**
 * The route-level `RequestTimeout` / `NumRetries` / `RetryOn…` of a decision as a policy layer
 * over the target service's own (Consul: route settings replace the service's for the route).
 * `undefined` when the decision sets none. Memoised per (frozen, shared) decision.
 */
export function routeOverrides(decision: RouteDecision): RouteOverrides | undefined {
  const cached = overridesCache.get(decision);
  if (cached !== undefined) return cached ?? undefined;
  const patch: Record<string, unknown> = {};
  if (decision.requestTimeoutMs !== undefined && decision.requestTimeoutMs > 0)
    patch.timeout = decision.requestTimeoutMs;
  const r = decision.retry;
  if (r) {
    const retryOn = r.retryOn.filter((x) => RETRY_ON.has(x));
    if (r.retryOnConnectFailure && !retryOn.includes('connect-failure')) retryOn.push('connect-failure');
    if (r.retryOnStatusCodes.length > 0) retryOn.push('retriable-status-codes');
    // The route's conditions replace the service's, none included: Consul gives Envoy `retry_on`
    // from these alone (`getRetryPolicyForDestination`), and an empty one retries nothing.
    patch.retry = {
      maxRetries: r.numRetries ?? 1,
      retryOn,
      ...(r.retryOnStatusCodes.length > 0 ? { retriableStatusCodes: [...r.retryOnStatusCodes] } : {}),
    };
  }
  const out = Object.keys(patch).length > 0 ? { key: JSON.stringify(patch), patch } : undefined;
  overridesCache.set(decision, out ?? null);
  return out;
}

/** A handler that applies response header ops before the caller sees the headers. */
export class ResponseHeaderHandler extends ForwardingHandler {
  readonly #ops: HeaderOps;
  constructor(handler: MeshHandler, ops: HeaderOps) {
    super(handler);
    this.#ops = ops;
  }
  override onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    statusMessage?: string,
  ): void {
    // Envoy edits the final response's headers; a 1xx (103 Early Hints) goes as it came.
    if (statusCode < 200) {
      super.onResponseStart(controller, statusCode, headers as never, statusMessage);
      return;
    }
    const copy = { ...headers };
    applyHeaderOps(copy, this.#ops);
    // The caller's handler reads the controller's raw header lines when it has them: it gets them
    // edited the same way, every line the route does not name as the server sent it (its case, its
    // place among repeated headers).
    const raw = (controller as { rawHeaders?: unknown }).rawHeaders;
    const edited = Array.isArray(raw) ? editRawHeaders(raw as RawLine[], this.#ops) : undefined;
    super.onResponseStart(withRawHeaders(controller, edited), statusCode, copy as never, statusMessage);
  }
}

/**
 * A route's `IdleTimeout` (Envoy's route `idle_timeout`, the stream idle timeout of the route):
 * the call ends when nothing arrives for that long — the response head, then each body chunk —
 * over the whole call, retries included, on the mesh's clock to the millisecond (undici's own
 * `headersTimeout` / `bodyTimeout` run on its fast timers, about a second coarse). It ends the call
 * as a caller's abort would, with `MESH_TIMEOUT` (`limit: 'idle'`): no retry follows, and no
 * endpoint is charged. A body its reader has paused is not idle.
 */
export class IdleTimeoutHandler extends ForwardingHandler {
  readonly #ms: number;
  readonly #clock: Clock;
  readonly #service: string;
  #controller: Dispatcher.DispatchController | undefined;
  #timer: Timer | undefined;
  #last = 0;
  #head = false;

  constructor(handler: MeshHandler, ms: number, clock: Clock, service: string) {
    super(handler);
    this.#ms = ms;
    this.#clock = clock;
    this.#service = service;
  }

  override onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.#controller = controller;
    this.#last = this.#clock.now();
    this.#timer = this.#clock.setTimer(this.#ms, this.#check, KEEP_ALIVE);
    super.onRequestStart(controller, context);
  }

  readonly #check = (): void => {
    this.#timer = undefined;
    const c = this.#controller;
    if (c === undefined || c.aborted) return;
    const quiet = this.#clock.now() - this.#last;
    if (quiet < this.#ms || c.paused) {
      this.#timer = this.#clock.setTimer(
        quiet < this.#ms ? this.#ms - quiet : this.#ms,
        this.#check,
        KEEP_ALIVE,
      );
      return;
    }
    const waiting = this.#head ? 'the next response body chunk' : 'the response head';
    c.abort(
      new MeshError(
        'MESH_TIMEOUT',
        `"${this.#service}": nothing for ${this.#ms} ms waiting for ${waiting} (the route's IdleTimeout)`,
        { details: { service: this.#service, limit: 'idle', phase: this.#head ? 'response' : 'request' } },
      ),
    );
  };

  #stop(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  override onRequestUpgrade(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    socket: Parameters<ForwardingHandler['onRequestUpgrade']>[3],
  ): void {
    this.#stop();
    super.onRequestUpgrade(controller, statusCode, headers as never, socket);
  }

  override onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    statusMessage?: string,
  ): void {
    if (statusCode >= 200) this.#head = true;
    this.#last = this.#clock.now();
    super.onResponseStart(controller, statusCode, headers as never, statusMessage);
  }

  override onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#last = this.#clock.now();
    super.onResponseData(controller, chunk);
  }

  override onResponseEnd(
    controller: Dispatcher.DispatchController,
    trailers: Record<string, string | string[] | undefined>,
  ): void {
    this.#stop();
    super.onResponseEnd(controller, trailers as never);
  }

  override onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    this.#stop();
    super.onResponseError(controller, error);
  }
}

type RawLine = Buffer | string;

/**
 * Raw header lines (`[name, value, …]`) with a route's edits: lines of a removed or set name (any
 * case) dropped, then the set and added ones appended, as {@link applyHeaderOps} does to a record.
 */
export function editRawHeaders(raw: readonly RawLine[], ops: HeaderOps): Buffer[] {
  const drop = new Set([...ops.remove, ...ops.set.map(([k]) => k)]);
  const out: Buffer[] = [];
  const bytes = (v: RawLine): Buffer => (typeof v === 'string' ? Buffer.from(v, 'latin1') : v);
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as RawLine;
    const text = typeof name === 'string' ? name : name.toString('latin1');
    if (drop.has(text.toLowerCase())) continue;
    out.push(bytes(name), bytes(raw[i + 1] as RawLine));
  }
  for (const [k, v] of [...ops.set, ...ops.add]) out.push(Buffer.from(k, 'latin1'), Buffer.from(v, 'latin1'));
  return out;
}

/** The controller, with `rawHeaders` replaced (methods still act on the real one). */
function withRawHeaders(
  controller: Dispatcher.DispatchController,
  rawHeaders: Buffer[] | undefined,
): Dispatcher.DispatchController {
  return new Proxy(controller, {
    get(target, prop) {
      if (prop === 'rawHeaders') return rawHeaders;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/**
 * A resolver that narrows another resolver's endpoints of the target's service to the target's
 * subset (its bexpr filter; critical endpoints never, warning ones unless `OnlyPassing`).
 */
export function subsetResolver(inner: Resolver, target: ChainTarget): Resolver {
  const narrow = (set: EndpointSet): EndpointSet =>
    Object.freeze({ ...set, endpoints: subsetOf(set.endpoints, target) as readonly Endpoint[] });
  return {
    name: inner.name,
    match: (host) => inner.match(host),
    watch(service: string, listener: ResolverListener): Disposable {
      return inner.watch(service, (u) => {
        if (u.kind === 'endpoints') listener({ kind: 'endpoints', set: narrow(u.set) });
        else listener({ ...u, lastGood: u.lastGood ? narrow(u.lastGood) : undefined });
      });
    },
    ...(inner.refresh ? { refresh: (service: string) => inner.refresh?.(service) } : {}),
    // The inner resolver belongs to the mesh.
    close: () => Promise.resolve(),
  };
}

/** `<namespace>.<partition>.<datacenter>` of a target's ID (`''` when the ID is not of that form). */
function placeOf(t: ChainTarget): string {
  const prefix = t.subset !== '' ? `${t.subset}.${t.service}.` : `${t.service}.`;
  return t.id.startsWith(prefix) ? t.id.slice(prefix.length) : '';
}

/** The place of each chain's own service (see {@link isLocalWholeService}); `null`: none found. */
const localPlaces = new WeakMap<RoutingChain, string | null>();

/**
 * Whether a target of `chain` is a whole service in the chain's own namespace, partition and
 * datacenter, with no subset, `OnlyPassing` or `LoadBalancer` of its resolver: the cluster a direct
 * call to that service uses (Consul names both the same, and Envoy has one cluster for them).
 */
export function isLocalWholeService(
  chain: RoutingChain,
  target: ChainTarget,
  loadBalancer: LoadBalancerPatch | undefined,
): boolean {
  if (target.subset !== '' || target.filter !== '' || target.onlyPassing || loadBalancer !== undefined)
    return false;
  if (target.datacenter !== chain.datacenter) return false;
  let local = localPlaces.get(chain);
  if (local === undefined) {
    local = null;
    for (const t of chain.targets.values()) {
      if (t.service !== chain.service || t.datacenter !== chain.datacenter) continue;
      local = placeOf(t) || null;
      break;
    }
    localPlaces.set(chain, local);
  }
  return local !== null && placeOf(target) === local;
}

/**
 * The routing target ID a target destination's key starts with (`DestinationTable.targetDestination`
 * keys them `<id>|<filter>|…`: a target redefined by a new config version has another).
 */
export function targetIdOf(key: string): string {
  return key.slice(0, key.indexOf('|'));
}

/**
 * The destinations of a chain's targets built so far, by target ID: routed calls go through these
 * (one per target and subset definition; several of one target are summed into its in-flight count).
 */
export function targetStats(
  chain: RoutingChain,
  destinations: ReadonlyMap<string, Destination>,
): Record<string, TargetStats> {
  const out: Record<string, TargetStats> = {};
  for (const [key, t] of destinations) {
    const id = targetIdOf(key);
    if (!chain.targets.has(id)) continue;
    const prev = out[id];
    if (prev !== undefined) {
      out[id] = { ...prev, inFlight: prev.inFlight + t.inFlight };
      continue;
    }
    const breaker = t.circuitBreakerState;
    out[id] = {
      ...t.balancer.stats(),
      ...(breaker ? { circuitBreaker: breaker } : {}),
      roles: [...t.roles, 'pick'],
      inFlight: t.inFlight,
    };
  }
  return out;
}
