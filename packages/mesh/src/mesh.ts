import type { BalancerEvent, BalancerStats } from '@proxyless/balancer';
import {
  type CallContext,
  type Clock,
  createEmitter,
  type Disposable,
  diagnosticsChannel,
  ENDPOINT_ATTRIBUTE,
  type Endpoint,
  type EndpointInit,
  type EndpointSet,
  type Env,
  failDispatch,
  filterLogger,
  formatHostPort,
  hasHeader,
  Issues,
  isIPv4,
  isIPv6,
  jsonLogger,
  kCall,
  type Logger,
  type MeshDispatchOptions,
  MeshError,
  noopLogger,
  type Random,
  type RegisteredInstance,
  type Registrar,
  type Registration,
  type Resolver,
  systemClock,
  systemRandom,
  type Timer,
  withHeader,
} from '@proxyless/core';
import {
  createConsulRegistrar,
  createEtcdRegistrar,
  manageSignals,
  type SignalSource,
} from '@proxyless/discovery';
import {
  allResolved,
  createTelemetry,
  serviceView,
  type Telemetry,
  type TelemetryConfig,
} from '@proxyless/telemetry';
import type { Registry } from 'prom-client';
import { Agent, type Dispatcher, fetch as undiciFetch, request as undiciRequest } from 'undici';
import { CallHandler } from './call-handler.js';
import { Destination } from './destination.js';
import { type DispatchTarget, MeshDispatcher } from './dispatcher.js';
import { allEnvVars } from './env-schema.js';
import { checkUnknownMeshVars, type RegistryKind, readMeshEnv } from './mesh-env.js';
import {
  buildPolicy,
  checkMergedPolicy,
  type PolicyPatch,
  parsePolicyPatch,
  policyPatchFromEnv,
} from './policy.js';
import { DispatchRequest, hasIdempotentFlag, IDEMPOTENT_HEADER } from './request.js';
import { createResolvers, type RegistrySettings, type ResolverSet, readRegistryEnv } from './resolvers.js';

/** A JSON value, as policy settings are written in options and config documents. */
export type JsonValue =
  | string
  | number
  | boolean
  | null
  | readonly JsonValue[]
  | { readonly [key: string]: JsonValue };

/**
 * Policy settings for a service (or for all, in `defaults`), in the same shape as the config
 * document: `loadBalancer`, `outlierDetection`, `healthCheck`, `timeout`, `perTryTimeout`, `retry`,
 * `hedge`, `circuitBreaker`, `concurrencyLimit`, `rateLimit`, `faultInjection`. See docs/policies.md
 * and docs/load-balancing.md.
 */
export type PolicyOptions = { readonly [key: string]: JsonValue | undefined };

/** A service known from options: endpoints (optional if a registry knows it) and policy. */
export interface ServiceOptions extends PolicyOptions {}

export interface MeshOptions {
  /** Where variables are read from. @defaultValue `process.env` */
  env?: Env;
  /** @defaultValue `MESH_SERVICE_NAME`, else `OTEL_SERVICE_NAME`, else `unknown_service` */
  serviceName?: string;
  /**
   * Services defined in code: `{ payments: { endpoints: '10.0.0.1:8080,10.0.0.2:8080', retry: {…} } }`.
   * `endpoints` is a `host:port` list or `EndpointInit[]`; other keys are policy.
   */
  services?: Readonly<Record<string, ServiceOptions & { endpoints?: readonly EndpointInit[] | string }>>;
  /** Policy for every service, below environment variables and per-service settings. */
  defaults?: PolicyOptions;
  /** Extra resolvers, asked first (in order) which hosts they know. */
  resolvers?: readonly Resolver[];
  /** @defaultValue `MESH_CONFIG_FILE` */
  configFile?: string;
  /** @defaultValue `MESH_REGISTRY`, else `consul` when `CONSUL_HTTP_ADDR` is set */
  registry?: RegistryKind;
  /** @defaultValue `MESH_CONNECTIONS_PER_ENDPOINT`, else 100 */
  connectionsPerEndpoint?: number;
  /** @defaultValue `MESH_PASSTHROUGH`, else true */
  passthrough?: boolean;
  /** @defaultValue `MESH_HOST_HEADER`, else `logical` */
  hostHeader?: 'logical' | 'endpoint';
  /** How long a request waits for a new service's first resolution. @defaultValue 5000 */
  resolveTimeoutMs?: number;
  /** @defaultValue a JSON stderr logger at `MESH_LOG_LEVEL` if set, else silent */
  logger?: Logger;
  /** @defaultValue the system clock */
  clock?: Clock;
  /** @defaultValue `Math.random` */
  random?: Random;
  /** Dispatcher for hosts that are not mesh services. @defaultValue a new undici `Agent` */
  passthroughDispatcher?: Dispatcher;
  /**
   * A destination with no call for this long releases its registry watch, policy timers and
   * connection pools; the next call to it builds it again (Linkerd's idle cache eviction).
   * `0` keeps destinations for the mesh's lifetime. @defaultValue 300000 (5 minutes)
   */
  destinationIdleTimeoutMs?: number;
  /** Where the mesh's Prometheus metrics go. @defaultValue prom-client's global `register` */
  metrics?: { registry?: Registry };
  /**
   * Access log, admin endpoint, metrics and tracing switches, over `MESH_ACCESS_LOG`,
   * `MESH_ADMIN_PORT`, `MESH_ADMIN_HOST`, … (see docs/observability.md).
   */
  telemetry?: Partial<TelemetryConfig>;
}

