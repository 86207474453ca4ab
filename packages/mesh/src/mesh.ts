import type { BalancerEvent, BalancerStats, LoadBalancerPatch } from '@proxyless/balancer';
import {
  type CallContext,
  type Clock,
  type ConfigIssue,
  copyOptions,
  createEmitter,
  type Disposable,
  diagnosticsChannel,
  ENDPOINT_ATTRIBUTE,
  type Endpoint,
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
  createDocumentEndpointsResolver,
  createEtcdRegistrar,
  type DocumentEndpointsResolver,
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
import type { EffectiveConfig, PolicyRole } from './config/effective.js';
import { effectiveConfig } from './config/effective.js';
import { type Layer, parsePolicyPatch } from './config/layers.js';
import type { PolicyOptions, ServiceOptions } from './config/schema.js';
import {
  type ConfigSource,
  type ConfigVersion,
  fileConfigSource,
  optionsConfigSource,
} from './config/source.js';
import { ConfigStore, type Warning } from './config/store.js';
import { Destination } from './destination.js';
import { type DispatchTarget, MeshDispatcher } from './dispatcher.js';
import { allEnvVars } from './env-schema.js';
import { checkUnknownMeshVars, type RegistryKind, readMeshEnv } from './mesh-env.js';
import { buildPolicy } from './policy.js';
import { DispatchRequest, hasIdempotentFlag, IDEMPOTENT_HEADER } from './request.js';
import { createResolvers, type RegistrySettings, type ResolverSet, readRegistryEnv } from './resolvers.js';
import type { ChainTarget, RoutingChain, RoutingConfig } from './routing/index.js';
import {
  ConsulChains,
  entriesOf,
  entriesVersion,
  startEtcdEntries,
  tryCompileFileEntries,
} from './routing-sources.js';
import { type RouteOverrides, RoutingStage, type RoutingStats, subsetResolver } from './routing-stage.js';

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
  /** For a service with a routing chain: requests per route (index; `-1`: no router) and per target ID. */
  readonly routing?: RoutingStats;
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
  | {
      type: 'config_rejected';
      error: MeshError;
      /** Where the rejected version came from (`file`, `etcd`, `consul`), when known. */
      source?: string;
      /** The rejected version (etcd: revision; Consul: `X-Consul-Index`). */
      version?: number;
    }
  /** A config document version is in force; `changed` lists the live services and roles it rebuilt. */
  | {
      type: 'config_applied';
      source: string;
      version: number;
      changed: ReadonlyMap<string, readonly PolicyRole[]>;
      /** Config entries from Consul: the service whose discovery chain this is. */
      service?: string;
    }
  /** A setting is accepted but cannot work as written (e.g. `perTryTimeout` above `timeout`). */
  | { type: 'config_warning'; service: string | undefined; issue: ConfigIssue }
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
  /**
   * The compiled routing chain of a service (from `configEntries`, etcd or Consul), or `undefined`
   * when no config entry shapes it. See docs/traffic-management.md.
   */
  routes(service: string): RoutingChain | undefined;
  /**
   * The configuration in force for a service: resolved settings, and the layer (`options.defaults`,
   * `env`, `options.services`, `file.defaults`, `file.services`) and version each came from.
   * @throws MeshError `MESH_CONFIG_INVALID` only if the merged layers are invalid (never after createMesh succeeded).
   */
  config(service: string): EffectiveConfig;
  /** Read the config sources again now (they are also watched); resolves once the read is handled. */
  reloadConfig(): Promise<void>;
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

/** Datacenter file and etcd config entries are compiled for (target IDs name it). */
const ROUTING_DC = 'dc1';

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
  readonly #urls = new Map<string, { origin: string; path: string }>();
  #passthrough: boolean;
  #agent: Dispatcher | undefined;
  #ownAgent: boolean;
  #hostHeader: 'logical' | 'endpoint';
  #connections: number;
  #resolveTimeoutMs: number;
  #config: ConfigStore;
  #configSource: ConfigSource | undefined;
  #configPath: string | undefined;
  #documentEndpoints: DocumentEndpointsResolver | undefined;
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
  // ---- traffic management (routing-stage.ts, routing-sources.ts) ----
  readonly #routing: RoutingStage;
  #targetDests = new Map<string, Destination>();
  #consulChains: ConsulChains | undefined;
  #etcdEntries: Disposable | undefined;
  #fileEntriesVersion: string | undefined;
  // ---- end traffic management ----

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
    this.#config = new ConfigStore(
      optionsConfigSource({
        defaults: options.defaults,
        services: options.services as Record<string, Record<string, unknown>> | undefined,
      }).current(),
      env,
      issues,
    );
    const registries = readRegistryEnv(env, options.registry ?? settings.registry, issues);
    this.#registries = registries;
    this.#registryName = options.registry ?? settings.registry;
    // The config file is a config source: its first version is validated whole, like the rest.
    this.#configPath = options.configFile ?? settings.configFile;
    let warnings: readonly Warning[] | undefined;
    if (this.#configPath !== undefined) {
      const source = issues.try(() =>
        fileConfigSource({ path: this.#configPath as string, clock: this.#clock, logger: this.#logger }),
      );
      if (source) {
        this.#configSource = source;
        const first = issues.ok
          ? this.#config.validate(source.current(), `config file ${this.#configPath}`)
          : undefined;
        if (first instanceof MeshError) issues.list.push(...(first.details.issues ?? []));
        else if (first) {
          this.#config.swap(first.layers, [], first.effective);
          warnings = first.warnings;
          this.#documentEndpoints = createDocumentEndpointsResolver({
            clock: this.#clock,
            logger: this.#logger,
            endpoints: first.layers.endpoints,
          });
        }
      }
    }
    // Traffic management: the file's configEntries are validated with its first version.
    let fileRouting: RoutingConfig | undefined;
    if (this.#configSource && issues.ok) {
      const r = tryCompileFileEntries(this.#configSource.current().document, ROUTING_DC);
      if (r instanceof MeshError) issues.list.push(...(r.details.issues ?? []));
      else fileRouting = r;
    }
    // Without a document, the merged options and env layers are checked here (with one, validate did).
    if (warnings === undefined && issues.ok) warnings = this.#config.check(undefined, issues).warnings;
    if (!issues.ok) void this.#configSource?.close();
    issues.throwIfAny('invalid mesh configuration');
    // Metrics, traces and the access log: no-ops unless configured (or an SDK is registered).
    const telemetry = createTelemetry({
      settings: options.telemetry ?? {},
      env,
      clock: this.#clock,
      ...(options.metrics?.registry ? { registry: options.metrics.registry } : {}),
    });
    this.#telemetry = telemetry;
    this.#routing = new RoutingStage({
      random: this.#random,
      logicalHost: this.#hostHeader === 'logical',
      targetDestination: (target, overrides, lb) => this.#targetDestination(target, overrides, lb),
      send: (dest, opts, headers, handler, request) => this.#send(dest, opts, headers, handler, request),
    });
    if (this.#configSource) {
      this.#routing.setConfig('file', fileRouting);
      this.#fileEntriesVersion = entriesVersion(entriesOf(this.#configSource.current().document));
    }

    this.#resolvers = createResolvers({
      registries,
      random: this.#random,
      env,
      options,
      clock: this.#clock,
      logger: this.#logger,
      documentEndpoints: this.#documentEndpoints,
    });
    const source = this.#configSource;
    if (source) {
      source.onVersion((v) => this.#applyDocument(v));
      source.onError((error) => this.#rejectDocument(error));
    }
    // Warnings of the configuration at start reach listeners added right after createMesh.
    queueMicrotask(() => this.#warn(warnings ?? []));
    this.#startRoutingSources(registries);
    this.#agent = options.passthroughDispatcher ?? (this.#passthrough ? new Agent() : undefined);
    this.#ownAgent = options.passthroughDispatcher === undefined;
    this.dispatcher = new MeshDispatcher(this);
    // Telemetry counts the events it knows; config warnings are for listeners and logs.
    this.#events.event((event) => {
      if (event.type !== 'config_warning') telemetry.onMeshEvent(event);
    });
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
  }

  // ---- configuration from the config document -------------------------------------------------

  /**
   * A new document version: validated whole (merged rules included) before anything changes; then
   * swapped in at once, and only the destinations whose sections changed are rebuilt. A rejected
   * version leaves the last good one in force and is reported as `config_rejected`.
   */
  #applyDocument(version: ConfigVersion): void {
    if (this.#closing) return;
    const result = this.#config.validate(version, `config file ${this.#configPath}`);
    if (result instanceof MeshError) {
      this.#rejectDocument(result);
      return;
    }
    // Traffic management: the document's configEntries are part of the version, validated first.
    const entriesKey = entriesVersion(entriesOf(version.document));
    const routing =
      entriesKey === this.#fileEntriesVersion
        ? undefined
        : tryCompileFileEntries(version.document, ROUTING_DC);
    if (routing instanceof MeshError) {
      this.#rejectDocument(routing);
      return;
    }
    const changed = this.#config.swap(result.layers, this.#destinations.keys(), result.effective);
    if (entriesKey !== this.#fileEntriesVersion) {
      this.#routing.setConfig('file', routing);
      this.#fileEntriesVersion = entriesKey;
    }
    for (const d of this.#targetDests.values()) d.refreshPolicy();
    this.#logger.info('config file applied', {
      version: version.version,
      services: result.layers.services.size,
    });
    this.#documentEndpoints?.apply(result.layers.endpoints);
    for (const service of changed.keys()) this.#destinations.get(service)?.refreshPolicy();
    this.#events.fire({ type: 'config_applied', source: version.source, version: version.version, changed });
    this.#warn(result.warnings);
  }

  #rejectDocument(error: MeshError): void {
    this.#logger.warn('config file rejected; keeping the last good configuration', { error });
    this.#documentEndpoints?.fail(error);
    const source = this.#configSource?.name;
    this.#events.fire({ type: 'config_rejected', error, ...(source ? { source } : {}) });
  }

  #warn(warnings: readonly Warning[]): void {
    for (const { service, ...issue } of warnings) {
      this.#logger.warn('config setting cannot work as written', { service, ...issue });
      this.#events.fire({ type: 'config_warning', service, issue });
    }
  }

  config(service: string): EffectiveConfig {
    return this.#config.effective(service);
  }

  reloadConfig(): Promise<void> {
    return this.#configSource?.reload() ?? Promise.resolve();
  }

  // ---- traffic management: sources and target destinations ------------------------------------

  #startRoutingSources(registries: RegistrySettings): void {
    const events = {
      applied: (source: string, version: number, service?: string) =>
        this.#events.fire({
          type: 'config_applied',
          source,
          version,
          changed: new Map(),
          ...(service ? { service } : {}),
        }),
      rejected: (source: string, version: number, error: MeshError) => {
        this.#logger.warn('config entries rejected; keeping the last good version', {
          source,
          version,
          error,
        });
        this.#events.fire({ type: 'config_rejected', error, source, version });
      },
    };
    const deps = { stage: this.#routing, events, clock: this.#clock, logger: this.#logger };
    if (registries.etcd)
      this.#etcdEntries = startEtcdEntries(registries.etcd, {
        ...deps,
        random: this.#random,
        datacenter: ROUTING_DC,
      });
    if (registries.consul) this.#consulChains = new ConsulChains(registries.consul, deps);
  }

  /**
   * The destination of one routing target (service + subset) with a route's timeout/retry
   * overrides: its own balancer, outlier state and breaker over the subset's endpoints.
   */
  #targetDestination(
    target: ChainTarget,
    overrides: RouteOverrides | undefined,
    loadBalancer: LoadBalancerPatch | undefined,
  ): Destination {
    // The subset's filter and health rule are part of the key: a new config version that redefines
    // a subset under the same name gets a destination over the new subset.
    const base = `${target.id}|${target.filter}|${target.onlyPassing}`;
    const lbKey = loadBalancer ? `|${JSON.stringify(loadBalancer)}` : '';
    const key = overrides ? `${base}${lbKey}|${overrides.key}` : `${base}${lbKey}`;
    const cached = this.#targetDests.get(key);
    if (cached !== undefined) return cached;
    if (this.#closing) throw new MeshError('MESH_CLOSED', 'the mesh is closed');
    for (const resolver of this.#resolvers.list) {
      const service = resolver.match(target.service);
      if (service === undefined) continue;
      // Over the target service's own layers: the resolver's LoadBalancer, then the route's settings
      // (validated when the entries were; provenance shows them as the service's own layer).
      const extra: Layer[] = [];
      const layer = (patch: Layer['patch']): Layer => ({
        name: 'file.services',
        version: 0,
        raw: undefined,
        patch,
      });
      if (loadBalancer) extra.push(layer({ balancer: { loadBalancer }, resilience: undefined }));
      if (overrides)
        extra.push(layer(parsePolicyPatch(overrides.patch, `route to ${target.id}`, new Issues())));
      const dest = new Destination(
        service,
        subsetResolver(resolver, target),
        this.#destinationDeps((s) =>
          extra.length === 0
            ? this.#config.effective(s)
            : effectiveConfig(s, [...this.#config.layersFor(s), ...extra]),
        ),
      );
      this.#targetDests.set(key, dest);
      this.#armIdleSweep();
      return dest;
    }
    throw new MeshError(
      'MESH_NO_ENDPOINTS',
      `no registry knows "${target.service}" (routing target ${target.id})`,
      {
        details: { service: target.service },
      },
    );
  }

  /** What every destination (service or routing target) gets from the mesh. */
  #destinationDeps(
    config: (service: string) => EffectiveConfig,
  ): ConstructorParameters<typeof Destination>[2] {
    return {
      outer: this.#telemetry ? [{ role: 'telemetry', interceptor: this.#telemetry.callInterceptor }] : [],
      inner: this.#telemetry
        ? [{ role: 'telemetryAttempt', interceptor: this.#telemetry.attemptInterceptor }]
        : [],
      clock: this.#clock,
      logger: this.#logger,
      connectionsPerEndpoint: this.#connections,
      resolveTimeoutMs: this.#resolveTimeoutMs,
      policy: (s) =>
        buildPolicy(s, config(s), {
          clock: this.#clock,
          random: this.#random,
          logger: this.#logger,
          onBreakerStateChange: (service, state) =>
            this.#events.fire({ type: 'circuit_breaker', service, state }),
        }),
      onSetChange: (s, set) => this.#events.fire({ type: 'endpoints_changed', service: s, set }),
      onBalancerEvent: (event) => this.#events.fire({ type: 'balancer', service: event.service, event }),
      onResolverError: (s, error) => {
        this.#logger.warn('registry refresh failed; keeping the last known endpoints', { service: s, error });
        this.#events.fire({ type: 'resolver_error', service: s, error });
      },
    };
  }
  // ---- end traffic management ----

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
        dest = new Destination(
          service,
          resolver,
          this.#destinationDeps((s) => this.#config.effective(s)),
        );
        this.#consulChains?.watch(service);
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
      // Routing targets (traffic management) idle as long are released too: a target an old config
      // version used is not kept forever; the next request to it builds it again.
      for (const [key, d] of this.#targetDests) {
        if (d.inFlight > 0 || now - d.lastUsed < this.#idleTimeoutMs) continue;
        this.#targetDests.delete(key);
        void d.close();
      }
      if (this.#destinations.size > 0 || this.#targetDests.size > 0) this.#armIdleSweep();
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
    // ---- traffic management: services with a routing chain (one map lookup otherwise) ----
    const chains = this.#routing.chains;
    if (chains.size > 0) {
      const chain = chains.get(dest?.service ?? hostnameOf(origin) ?? '');
      if (chain !== undefined && !origin.startsWith('https:')) {
        // The routed service's own destination stays live (its watch starts Consul's chain watch).
        if (dest !== undefined) dest.lastUsed = this.#clock.now();
        try {
          return this.#routing.dispatch(chain, opts, origin, handler);
        } catch (error) {
          failDispatch(new CallHandler(handler), error as Error);
          return true;
        }
      }
    }
    // ---- end traffic management ----
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
        // Read the flag from the caller's headers before it is removed from what is sent.
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
    // Options built by `mesh.request` (they carry its sink) belong to this call: no copy needed.
    const sent = (opts[kCallSink] !== undefined ? opts : copyOptions(opts)) as MeshDispatchOptions;
    sent.headers = headers;
    sent[kCall] = ctx;
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
    const sink = (c: CallContext): void => {
      ctx = c;
    };
    const target =
      (options as { path?: unknown }).path == null && !('agent' in options) ? this.#target(url) : undefined;
    let r: Awaited<ReturnType<typeof undiciRequest>>;
    if (target !== undefined) {
      // undici's `request(url, opts)` is `dispatcher.request({ ...opts, origin, path, method })`;
      // the same call, built here without its spread literal (see `copyOptions`).
      const opts = copyOptions(options) as Dispatcher.RequestOptions & { [kCallSink]?: typeof sink };
      opts.origin = target.origin;
      opts.path = target.path;
      opts.method = (options.method || (options.body ? 'PUT' : 'GET')) as Dispatcher.HttpMethod;
      opts[kCallSink] = sink;
      r = (await this.dispatcher.request(opts)) as typeof r;
    } else {
      const opts = copyOptions(options) as Parameters<typeof undiciRequest>[1] & {
        [kCallSink]?: typeof sink;
      };
      opts!.dispatcher = this.dispatcher;
      opts![kCallSink] = sink;
      r = await undiciRequest(url, opts);
    }
    const ep = (ctx as CallContext | undefined)?.attributes.get(ENDPOINT_ATTRIBUTE) as Endpoint | undefined;
    const out = r as MeshResponseData;
    out.endpoint = ep ? formatHostPort(ep.address, ep.port) : undefined;
    return out;
  }

  /**
   * Origin and path of a request URL, as undici's `request()` reads them (`util.parseURL`), for
   * http(s) URLs; anything else returns undefined and takes undici's own path, which raises its
   * own errors. String URLs are remembered (a small table, emptied when full): a service calls the
   * same few URLs again and again, and parsing one costs about 1 µs.
   */
  #target(url: string | URL): { origin: string; path: string } | undefined {
    if (typeof url === 'string') {
      const known = this.#urls.get(url);
      if (known !== undefined) return known;
      if (!url.startsWith('http://') && !url.startsWith('https://')) return undefined;
      let u: URL;
      try {
        u = new URL(url);
      } catch {
        return undefined;
      }
      const t = { origin: u.origin, path: u.search ? `${u.pathname}${u.search}` : u.pathname };
      if (this.#urls.size >= 256) this.#urls.clear();
      this.#urls.set(url, t);
      return t;
    }
    if (url instanceof URL && (url.protocol === 'http:' || url.protocol === 'https:')) {
      return { origin: url.origin, path: url.search ? `${url.pathname}${url.search}` : url.pathname };
    }
    return undefined;
  }

  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    const opts = (init === undefined ? {} : copyOptions(init)) as NonNullable<
      Parameters<typeof undiciFetch>[1]
    >;
    opts.dispatcher = this.dispatcher;
    return undiciFetch(input as Parameters<typeof undiciFetch>[0], opts) as unknown as Promise<Response>;
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
    const routing = this.#routing.stats(service);
    return {
      ...d.balancer.stats(),
      ...(breaker ? { circuitBreaker: breaker } : {}),
      roles: [...d.roles, 'pick'],
      inFlight: d.inFlight,
      ...(routing ? { routing } : {}),
    };
  }

  routes(service: string): RoutingChain | undefined {
    return this.#routing.chains.get(service);
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
    await this.#consulChains?.close();
    this.#etcdEntries?.dispose();
    const dests = [...this.#destinations.values(), ...this.#targetDests.values()];
    this.#targetDests.clear();
    this.#destinations.clear();
    this.#byHost.clear();
    this.#byOrigin.clear();
    this.#closingDests = new Set(dests);
    await Promise.all(dests.map((d) => (force ? d.destroy() : d.close(timeoutMs))));
    await this.#resolvers.close();
    await this.#configSource?.close();
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
/** The Host header for an origin (`http://api:8080` → `api:8080`), remembered per origin. */
const hosts = new Map<string, string>();
function hostOf(origin: string): string {
  let host = hosts.get(origin);
  if (host === undefined) {
    const i = origin.indexOf('://');
    host = (i < 0 ? origin : origin.slice(i + 3)).replace(/\/+$/, '');
    if (hosts.size >= 1024) hosts.clear();
    hosts.set(origin, host);
  }
  return host;
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
