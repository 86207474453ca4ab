/**
 * The public shape of the mesh: `createMesh` options, the `Mesh` interface, its events and
 * results. The implementation is in mesh.ts.
 */
import type { UrlObject } from 'node:url';
import type { BalancerEvent, BalancerStats } from '@proxyless/balancer';
import type {
  Clock,
  ConfigIssue,
  EndpointSet,
  Env,
  Logger,
  MeshError,
  Random,
  RegisteredInstance,
  Registration,
  Resolver,
  Subscription,
} from '@proxyless/core';
import type { SignalSource } from '@proxyless/discovery';
import type { TelemetrySettings } from '@proxyless/telemetry';
import type { Registry } from 'prom-client';
import type { Dispatcher } from 'undici';
import type { EffectiveConfig, PolicyRole } from './config/effective.js';
import type { PolicyOptions, ServiceOptions } from './config/schema.js';
import type { ConfigSource } from './config/source.js';
import type { RegistryKind } from './mesh-env.js';
import type { RoutingChain } from './routing/index.js';
import type { RoutingStats } from './routing-stage.js';

/** A JSON value, as policy settings are written in options and config documents. */
export type JsonValue =
  | string
  | number
  | boolean
  | null
  | readonly JsonValue[]
  | { readonly [key: string]: JsonValue };

export type { PolicyOptions, ServiceOptions } from './config/schema.js';

export interface MeshOptions {
  /** Where variables are read from. @defaultValue `process.env` */
  env?: Env;
  /** @defaultValue `MESH_SERVICE_NAME`, else `OTEL_SERVICE_NAME`, else `unknown_service` */
  serviceName?: string;
  /**
   * Services defined in code: `{ payments: { endpoints: '10.0.0.1:8080,10.0.0.2:8080', retry: {…} } }`.
   * `endpoints` is a `host:port` list or `EndpointInit[]`; every other key is a typed policy section
   * (a misspelt key fails to compile).
   */
  services?: Readonly<Record<string, ServiceOptions>>;
  /** Policy for every service, below environment variables and per-service settings. */
  defaults?: PolicyOptions;
  /** Extra resolvers, asked first (in order) which hosts they know. */
  resolvers?: readonly Resolver[];
  /** @defaultValue `MESH_CONFIG_FILE` */
  configFile?: string;
  /**
   * Where the config document comes from, in place of the file: any {@link ConfigSource} (a KV
   * store, a control plane, `createConfigSource` in tests). Each version it yields is
   * validated whole and swapped in at once, or rejected with the last good one kept, exactly as
   * the file's. Its layers are named after it (`<name>.defaults`, `<name>.services`). Giving it
   * with `configFile` or `MESH_CONFIG_FILE` is an error. The mesh listens to it until `close()`
   * and does not close it: it belongs to the caller.
   */
  configSource?: ConfigSource;
  /** @defaultValue `MESH_REGISTRY`, else `consul` when `CONSUL_HTTP_ADDR` is set */
  registry?: RegistryKind;
  /**
   * Most connections open at once to each endpoint; requests beyond them wait in its pool. A
   * long-lived response (an event stream, a long poll) holds its connection until it ends;
   * 4294967295 is no bound (a connection per request in flight, as undici's own pools).
   * @defaultValue `MESH_CONNECTIONS_PER_ENDPOINT`, else 1024 (Envoy's default `max_connections`),
   * or a service's share of its `circuitBreaker.maxConnections`
   */
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
  telemetry?: TelemetrySettings;
}

/** Options of {@link Mesh.close}. */
export interface CloseOptions {
  /**
   * How long to let calls in flight finish, ms (a number ≥ 0; `Infinity` is no limit); after that
   * every connection is destroyed. Any other value rejects `close()` with a `TypeError`.
   * @defaultValue no limit
   */
  timeout?: number;
}

/** Options of {@link Mesh.request}: undici's `request()` options (minus `dispatcher`) plus mesh hints. */
export type MeshRequestOptions<TOpaque = null> = Omit<
  Dispatcher.RequestOptions<TOpaque>,
  'origin' | 'path' | 'method' | 'dispatcher'