/** Options of {@link Mesh.close}. */
export interface CloseOptions {
  /**
   * How long to let calls in flight finish, ms; after that every connection is destroyed.
   * @defaultValue no limit
   */
  timeout?: number;
}

/** Options of {@link Mesh.request}: undici's `request()` options (minus `dispatcher`) plus mesh hints. */
export type MeshRequestOptions = Omit<
  Dispatcher.RequestOptions,
  'origin' | 'path' | 'method' | 'dispatcher'
> & {
  /** @defaultValue `GET` */
  method?: Dispatcher.HttpMethod | (string & {});
  /** Declare a non-idempotent request safe to retry. @defaultValue by method (RFC 9110) or `Idempotency-Key` */
  idempotent?: boolean;
  /** Key for consistent-hash balancing (`ring_hash`, `maglev`). */
  hashKey?: string;
};

/** undici's `request()` result, plus the endpoint that answered. */
export type MeshResponseData = Dispatcher.ResponseData<unknown> & {
  /** Which endpoint answered (`address:port`), when a mesh service did. */
  endpoint: string | undefined;
};

/** What {@link Mesh.stats} reports for a service: the balancer's view plus the breaker state. */
export interface ServiceStats extends BalancerStats {
  /** The destination's circuit breaker, when it has one. */
  readonly circuitBreaker?: 'closed' | 'open' | 'half-open';
  /** The stages in force, outermost first (`deadline`, `retry`, `hedge`, `circuitBreaker`, …, `pick`). */
  readonly roles: readonly string[];
  /** Calls in flight through the destination, until their response body ends. */
  readonly inFlight: number;
}

/** Options of {@link Mesh.register}. */
export interface RegisterOptions {
  /** Drain on SIGTERM/SIGINT before exiting. @defaultValue false */
  manageSignals?: boolean;
  /** How long to keep serving after deregistering, ms. @defaultValue 5000 */
  drainMs?: number;
  /** Runs after the drain (close your server here). @defaultValue closes the mesh */
  onDrained?: () => void | Promise<void>;
  /** For tests: the signal source and exit function. */
  process?: SignalSource;
  exit?: (code: number) => void;
}

/** Something the mesh reports: a rejected config, a registry failure, an endpoint set change. */
export type MeshEvent =
  | { type: 'config_rejected'; error: MeshError }
  | { type: 'resolver_error'; service: string; error: MeshError }
  | { type: 'endpoints_changed'; service: string; set: EndpointSet }
  /** Panic mode, locality spill-over, outlier ejection/readmission, health-check verdicts. */
  | { type: 'balancer'; service: string; event: BalancerEvent }
  /** The destination's circuit breaker changed state. */
  | { type: 'circuit_breaker'; service: string; state: 'closed' | 'open' | 'half-open' }
  /** A destination idle for `destinationIdleTimeoutMs` was released. */
  | { type: 'service_removed'; service: string };

