/**
 * The routing stage: for a service with a compiled chain (config entries from the file, etcd or
 * Consul), each request is routed (route → split → target, see ./routing) before it enters a
 * destination stack. Every target (service + subset) has a destination of its own — its own
 * balancer, outlier state, breaker and pools, Envoy's cluster of the target — whose endpoints are
 * the target service's endpoints narrowed by the subset filter. A route's timeout and retry
 * settings apply to the calls it sends there, over that one destination's other stages.
 *
 * Services without a chain never reach this module: the mesh checks one map first.
 */

import { stringify as stringifyQuery } from 'node:querystring';
import type { LoadBalancerPatch } from '@proxyless/balancer';
import {
  type Clock,
  copyOptions,
  failDispatch,
  hasHeader,
  type MeshHandler,
  type Random,
  RelayController,
  RelayedHandler,
  withHeader,
} from '@proxyless/core';
import type { Dispatcher } from 'undici';
import { type CallCounter, CallHandler } from './call-handler.js';
import type { Destination } from './destination.js';
import { hostOf } from './naming.js';
import { DispatchRequest, IDEMPOTENT_HEADER } from './request.js';
import {
  type ChainTarget,
  editRequestHeaders,
  type RouteDecision,
  type RoutingChain,
  type RoutingConfig,
  rewritePath,
  route,
  routeRequestOf,
} from './routing/index.js';
import {
  IdleTimeoutHandler,
  ResponseHeaderHandler,
  type RouteOverrides,
  routeOverrides,
} from './routing-targets.js';

/** Where config entries came from; a later source wins for a service (file < etcd < consul). */
export type RoutingSourceName = 'file' | 'etcd' | 'consul';

const SOURCES: readonly RoutingSourceName[] = ['file', 'etcd', 'consul'];

/** Request counts of a routed service: per route (by index; -1: no router) and per target ID. */
export interface RoutingStats {
  readonly routes: Readonly<Record<string, number>>;
  readonly targets: Readonly<Record<string, number>>;
}

/** What the stage needs from the mesh. */
export interface RoutingStageDeps {
  random: Random;
  /** For a route's `IdleTimeout`. */
  clock: Clock;
  /** The destination of a target: its resolver's `LoadBalancer` (mapped) goes over the target service's own policy. */
  targetDestination(
    target: ChainTarget,
    loadBalancer: LoadBalancerPatch | undefined,
    chain: RoutingChain,
  ): Destination;
  /**
   * Send through a destination (the mesh's own `#send`); `route`: the route's timeout and retry
   * settings, over the destination's policy for this call.
   */
  send(
    dest: Destination,
    opts: Dispatcher.DispatchOptions,
    headers: Dispatcher.DispatchOptions['headers'],
    handler: MeshHandler,
    request: DispatchRequest,
    route: RouteOverrides | undefined,
    owner: CallCounter | undefined,
  ): boolean;
  /** Whether the logical `Host` header is set (`hostHeader: 'logical'`). */
  logicalHost: boolean;
}

/**
 * Routing state of a mesh: the chains in force per source, merged into one map swapped as a whole
 * on every accepted version (a request reads it once, so it finishes on the route it started with).
 */
export class RoutingStage {
  readonly #deps: RoutingStageDeps;
  readonly #bySource = new Map<RoutingSourceName, ReadonlyMap<string, RoutingChain>>();
  /** Services with a non-default chain. Empty map: nothing is routed. */
  chains: ReadonlyMap<string, RoutingChain> = new Map();
  readonly #stats = new Map<string, { routes: Map<number, number>; targets: Map<string, number> }>();

  constructor(deps: RoutingStageDeps) {
    this.#deps = deps;
  }

  /** Replace a source's chains with those of a compiled config (services with entries only). */
  setConfig(source: RoutingSourceName, config: RoutingConfig | undefined): void {
    const map = new Map<string, RoutingChain>();
    if (config) {
      for (const service of config.services) {
        const chain = config.chain(service);
        if (!chain.isDefault) map.set(service, chain);
      }
    }
    this.#bySource.set(source, map);
    this.#merge();
  }

  /** Set (or with `undefined` remove) one service's chain from a source that compiles per service. */
  setChain(source: RoutingSourceName, service: string, chain: RoutingChain | undefined): void {
    const map = new Map(this.#bySource.get(source) ?? []);
    if (chain && !chain.isDefault) map.set(service, chain);
    else map.delete(service);
    this.#bySource.set(source, map);
    this.#merge();
  }

  #merge(): void {
    const merged = new Map<string, RoutingChain>();
    for (const s of SOURCES) for (const [k, v] of this.#bySource.get(s) ?? []) merged.set(k, v);
    this.chains = merged;
    this.#pruneStats();
  }

  /**
   * Counts of what the chains in force no longer have go: a service no longer routed (a service
   * routed again starts from zero), and a route or target an earlier version of a chain had (a
   * config churning its targets would otherwise keep every one it ever named).
   */
  #pruneStats(): void {
    const byService = new Map<string, RoutingChain>();
    for (const chain of this.chains.values()) byService.set(chain.service, chain);
    for (const [service, s] of this.#stats) {
      const chain = byService.get(service);
      if (chain === undefined) {
        this.#stats.delete(service);
        continue;
      }
      for (const id of s.targets.keys()) if (!chain.targets.has(id)) s.targets.delete(id);
      for (const index of s.routes.keys()) if (index >= chain.routes.length) s.routes.delete(index);
    }
  }