> & {
  /** @defaultValue `GET` */
  method?: Dispatcher.HttpMethod | (string & {});
  /** Declare a non-idempotent request safe to retry. @defaultValue by method (RFC 9110) or `Idempotency-Key` */
  idempotent?: boolean;
  /** Key for consistent-hash balancing (`ring_hash`, `maglev`); a number hashes as its decimal string. */
  hashKey?: string | number;
  /**
   * When every endpoint of the service is unreachable, wait (within the call's deadline) for one to
   * reconnect instead of failing at once with `MESH_NO_HEALTHY_ENDPOINTS` (gRPC's `waitForReady`).
   * @defaultValue the service's `loadBalancer.waitForReady`
   */
  waitForReady?: boolean;
};

/** undici's `request()` result, plus the endpoint that answered. */
export type MeshResponseData<TOpaque = null> = Dispatcher.ResponseData<TOpaque> & {
  /** Which endpoint answered (`address:port`), when a mesh service did. */
  endpoint: string | undefined;
};

/** What {@link Mesh.stats} reports for a service: the balancer's view plus the breaker state. */
export interface ServiceStats extends BalancerStats {
  /** The destination's circuit breaker, when it has one. */
  readonly circuitBreaker?: 'closed' | 'open' | 'half-open';
  /**
   * The stages in force, outermost first (`deadline`, `retry`, `hedge`, `circuitBreaker`, …, `pick`).
   * `deadline` and `perTryTimeout` are always there, with no `timeout` or `perTryTimeout` set: they
   * enforce and pass on a deadline propagated from the incoming request. The settings themselves
   * are in `mesh.config(service)`.
   */
  readonly roles: readonly string[];
  /**
   * Calls in flight through the service, until their response body ends: its own calls — for a
   * service with a routing chain, each wherever its route sent it, by whatever chain version —
   * and the calls other services' routes send to it as a whole service (one destination, as
   * Envoy's cluster for it).
   */
  readonly inFlight: number;
  /** For a service with a routing chain: requests per route (index; `-1`: no router) and per target ID. */
  readonly routing?: RoutingStats;
  /**
   * For a service with a routing chain: each target's destination built so far, by target ID
   * (`v2.web.default.default.dc1`) — its endpoints with their in-flight counts and requests, its
   * breaker and stages. A routed call goes through these, not the service's own destination.
   */
  readonly targets?: Readonly<Record<string, TargetStats>>;
}

/** A routing target's destination: as {@link ServiceStats}, for the target's subset and policy. */
export interface TargetStats extends BalancerStats {
  readonly circuitBreaker?: 'closed' | 'open' | 'half-open';
  readonly roles: readonly string[];
  readonly inFlight: number;
}

/** Options of {@link Mesh.register}. */
export interface RegisterOptions {
  /** Drain on SIGTERM/SIGINT before exiting. @defaultValue false */
  manageSignals?: boolean;
  /** How long to keep serving after deregistering, ms. @defaultValue 5000 */
  drainMs?: number;
  /**
   * Runs after the drain (close your server here). @defaultValue closes the mesh, letting calls
   * still in flight finish for at most `closeTimeoutMs`
   */
  onDrained?: () => unknown;
  /**
   * With the default `onDrained`: how long the mesh's close lets calls still in flight finish (a
   * response body that never ends — server-sent events, a long poll — would hold the exit forever)
   * before it destroys their connections, ms. @defaultValue 5000
   */
  closeTimeoutMs?: number;
  /** For tests: the signal source and exit function. */
  process?: SignalSource;
  exit?: (code: number) => void;
}