/** The in-process mesh. */
export interface Mesh extends AsyncDisposable {
  /** WHATWG `fetch`, through the mesh. */
  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response>;
  /** The `undici.request` shape, the fastest path. */
  request(url: string | URL, options?: MeshRequestOptions): Promise<MeshResponseData>;
  /** An undici `Dispatcher` for `undici.fetch`/`undici.request`/`setGlobalDispatcher`. */
  readonly dispatcher: Dispatcher;
  /** Route Node's global `fetch` through the mesh; returns a function that undoes it. */
  install(): () => void;
  /** The current endpoint set of a service the mesh has seen, with its staleness. */
  endpoints(service: string): EndpointSet | undefined;
  /** Services with a live destination. */
  services(): string[];
  /**
   * The balancer's view of a service: policy, panic and locality modes, and per endpoint the
   * in-flight count, latency EWMA, ejections, requests and failures.
   */
  stats(service: string): ServiceStats | undefined;
  onEvent(listener: (event: MeshEvent) => void): Disposable;
  /**
   * The admin server's URL (`http://127.0.0.1:port`) once it listens, when `MESH_ADMIN_PORT`
   * (or `telemetry.admin.port`) is set; `undefined` otherwise.
   */
  admin(): Promise<string | undefined>;
  /**
   * Register the running service in the shared registry (`MESH_REGISTRY=etcd` or `consul`): name,
   * id, address, port, tags, metadata, weights and a health check. `mesh.close()` deregisters it.
   * With `manageSignals`, SIGTERM/SIGINT mark it unhealthy, deregister it, keep serving for
   * `drainMs`, then close the mesh (or run `onDrained`) and exit.
   *
   * @throws MeshError `MESH_CONFIG_INVALID` when no registry that supports registration is configured.
   */
  register(registration: Registration, options?: RegisterOptions): Promise<RegisteredInstance>;
  /**
   * Graceful: deregister, stop watches, let in-flight requests finish (for at most
   * `options.timeout` ms, then force), close every pool. Later calls get the same promise.
   */
  close(options?: CloseOptions): Promise<void>;
  /** Immediate: abort in-flight requests and close everything — also after a `close()` in progress. */
  destroy(): Promise<void>;
}

const GLOBAL_DISPATCHER = Symbol.for('undici.globalDispatcher.1');

/** Dispatch option through which `mesh.request` learns the call's context (for `endpoint`). */
const kCallSink = Symbol('proxyless.callSink');

/**
 * Create a mesh from options, then environment variables, then the registry.
 *
 * @throws MeshError `MESH_CONFIG_INVALID` listing every invalid option, variable or config-file
 * field, by name and value. Nothing is started when anything is invalid.
 * @example
 * const mesh = createMesh(); // MESH_ENDPOINTS_PAYMENTS=10.0.0.1:8080,10.0.0.2:8080
 * const res = await mesh.fetch('http://payments/charge', { method: 'POST', body });
 */
export function createMesh(options: MeshOptions = {}): Mesh {
  return new MeshImpl(options);
}

class MeshImpl implements Mesh, DispatchTarget {
  readonly dispatcher: Dispatcher;
  readonly serviceName: string;
  #clock: Clock;
  #random: Random;
  #logger: Logger;
  #resolvers: ResolverSet;
  #destinations = new Map<string, Destination>();
  #byHost = new Map<string, Destination>();
  /** Dispatch origins (`http://payments:8080`) already named, so the hot path skips parsing. */
  #byOrigin = new Map<string, Destination>();
  #passthrough: boolean;
  #agent: Dispatcher | undefined;
  #ownAgent: boolean;
  #hostHeader: 'logical' | 'endpoint';
  #connections: number;
  #resolveTimeoutMs: number;
  #optionLayers: { defaults: PolicyPatch; env: PolicyPatch; services: Map<string, PolicyPatch> };
  #fileLayers: FileLayers | undefined;
  #events = createEmitter<MeshEvent>(() => undefined);
  #closing: Promise<void> | undefined;
  #registries: RegistrySettings;
  #registryName: string | undefined;
  #registrar: Registrar | undefined;
  #signalHandlers: Disposable[] = [];
  #forced: Promise<void> | undefined;
  #closingDests = new Set<Destination>();
  #idleTimeoutMs: number;
  readonly #telemetry: Telemetry | undefined;
  #admin: Promise<string | undefined> = Promise.resolve(undefined);
  #idleSweep: Timer | undefined;

