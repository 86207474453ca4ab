import type { LoadBalancerPatch } from '@proxyless/balancer';
import {
  type CallContext,
  type Clock,
  copyOptions,
  createEmitter,
  type Disposable,
  diagnosticsChannel,
  ENDPOINT_ATTRIBUTE,
  type Endpoint,
  type EndpointSet,
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
  systemClock,
  systemRandom,
  type Timer,
  UndiciAgent,
  undiciIfLoaded,
  undiciModule,
  withHeader,
} from '@proxyless/core';
import {
  createConsulRegistrar,
  createDocumentEndpointsResolver,
  createEtcdRegistrar,
  type DocumentEndpointsResolver,
  manageSignals,
} from '@proxyless/discovery';
import { allResolved, createTelemetry, serviceView, type Telemetry } from '@proxyless/telemetry';
import type { Dispatcher, fetch as undiciFetch, request as undiciRequest } from 'undici';
import type {
  CloseOptions,
  Mesh,
  MeshEvent,
  MeshOptions,
  MeshRequestOptions,
  MeshResponseData,
  RegisterOptions,
  ServiceStats,
} from './api.js';
import { CallHandler } from './call-handler.js';
import type { EffectiveConfig } from './config/effective.js';
import { effectiveConfig } from './config/effective.js';
import { type Layer, parsePolicyPatch } from './config/layers.js';
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
import { checkUnknownMeshVars, readMeshEnv } from './mesh-env.js';
import { hostnameOf, hostOf, requestTarget, unknownService } from './naming.js';
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
import { type RouteOverrides, RoutingStage, subsetResolver } from './routing-stage.js';

export type {
  CloseOptions,
  JsonValue,
  Mesh,
  MeshEvent,
  MeshOptions,
  MeshRequestOptions,
  MeshResponseData,
  PolicyOptions,
  RegisterOptions,
  ServiceOptions,
  ServiceStats,
} from './api.js';

const GLOBAL_DISPATCHER = Symbol.for('undici.globalDispatcher.1');

/** Datacenter file and etcd config entries are compiled for (target IDs name it). */
export const ROUTING_DC = 'dc1';

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
          this.#config.swap(first.layers, [], first.resolved);
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
    this.#agent = options.passthroughDispatcher ?? (this.#passthrough ? new UndiciAgent() : undefined);
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
    const changed = this.#config.swap(result.layers, this.#destinations.keys(), result.resolved);
    if (entriesKey !== this.#fileEntriesVersion) {
      this.#routing.setConfig('file', routing);
      this.#fileEntriesVersion = entriesKey;
    }
    // Diff before build: a destination builds only the parts whose settings changed (nothing when none did).
    const rebuilt = new Map<string, readonly string[]>();
    for (const [key, d] of this.#targetDests) {
      const parts = d.refreshPolicy();
      const id = key.slice(0, key.indexOf('|'));
      if (parts.length > 0) rebuilt.set(id, [...new Set([...(rebuilt.get(id) ?? []), ...parts])]);
    }
    this.#logger.info('config file applied', {
      version: version.version,
      services: result.layers.services.size,
    });
    this.#documentEndpoints?.apply(result.layers.endpoints);
    for (const service of changed.keys()) {
      const parts = this.#destinations.get(service)?.refreshPolicy() ?? [];
      if (parts.length > 0) rebuilt.set(service, parts);
    }
    this.#events.fire({
      type: 'config_applied',
      source: version.source,
      version: version.version,
      changed,
      rebuilt,
    });
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
          rebuilt: new Map(),
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
      telemetry: this.#telemetry
        ? { call: this.#telemetry.callInterceptor, attempt: this.#telemetry.attemptInterceptor }
        : undefined,
      clock: this.#clock,
      logger: this.#logger,
      connectionsPerEndpoint: this.#connections,
      resolveTimeoutMs: this.#resolveTimeoutMs,
      policy: (s, previous) =>
        buildPolicy(
          s,
          config(s),
          {
            clock: this.#clock,
            random: this.#random,
            logger: this.#logger,
            onBreakerStateChange: (service, state) =>
              this.#events.fire({ type: 'circuit_breaker', service, state }),
          },
          previous,
        ),
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
      (options as { path?: unknown }).path == null && !('agent' in options) ? requestTarget(url) : undefined;
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
      // Options undici's own URL handling reads (`path`, `agent`): its `request()` itself.
      r = await (await undiciModule()).request(url, opts);
    }
    const ep = (ctx as CallContext | undefined)?.attributes.get(ENDPOINT_ATTRIBUTE) as Endpoint | undefined;
    const out = r as MeshResponseData;
    out.endpoint = ep ? formatHostPort(ep.address, ep.port) : undefined;
    return out;
  }

  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    const opts = (init === undefined ? {} : copyOptions(init)) as NonNullable<
      Parameters<typeof undiciFetch>[1]
    >;
    opts.dispatcher = this.dispatcher;
    const target = input as Parameters<typeof undiciFetch>[0];
    // undici's fetch is imported on the first call (core/undici.ts), then called directly.
    const undici = undiciIfLoaded();
    const result = undici ? undici.fetch(target, opts) : undiciModule().then((u) => u.fetch(target, opts));
    return result as unknown as Promise<Response>;
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