/** Something the mesh reports: a rejected config, a registry failure, an endpoint set change. */
export type MeshEvent =
  | {
      type: 'config_rejected';
      error: MeshError;
      /** Where the rejected version came from (`file`, `etcd`, `consul`), when known. */
      source?: string;
      /** The rejected version (etcd: revision; Consul: `X-Consul-Index`). */
      version?: number;
      /** Config entries from Consul: the service whose discovery chain this is. */
      service?: string;
    }
  /**
   * A source of config entries could not be read: etcd unreachable (listing or watch), or
   * Consul's `/v1/discovery-chain/<service>` failing (agent down, an error status). The last good
   * version stays in force; the source retries with backoff. One event per failed attempt
   * (Envoy's `update_failure`); `/config_dump` (`routing`) shows it `stale` until it answers.
   */
  | { type: 'config_source_error'; source: string; error: MeshError; service?: string }
  /** A config document version is in force. */
  | {
      type: 'config_applied';
      source: string;
      version: number;
      /** Per live service, the policy sections whose effective settings changed. */
      changed: ReadonlyMap<string, readonly PolicyRole[]>;
      /**
       * Per live destination (service, or routing target by its ID), what the change touched:
       * `balancer` and stack stages (`retry`, `circuitBreaker`, shared state `budget`, `retryGate`)
       * built anew, changed in place (a new `concurrencyLimit.max` or `circuitBreaker.maxRequests`
       * applies to the live counters, a new `rateLimit` to the live bucket's tokens) or removed, and
       * `connectionPools` when a new `circuitBreaker.maxConnections` re-sized them (requests on the
       * old pools finish there). Everything not listed kept its instance and
       * state; an unchanged document lists nothing.
       */
      rebuilt: ReadonlyMap<string, readonly string[]>;
      /** Config entries from Consul: the service whose discovery chain this is. */
      service?: string;
    }
  /**
   * The admin server could not listen (`MESH_ADMIN_PORT` in use, `MESH_ADMIN_HOST` not this
   * machine's): `details.field` names the variable at fault. The mesh serves on without it.
   */
  | { type: 'admin_failed'; error: MeshError }
  /** A setting is accepted but cannot work as written (e.g. `perTryTimeout` above `timeout`). */
  | { type: 'config_warning'; service: string | undefined; issue: ConfigIssue }
  /** A registry refresh of the service failed (once per failure, however many destinations watch it). */
  | { type: 'resolver_error'; service: string; error: MeshError }
  /**
   * A destination's endpoint set changed (content, version, or stale). `target`: the routing
   * target (its ID) of a service subset whose destination this is: its set is that subset of the
   * service's endpoints, not the service's whole set (which the service's own destination, or a
   * target of the whole service, reports without `target`).
   */
  | { type: 'endpoints_changed'; service: string; set: EndpointSet; target?: string }
  /**
   * Panic mode, locality spill-over, outlier ejection/readmission, health-check verdicts.
   * `target`: the routing target (its ID) of a service subset whose destination's balancer this
   * is, as for `endpoints_changed`.
   */
  | { type: 'balancer'; service: string; event: BalancerEvent; target?: string }
  /**
   * The destination's circuit breaker changed state. `target`: the routing target (its ID) of a
   * service subset whose destination's breaker this is (a canary's v2 breaker opening is not the
   * service's: its other subsets keep theirs).
   */
  | { type: 'circuit_breaker'; service: string; state: 'closed' | 'open' | 'half-open'; target?: string }
  /**
   * A service's destination was released: idle for `destinationIdleTimeoutMs`, or no longer named
   * by the config document (and known to no other registry); for a routed service, once its own
   * destination and every routing target's of it are released. No other event of it follows until
   * it is used or named again.
   */
  | { type: 'service_removed'; service: string };