  constructor(options: MeshOptions) {
    const env = options.env ?? process.env;
    const issues = new Issues();
    checkUnknownMeshVars(env, allEnvVars, issues);
    const settings = readMeshEnv(env, issues);
    this.serviceName = options.serviceName ?? settings.serviceName ?? 'unknown_service';
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? systemRandom;
    const level = settings.logLevel;
    this.#logger =
      options.logger ?? (level && level !== 'silent' ? filterLogger(jsonLogger(), level) : noopLogger);
    this.#passthrough = options.passthrough ?? settings.passthrough ?? true;
    this.#hostHeader = options.hostHeader ?? settings.hostHeader ?? 'logical';
    this.#connections =
      issues.integer(
        options.connectionsPerEndpoint ?? settings.connectionsPerEndpoint ?? 100,
        'connectionsPerEndpoint',
        { min: 1, max: 4096 },
      ) ?? 100;
    this.#resolveTimeoutMs = options.resolveTimeoutMs ?? settings.resolveTimeoutMs ?? 5000;
    this.#idleTimeoutMs =
      issues.integer(options.destinationIdleTimeoutMs ?? 300_000, 'destinationIdleTimeoutMs', {
        min: 0,
        max: 2_147_483_647,
      }) ?? 300_000;

    // Policy layers from code and environment, validated now: a bad value fails createMesh.
    const services = new Map<string, PolicyPatch>();
    for (const [name, entry] of Object.entries(options.services ?? {})) {
      const { endpoints: _e, ...policy } = entry;
      services.set(
        name,
        parsePolicyPatch(policy as Record<string, unknown>, `options.services.${name}`, issues),
      );
    }
    this.#optionLayers = {
      defaults: parsePolicyPatch(
        options.defaults as Record<string, unknown> | undefined,
        'options.defaults',
        issues,
      ),
      env: policyPatchFromEnv(env, issues),
      services,
    };
    const registries = readRegistryEnv(env, options.registry ?? settings.registry, issues);
    this.#registries = registries;
    this.#registryName = options.registry ?? settings.registry;
    if (issues.ok) this.#checkMerged(undefined, issues);
    issues.throwIfAny('invalid mesh configuration');
    // Metrics, traces and the access log: no-ops unless configured (or an SDK is registered).
    const telemetry = createTelemetry({
      settings: options.telemetry ?? {},
      env,
      clock: this.#clock,
      ...(options.metrics?.registry ? { registry: options.metrics.registry } : {}),
    });
    this.#telemetry = telemetry;