  /** Per-route and per-target request counts of a routed service. */
  stats(service: string): RoutingStats | undefined {
    const s = this.#stats.get(service);
    if (!s) return undefined;
    return {
      routes: Object.fromEntries([...s.routes].map(([k, v]) => [String(k), v])),
      targets: Object.fromEntries(s.targets),
    };
  }

  #count(service: string, decision: RouteDecision, target: ChainTarget): void {
    let s = this.#stats.get(service);
    if (!s) {
      s = { routes: new Map(), targets: new Map() };
      this.#stats.set(service, s);
    }
    s.routes.set(decision.routeIndex, (s.routes.get(decision.routeIndex) ?? 0) + 1);
    s.targets.set(target.id, (s.targets.get(target.id) ?? 0) + 1);
  }

  /**
   * Route one request of `chain`'s service: decide, fail over to the first target with endpoints
   * when the chosen one has none, rewrite the path, apply header ops, and send it to the target's
   * destination.
   */
  dispatch(
    chain: RoutingChain,
    opts: Dispatcher.DispatchOptions,
    origin: string,
    handler: MeshHandler,
    /** The routed service's own destination, which counts the call in flight too. */
    owner?: CallCounter,
  ): boolean {
    const decision = route(
      chain,
      routeRequestOf(opts.method, pathAsSent(opts), opts.headers),
      this.#deps.random,
    );
    const overrides = routeOverrides(decision);
    // Failover needs to know whether the primary has endpoints: a primary not resolved yet (the
    // first calls after start or after a config change) is waited for before choosing.
    if (decision.resolver.failover.length > 0) {
      const primary = this.#deps.targetDestination(decision.target, decision.resolver.loadBalancer, chain);
      if (primary.endpointSet === undefined) {
        this.#waitForPrimary(primary, chain, decision, overrides, owner, opts, origin, handler);
        return true;
      }
    }
    return this.#send(chain, decision, overrides, owner, opts, origin, handler);
  }

  /**
   * Wait (up to the resolve timeout) for a primary not resolved yet, then choose: the wait is the
   * call's — its handler started, with a controller whose abort ends the wait at once with the
   * reason — and a primary still unresolved after it counts as one with no endpoints (failover).
   */
  #waitForPrimary(
    primary: Destination,
    chain: RoutingChain,
    decision: RouteDecision,
    overrides: RouteOverrides | undefined,
    owner: CallCounter | undefined,
    opts: Dispatcher.DispatchOptions,
    origin: string,
    handler: MeshHandler,
  ): void {
    // Tracked by the primary while it waits: a graceful close drains it, its deadline aborts it.
    let caller: MeshHandler;
    try {
      // With the headers: a call the wait ends unanswered gets undici's error for headers undici
      // would have refused (CallHandler's precheck), as one sent at once does.
      caller = primary.track(new CallHandler(handler, undefined, opts.headers));
    } catch (error) {
      failDispatch(new CallHandler(handler, undefined, opts.headers), error as Error);
      return;
    }
    // In flight while it waits, as a call sent is (idle release, `stats().inFlight`): on the primary,
    // and on the routed service's own destination when that is another one. Sent, it is counted
    // where it goes (`send`).
    const counters: CallCounter[] = owner !== undefined && owner !== primary ? [primary, owner] : [primary];
    for (const c of counters) c.inFlight++;
    const uncount = (): void => {
      for (const c of counters.splice(0)) c.inFlight--;
    };
    let waiting = true;
    let cancel: (() => void) | undefined;
    const relay = new RelayController((reason) => {
      if (relay.inner !== undefined) relay.inner.abort(reason);
      else if (waiting) {
        waiting = false;
        uncount();
        cancel?.();
        caller.onResponseError?.(relay, reason);
      }
    });
    caller.onRequestStart?.(relay, {});
    // Aborted already: the abort above ended the wait (and its count).
    if (relay.aborted) return;
    cancel = primary.whenResolved(() => {
      if (!waiting) return;
      waiting = false;
      uncount();
      const relayed = new RelayedHandler(caller, relay);
      try {
        this.#send(chain, decision, overrides, owner, opts, origin, relayed, true);
      } catch (error) {
        caller.onResponseError?.(relay, error as Error);
      }
    });
  }

  #send(
    chain: RoutingChain,
    decision: RouteDecision,
    overrides: RouteOverrides | undefined,
    owner: CallCounter | undefined,
    opts: Dispatcher.DispatchOptions,
    origin: string,
    handler: MeshHandler,
    waited = false,
  ): boolean {
    const { target, dest } = this.#select(chain, decision, waited);
    if (waited && target === decision.target && dest.endpointSet === undefined) {
      // Waited for already, and no failover target has endpoints either: no second wait.
      failDispatch(handler, dest.noAnswerError());
      return true;
    }
    // The routed request's headers: the caller's as written, with the logical Host of the target
    // and the route's and split's edits; the mesh's idempotency flag is read, then removed. A
    // header undici would refuse is refused here when the route drops it (undici's error).
    let headers: Dispatcher.DispatchOptions['headers'];
    try {
      headers = editRequestHeaders(
        opts.headers,
        decision.requestHeaders,
        this.#deps.logicalHost ? logicalHost(origin, target.service) : undefined,
      );
    } catch (error) {
      // The caller's handler may be undici's older kind (`request()`'s): CallHandler speaks both.
      failDispatch(waited ? handler : new CallHandler(handler), error as Error);
      return true;
    }
    this.#count(chain.service, decision, target);
    // A rewrite applies to the path as sent: a route's prefix may reach into the query a `query`
    // option adds (`/s?x=` → `/t?y=`), so that query is joined to the path first.
    let path = rewritePath(decision, opts.path);
    let joinedQuery = false;
    if (decision.prefixRewrite !== undefined && opts.query != null) {
      const full = pathAsSent(opts);
      if (full !== opts.path) {
        path = rewritePath(decision, full);
        joinedQuery = true;
      }
    }
    const o = opts as Dispatcher.DispatchOptions & { idempotent?: boolean };
    const sent = copyOptions(opts);
    sent.path = path;
    if (joinedQuery) sent.query = undefined;
    sent.headers = headers;

    const request = new DispatchRequest(sent, origin, o.idempotent);
    if (hasHeader(headers, IDEMPOTENT_HEADER)) {
      // Read from the headers with the flag, then sent without it.
      void request.idempotent;
      headers = withHeader(headers, IDEMPOTENT_HEADER, undefined);
      sent.headers = headers;
    }
    // The route's response edits, then its `IdleTimeout` over the whole call (see IdleTimeoutHandler).
    const idle = decision.idleTimeoutMs;
    let h = handler;
    if (decision.responseHeaders || (idle !== undefined && idle > 0)) h = new CallHandler(handler);
    if (decision.responseHeaders) h = new ResponseHeaderHandler(h, decision.responseHeaders);
    if (idle !== undefined && idle > 0) h = new IdleTimeoutHandler(h, idle, this.#deps.clock, target.service);
    return this.#deps.send(dest, sent, headers, h, request, overrides, owner);
  }

  /**
   * The primary target when its destination has a healthy endpoint (or has not resolved yet);
   * else the first failover target with a healthy endpoint; else the first one still resolving;
   * else the first target with endpoints at all (its balancer in panic); else the primary (which
   * answers `MESH_NO_ENDPOINTS`).
   */
  #select(
    chain: RoutingChain,
    decision: RouteDecision,
    /** The primary was waited for already: still unresolved, it has no endpoints to offer. */
    waited = false,
  ): { target: ChainTarget; dest: Destination } {
    const primary = this.#deps.targetDestination(decision.target, decision.resolver.loadBalancer, chain);
    const set = primary.endpointSet;
    const failover = decision.resolver.failover;
    // Envoy's failover: the next target takes the traffic when this one has no healthy endpoint
    // (none at all, or every one failing its health check, ejected or unreachable).
    if ((set === undefined && !waited) || failover.length === 0 || primary.usableEndpoints > 0)
      return { target: decision.target, dest: primary };
    let resolving: { target: ChainTarget; dest: Destination } | undefined;
    // With no healthy endpoint anywhere, the first target that has endpoints at all (in panic).
    let some: { target: ChainTarget; dest: Destination } | undefined =
      set !== undefined && set.endpoints.length > 0 ? { target: decision.target, dest: primary } : undefined;
    for (const t of failover) {
      const d = this.#deps.targetDestination(t, chain.resolvers.get(t.id)?.loadBalancer, chain);
      const s = d.endpointSet;
      if (s === undefined) resolving ??= { target: t, dest: d };
      else if (d.usableEndpoints > 0) return { target: t, dest: d };
      else if (s.endpoints.length > 0) some ??= { target: t, dest: d };
    }
    return resolving ?? some ?? { target: decision.target, dest: primary };
  }
}

/**
 * The path with `query` added as undici adds it when it writes the request (`serializePathWithQuery`:
 * `node:querystring`), so routes match query parameters as sent. A path that already has a query
 * or fragment is left for undici to refuse.
 */
export function pathAsSent(opts: Dispatcher.DispatchOptions): string {
  const query = opts.query as Record<string, unknown> | null | undefined;
  if (query == null || typeof opts.path !== 'string' || /[?#]/.test(opts.path)) return opts.path;
  const q = stringifyQuery(query as Parameters<typeof stringifyQuery>[0]);
  return q ? `${opts.path}?${q}` : opts.path;
}

/**
 * `Host` after routing: the target service, with the port of the Host undici would send for the
 * origin ({@link hostOf}: no credentials, no default port).
 */
function logicalHost(origin: string, service: string): string {
  const host = hostOf(origin);
  const colon = host.lastIndexOf(':');
  return colon > 0 && colon > host.lastIndexOf(']') ? `${service}${host.slice(colon)}` : service;
}