/** The in-process mesh. */
export interface Mesh extends AsyncDisposable {
  /** WHATWG `fetch`, through the mesh. */
  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response>;
  /** The `undici.request` shape, the fastest path. */
  request<TOpaque = null>(
    url: string | URL | UrlObject,
    options?: MeshRequestOptions<TOpaque>,
  ): Promise<MeshResponseData<TOpaque>>;
  /** An undici `Dispatcher` for `undici.fetch`/`undici.request`/`setGlobalDispatcher`. */
  readonly dispatcher: Dispatcher;
  /**
   * Route Node's global `fetch` (undici's global dispatcher) through the mesh; returns a function
   * that undoes it. `close()` and `destroy()` undo it too, once the mesh has shut down (global
   * calls made while it drains are refused with `MESH_CLOSED`, as every new call is).
   * @throws MeshError `MESH_CLOSED` once `close()` or `destroy()` has been called.
   */
  install(): () => void;
  /** The current endpoint set of a service the mesh has seen, with its staleness. */
  endpoints(service: string): EndpointSet | undefined;
  /**
   * Services with a live destination over their whole endpoint set: their own, or, for a service
   * reached only through another's routes, a routing target of the whole service. (A service
   * reached only as a subset is under the routing service's `stats(…).targets`.)
   */
  services(): string[];
  /**
   * The balancer's view of a service: policy, panic and locality modes, and per endpoint the
   * in-flight count, latency EWMA, ejections, requests and failures. For a service reached only
   * through another's routes, the view of the routing target of the whole service that carries them.
   */
  stats(service: string): ServiceStats | undefined;
  /**
   * The compiled routing chain of a service (from `configEntries`, etcd or Consul), or `undefined`
   * when no config entry shapes it. See docs/traffic-management.md.
   */
  routes(service: string): RoutingChain | undefined;
  /**
   * The configuration in force for a service: resolved settings, and the layer (`options.defaults`,
   * `env`, `options.services`, `file.defaults`, `file.services`; a `configSource`'s layers take its
   * name) and version each came from.
   * @throws MeshError `MESH_CONFIG_INVALID` only if the merged layers are invalid (never after createMesh succeeded).
   */
  config(service: string): EffectiveConfig;
  /**
   * Read the config sources again now (they are also watched); resolves once what was read is
   * applied (or found unchanged). When it is rejected — a version that fails validation, a file
   * that cannot be read or parsed, a source whose `reload()` fails — the last good configuration
   * stays in force, `config_rejected` is emitted once, and the promise rejects with that
   * `MESH_CONFIG_INVALID` error.
   */
  reloadConfig(): Promise<void>;
  /**
   * Listen to the mesh's events. `dispose()` the subscription to stop, or hold it with `using`
   * (`using sub = mesh.onEvent(listener)`: it stops at the end of the scope).
   */
  onEvent(listener: (event: MeshEvent) => void): Subscription;
  /**
   * The admin server's URL (`http://127.0.0.1:port`) once it listens, when `MESH_ADMIN_PORT`
   * (or `telemetry.admin.port`) is set; `undefined` otherwise.
   */
  admin(): Promise<string | undefined>;
  /**
   * Register the running service in the shared registry (`MESH_REGISTRY=etcd` or `consul`): name,
   * id, address, port, tags, metadata, weights and a health check. `mesh.close()` deregisters it.
   * With `manageSignals`, SIGTERM/SIGINT mark it unhealthy, deregister it, keep serving for
   * `drainMs`, then close the mesh (at most `closeTimeoutMs` for calls in flight; or run
   * `onDrained`) and exit.
   *
   * @throws MeshError `MESH_CONFIG_INVALID` when no registry that supports registration is configured.
   */
  register(registration: Registration, options?: RegisterOptions): Promise<RegisteredInstance>;
  /**
   * Graceful: deregister, stop watches, let in-flight requests finish (for at most
   * `options.timeout` ms, then force), close every pool. Later calls get the same promise.
   */
  close(options?: CloseOptions): Promise<void>;
  /**
   * Immediate: abort in-flight requests and close everything — also after a `close()` in progress.
   * Calls in flight to mesh services fail with `reason` when one is given (as undici's
   * `destroy(err)`), else with `MESH_CLOSED`; pass-through calls (hosts no registry names) fail as
   * undici's destroyed `Agent` fails them (`UND_ERR_DESTROYED`, or `reason`).
   */
  destroy(reason?: Error): Promise<void>;
}