    this.#resolvers = createResolvers({
      registries,
      random: this.#random,
      env,
      options,
      settings,
      clock: this.#clock,
      logger: this.#logger,
      onDocument: (doc) => this.#applyDocument(doc),
      validateDocument: (doc, iss) => {
        const file = parseDocumentLayers(doc, iss);
        if (iss.ok) this.#checkMerged(file, iss);
      },
    });
    this.#agent = options.passthroughDispatcher ?? (this.#passthrough ? new Agent() : undefined);
    this.#ownAgent = options.passthroughDispatcher === undefined;
    this.dispatcher = new MeshDispatcher(this);
    this.#events.event((event) => telemetry.onMeshEvent(event));
    if (telemetry.config.admin.port !== undefined) {
      this.#admin = telemetry
        .startAdmin({
          services: () =>
            this.services().map((name) =>
              serviceView(name, {
                set: this.endpoints(name),
                stats: this.stats(name),
                now: this.#clock.now(),
              }),
            ),
          ready: () =>
            allResolved(
              this.services().map((name) =>
                serviceView(name, { set: this.endpoints(name), now: this.#clock.now() }),
              ),
            ),
          configDump: () => this.#configDump(),
        })
        .then(
          (server) => server?.url,
          (error: unknown) => {
            this.#logger.error('admin server failed to start', { error });
            this.#events.fire({ type: 'config_rejected', error: error as MeshError });
            return undefined;
          },
        );
    }
    // Every mesh event also goes to `diagnostics_channel` `proxyless:mesh:event` (free without subscribers).
    const channel = diagnosticsChannel('mesh', 'event');
    this.#events.event((event) => {
      if (channel.hasSubscribers) channel.publish({ mesh: this.serviceName, ...event });
    });
    for (const r of this.#resolvers.fileRejections) {
      r((error) => this.#events.fire({ type: 'config_rejected', error }));
    }
  }

  // ---- configuration from the config document -------------------------------------------------

  #applyDocument(doc: Record<string, unknown>): void {
    const issues = new Issues();
    const layers = parseDocumentLayers(doc, issues);
    if (!issues.ok) return; // validated before apply by the file resolver; defensive only
    this.#fileLayers = layers;
    for (const d of this.#destinations.values()) d.refreshPolicy();
  }

  /**
   * Some rules only hold across layers (a health check needs a `path` from some layer; a ring's
   * minimum below its maximum): check the merged policy of every named service, and of any other
   * service (defaults only), before a configuration is accepted.
   */
  #checkMerged(file: FileLayers | undefined, issues: Issues): void {
    const names = new Set([...this.#optionLayers.services.keys(), ...(file?.services.keys() ?? [])]);
    checkMergedPolicy(this.#layersFor(undefined, file), 'every service (defaults)', issues);
    for (const name of names) checkMergedPolicy(this.#layersFor(name, file), `services.${name}`, issues);
  }

  #layersFor(service: string | undefined, file = this.#fileLayers): PolicyPatch[] {
    const o = this.#optionLayers;
    const layers = [o.defaults, o.env];
    const own = service === undefined ? undefined : o.services.get(service);
    if (own) layers.push(own);
    if (file) {
      layers.push(file.defaults);
      const f = service === undefined ? undefined : file.services.get(service);
      if (f) layers.push(f);
    }
    return layers;
  }

  // ---- naming ----------------------------------------------------------------------------------

  #destinationFor(hostname: string): Destination | undefined {
    const cached = this.#byHost.get(hostname);
    if (cached !== undefined) return cached;
    if (this.#closing) throw new MeshError('MESH_CLOSED', 'the mesh is closed');
    let host = hostname.toLowerCase();
    if (host.startsWith('[')) return undefined; // IPv6 literal: an address, not a service name
    if (host.endsWith('.')) host = host.slice(0, -1);
    if (isIPv4(host) || isIPv6(host)) return undefined;
    // RFC 6761: `localhost` names are never services, whatever a registry matches.
    if (host === 'localhost' || host.endsWith('.localhost')) return undefined;
    for (const resolver of this.#resolvers.list) {
      const service = resolver.match(host);
      if (service === undefined) continue;
      let dest = this.#destinations.get(service);
      if (dest === undefined) {
        dest = new Destination(service, resolver, {
          outer: this.#telemetry ? [{ role: 'telemetry', interceptor: this.#telemetry.callInterceptor }] : [],
          inner: this.#telemetry
            ? [{ role: 'telemetryAttempt', interceptor: this.#telemetry.attemptInterceptor }]
            : [],
          clock: this.#clock,
          logger: this.#logger,
          connectionsPerEndpoint: this.#connections,
          resolveTimeoutMs: this.#resolveTimeoutMs,
          policy: (s) =>
            buildPolicy(s, this.#layersFor(s), {
              clock: this.#clock,
              random: this.#random,
              logger: this.#logger,
              onBreakerStateChange: (service, state) =>
                this.#events.fire({ type: 'circuit_breaker', service, state }),
            }),
          onSetChange: (s, set) => this.#events.fire({ type: 'endpoints_changed', service: s, set }),
          onBalancerEvent: (event) => this.#events.fire({ type: 'balancer', service: event.service, event }),
          onResolverError: (s, error) => {
            this.#logger.warn('registry refresh failed; keeping the last known endpoints', {
              service: s,
              error,
            });
            this.#events.fire({ type: 'resolver_error', service: s, error });
          },
        });
        this.#destinations.set(service, dest);
        this.#armIdleSweep();
      }
      this.#byHost.set(hostname, dest);
      return dest;
    }
    return undefined;
  }

  /**
   * Evict destinations idle past `destinationIdleTimeoutMs` with nothing in flight: their watch,
   * policy timers and pools are released, and the next call builds them again (#9.11). A sweep runs
   * only while destinations exist.
   */
  #armIdleSweep(): void {
    if (this.#idleTimeoutMs <= 0 || this.#idleSweep !== undefined || this.#closing) return;
    const period = Math.max(1000, Math.min(60_000, Math.floor(this.#idleTimeoutMs / 2)));
    this.#idleSweep = this.#clock.setTimer(period, () => {
      this.#idleSweep = undefined;
      const now = this.#clock.now();
      for (const [service, d] of this.#destinations) {
        if (d.inFlight > 0 || now - d.lastUsed < this.#idleTimeoutMs) continue;
        this.#destinations.delete(service);
        for (const [k, v] of this.#byHost) if (v === d) this.#byHost.delete(k);
        for (const [k, v] of this.#byOrigin) if (v === d) this.#byOrigin.delete(k);
        d.evicted = true;
        void d.close();
        this.#events.fire({ type: 'service_removed', service });
      }
      if (this.#destinations.size > 0) this.#armIdleSweep();
    });
  }

  /** What `/config_dump` shows: per live destination, its stages and policy key. */
  #configDump(): unknown {
    const out: Record<string, unknown> = {};
    for (const [name, d] of this.#destinations) {
      out[name] = { roles: [...d.roles, 'pick'], policy: JSON.parse(d.policyKey || '{}') as unknown };
    }
    return { service: this.serviceName, destinations: out };
  }

  // ---- calls -----------------------------------------------------------------------------------

  /**
   * The mesh dispatcher's one entry: name the destination from the origin, then either pass the
   * request through untouched or send it through the destination's stack with a call context.
   */
  dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const origin = typeof opts.origin === 'string' ? opts.origin : String(opts.origin ?? '');
    let dest: Destination | undefined;
    try {
      dest = this.#byOrigin.get(origin);
      if (dest === undefined || dest.evicted) {
        const hostname = hostnameOf(origin);
        dest = hostname === undefined ? undefined : this.#destinationFor(hostname);
        if (dest !== undefined && this.#byOrigin.size < 1024) this.#byOrigin.set(origin, dest);
      }
    } catch (error) {
      failDispatch(new CallHandler(handler), error as Error);
      return true;
    }
    if (dest === undefined) {
      if (this.#agent) return this.#agent.dispatch(opts, handler);
      failDispatch(new CallHandler(handler), unknownService(origin));
      return true;
    }
    if (origin.startsWith('https:')) {
      // No TLS to mesh endpoints is configured: never send an https request as plaintext (#9.1).
      failDispatch(
        new CallHandler(handler),
        new MeshError(
          'MESH_CONFIG_INVALID',
          `"${origin}" asks for TLS to mesh service "${dest.service}", but no TLS is configured for mesh endpoints; refusing to send it as plaintext (use http://${dest.service})`,
          { details: { field: 'origin', value: origin, service: dest.service } },
        ),
      );
      return true;
    }
    const o = opts as Dispatcher.DispatchOptions & {
      idempotent?: boolean;
      hashKey?: unknown;
      [kCallSink]?: (ctx: CallContext) => void;
    };
    let headers = opts.headers;
    try {
      if (this.#hostHeader === 'logical' && !hasHeader(headers, 'host')) {
        headers = withHeader(headers, 'host', hostOf(origin));
      }
      if (hasIdempotentFlag(headers)) {
        const request = new DispatchRequest(opts, origin, o.idempotent);
        void request.idempotent;
        headers = withHeader(headers, IDEMPOTENT_HEADER, undefined);
        return this.#send(dest, o, headers, handler, request);
      }
    } catch (error) {
      // A malformed header list: undici's own InvalidArgumentError, before anything is sent.
      failDispatch(new CallHandler(handler), error as Error);
      return true;
    }
    return this.#send(dest, o, headers, handler, new DispatchRequest(opts, origin, o.idempotent));
  }

  #send(
    dest: Destination,
    opts: Dispatcher.DispatchOptions & { hashKey?: unknown; [kCallSink]?: (ctx: CallContext) => void },
    headers: Dispatcher.DispatchOptions['headers'],
    handler: Dispatcher.DispatchHandler,
    request: DispatchRequest,
  ): boolean {
    const attributes = new Map<string, unknown>();
    if (typeof opts.hashKey === 'string') attributes.set('hashKey', opts.hashKey);
    const ctx: CallContext = {
      service: dest.service,
      request,
      attempt: 1,
      deadline: undefined,
      signal: undefined,
      clock: this.#clock,
      random: this.#random,
      excludeEndpoints: undefined,
      attributes,
      observer: undefined,
      endpoint: undefined,
    };
    opts[kCallSink]?.(ctx);
    dest.inFlight++;
    dest.lastUsed = this.#clock.now();
    const call = new CallHandler(handler, () => {
      dest.inFlight--;
    });
    const sent: MeshDispatchOptions = { ...opts, headers, [kCall]: ctx };
    try {
      return dest.dispatch(sent, call);
    } catch (error) {
      failDispatch(call, error as Error);
      return true;
    }
  }

  /**
   * undici's `request()` over the mesh dispatcher: every option and result field of undici's own,
   * plus `endpoint`.
   */
  async request(url: string | URL, options: MeshRequestOptions = {}): Promise<MeshResponseData> {
    let ctx: CallContext | undefined;
    const r = await undiciRequest(url, {
      ...(options as Omit<Dispatcher.RequestOptions, 'origin' | 'path' | 'method'>),
      ...(options.method !== undefined ? { method: options.method as Dispatcher.HttpMethod } : {}),
      dispatcher: this.dispatcher,
      [kCallSink]: (c: CallContext) => {
        ctx = c;
      },
    } as Parameters<typeof undiciRequest>[1]);
    const ep = ctx?.attributes.get(ENDPOINT_ATTRIBUTE) as Endpoint | undefined;
    return Object.assign(r, { endpoint: ep ? formatHostPort(ep.address, ep.port) : undefined });
  }

  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    return undiciFetch(input as Parameters<typeof undiciFetch>[0], {
      ...(init as Parameters<typeof undiciFetch>[1]),
      dispatcher: this.dispatcher,
    }) as unknown as Promise<Response>;
  }

  passthrough(): Dispatcher | undefined {
    return this.#agent;
  }

  install(): () => void {
    const g = globalThis as Record<symbol, unknown>;
    const previous = g[GLOBAL_DISPATCHER];
    g[GLOBAL_DISPATCHER] = this.dispatcher;
    let undone = false;
    return () => {
      if (undone) return;
      undone = true;
      // Only undo our own install: a later install by someone else stays in place.
      if (g[GLOBAL_DISPATCHER] === this.dispatcher) {
        if (previous === undefined) delete g[GLOBAL_DISPATCHER];
        else g[GLOBAL_DISPATCHER] = previous;
      }
    };
  }

  endpoints(service: string): EndpointSet | undefined {
    return this.#destinations.get(service)?.endpointSet;
  }

  services(): string[] {
    return [...this.#destinations.keys()];
  }

  stats(service: string): ServiceStats | undefined {
    const d = this.#destinations.get(service);
    if (d === undefined) return undefined;
    const breaker = d.circuitBreakerState;
    return {
      ...d.balancer.stats(),
      ...(breaker ? { circuitBreaker: breaker } : {}),
      roles: [...d.roles, 'pick'],
      inFlight: d.inFlight,
    };
  }

  onEvent(listener: (event: MeshEvent) => void): Disposable {
    return this.#events.event(listener);
  }

  admin(): Promise<string | undefined> {
    return this.#admin;
  }

  close(options: CloseOptions = {}): Promise<void> {
    this.#closing ??= this.#shutdown(false, options.timeout);
    return this.#closing;
  }

  destroy(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closing = this.#shutdown(true, undefined);
      return this.#closing;
    }
    // A graceful close may still be draining: destroy() forces it (#9.10).
    this.#forced ??= (async () => {
      await Promise.all([...this.#closingDests].map((d) => d.destroy()));
      if (this.#agent && this.#ownAgent) await this.#agent.destroy().catch(() => undefined);
      await this.#closing;
    })();
    return this.#forced;
  }

  async register(registration: Registration, options: RegisterOptions = {}): Promise<RegisteredInstance> {
    if (this.#closing) throw new MeshError('MESH_CLOSED', 'the mesh is closed');
    if (this.#registrar === undefined) {
      const r = this.#registries;
      if (r.consul)
        this.#registrar = createConsulRegistrar({ ...r.consul, clock: this.#clock, logger: this.#logger });
      else if (r.etcd)
        this.#registrar = createEtcdRegistrar({
          ...r.etcd,
          clock: this.#clock,
          random: this.#random,
          logger: this.#logger,
        });
      else
        throw new MeshError(
          'MESH_CONFIG_INVALID',
          'MESH_REGISTRY: registration needs a shared registry that supports it (etcd or consul); none is configured',
          { details: { field: 'MESH_REGISTRY', value: this.#registryName } },
        );
    }
    const instance = await this.#registrar.register(registration);
    if (options.manageSignals) {
      this.#signalHandlers.push(
        manageSignals(instance, {
          drainMs: options.drainMs ?? 5000,
          onDrained: options.onDrained ?? (() => this.close()),
          clock: this.#clock,
          logger: this.#logger,
          ...(options.process ? { process: options.process } : {}),
          ...(options.exit ? { exit: options.exit } : {}),
        }),
      );
    }
    return instance;
  }

  async #shutdown(force: boolean, timeoutMs: number | undefined): Promise<void> {
    this.#idleSweep?.cancel();
    await this.#telemetry?.close().catch(() => undefined);
    for (const h of this.#signalHandlers) h.dispose();
    // Leave the registry first, so callers stop picking this instance while it still serves.
    await this.#registrar?.close().catch((error: unknown) => {
      this.#logger.warn('deregistration failed on close', { error });
    });
    const dests = [...this.#destinations.values()];
    this.#destinations.clear();
    this.#byHost.clear();
    this.#byOrigin.clear();
    this.#closingDests = new Set(dests);
    await Promise.all(dests.map((d) => (force ? d.destroy() : d.close(timeoutMs))));
    await this.#resolvers.close();
    if (this.#agent && this.#ownAgent) {
      if (force || this.#forced) await this.#agent.destroy().catch(() => undefined);
      else await this.#agent.close().catch(() => undefined);
    }
    this.#events.clear();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

interface FileLayers {
  defaults: PolicyPatch;
  services: Map<string, PolicyPatch>;
}

function parseDocumentLayers(doc: Record<string, unknown>, issues: Issues): FileLayers {
  const services = new Map<string, PolicyPatch>();
  const defaults = parsePolicyPatch(asRecord(doc.defaults), 'defaults', issues);
  const entries = asRecord(doc.services) ?? {};
  for (const [name, entry] of Object.entries(entries)) {
    const record = asRecord(entry);
    if (!record) continue;
    const { endpoints: _e, ...policy } = record;
    services.set(name, parsePolicyPatch(policy, `services.${name}`, issues));
  }
  return { defaults, services };
}

function asRecord(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;
}

interface UrlParts {
  origin: string;
  hostname: string;
  pathname: string;
  search: string;
}

/**
 * The hot-path split of a plain `http(s)://host[:port]/path?query` URL, without allocating a
 * `URL`. Anything unusual (credentials, IPv6 literals, non-ASCII or upper-case hosts, dot segments,
 * escapes) returns `undefined` and goes through the WHATWG parser.
 */
export function splitUrl(url: string): UrlParts | undefined {
  const start = url.startsWith('http://') ? 7 : url.startsWith('https://') ? 8 : -1;
  if (start < 0) return undefined;
  let end = start;
  while (end < url.length) {
    const c = url.charCodeAt(end);
    if (c === 47 /* / */ || c === 63 /* ? */ || c === 35 /* # */) break;
    const ok = (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 58 || c === 95;
    if (!ok) return undefined; // upper case, @, [, %, non-ASCII, …
    end++;
  }
  const authority = url.slice(start, end);
  if (authority.length === 0) return undefined;
  const colon = authority.indexOf(':');
  const hostname = colon < 0 ? authority : authority.slice(0, colon);
  // A host whose last label is numeric is an IPv4 address to the WHATWG parser (`0` → `0.0.0.0`).
  const lastLabel = hostname.slice(hostname.lastIndexOf('.', hostname.length - 2) + 1).replace(/\.$/, '');
  if (lastLabel === '' || /^(0x[0-9a-f]*|[0-9]+)$/.test(lastLabel)) return undefined;
  if (colon >= 0) {
    const port = authority.slice(colon + 1);
    // Default ports are dropped by the WHATWG parser; let it handle those and odd ones.
    if (!/^[1-9][0-9]{0,4}$/.test(port) || port === '80' || port === '443' || Number(port) > 65535)
      return undefined;
  }
  let rest = url.slice(end);
  const hash = rest.indexOf('#');
  if (hash >= 0) rest = rest.slice(0, hash);
  // Only characters the WHATWG parser leaves as they are; no dot segments.
  if (!/^[A-Za-z0-9\-._~!$&()*+,;=:@/?]*$/.test(rest) || /\/\.\.?(\/|$|\?)/.test(rest)) return undefined;
  const q = rest.indexOf('?');
  const pathname = q < 0 ? rest || '/' : rest.slice(0, q) || '/';
  const search = q < 0 || q === rest.length - 1 ? '' : rest.slice(q);
  return { origin: url.slice(0, end), hostname, pathname, search };
}

/** `host[:port]` of an origin, for the logical `Host` header. */
function hostOf(origin: string): string {
  const i = origin.indexOf('://');
  return (i < 0 ? origin : origin.slice(i + 3)).replace(/\/+$/, '');
}

function hostnameOf(origin: string): string | undefined {
  const i = origin.indexOf('://');
  if (i < 0) return undefined;
  let rest = origin.slice(i + 3);
  const slash = rest.indexOf('/');
  if (slash >= 0) rest = rest.slice(0, slash);
  const at = rest.lastIndexOf('@');
  if (at >= 0) rest = rest.slice(at + 1);
  if (rest.startsWith('[')) return rest.slice(0, rest.indexOf(']') + 1);
  const colon = rest.indexOf(':');
  return (colon >= 0 ? rest.slice(0, colon) : rest).toLowerCase();
}

function unknownService(origin: string): MeshError {
  return new MeshError(
    'MESH_UNKNOWN_SERVICE',
    `"${origin}" is not a mesh service and pass-through is disabled (MESH_PASSTHROUGH=false)`,
    {
      details: { field: 'MESH_PASSTHROUGH', value: origin },
    },
  );
}
