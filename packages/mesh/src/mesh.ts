import type { EventEmitter } from 'node:events';
import type { UrlObject } from 'node:url';
import {
  type Clock,
  createEmitter,
  type Disposable,
  diagnosticsChannel,
  type EndpointSet,
  type Logger,
  MeshError,
  type Random,
  type RegisteredInstance,
  type Registration,
  type Subscription,
} from '@proxyless/core';
import type { Telemetry } from '@proxyless/telemetry';
import type { Dispatcher } from 'undici';
import { startMeshAdmin } from './admin.js';
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
import { CallPath } from './calls.js';
import { listenToSource, stopListening } from './config/document-source.js';
import type { EffectiveConfig } from './config/effective.js';
import { reloadSource } from './config/reload.js';
import type { ConfigSource } from './config/source.js';
import type { ConfigStore } from './config/store.js';
import { ConfigApplier } from './config-apply.js';
import { closedError } from './destination.js';
import { DestinationTable } from './destination-table.js';
import { forwardPoolEvents, type PoolEventSink } from './endpoint-pools.js';
import { installGlobally } from './install.js';
import { MeshLifecycle } from './lifecycle.js';
import { type PassthroughDispatcher, passthroughAgent } from './passthrough.js';
import { Registrations } from './registration.js';
import { createResolvers, type ResolverSet } from './resolvers.js';
import type { RoutingChain } from './routing/index.js';
import { RoutingStage } from './routing-stage.js';
import { targetIdOf, targetStats } from './routing-targets.js';
import { readStartConfig } from './start-config.js';

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
  TargetStats,
} from './api.js';
/** Datacenter file and etcd config entries are compiled for (config-apply.ts; importers read it here). */
export { ROUTING_DC } from './config-apply.js';

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

/** The mesh: wiring, accessors and lifecycle (its parts: destination-table.ts, calls.ts, config-apply.ts). */
class MeshImpl implements Mesh {
  readonly dispatcher: Dispatcher;
  readonly serviceName: string;
  #clock: Clock;
  #random: Random;
  #logger: Logger;
  #resolvers: ResolverSet;
  readonly #destinations: DestinationTable;
  readonly #calls: CallPath;
  readonly #documents: ConfigApplier;
  #agent: PassthroughDispatcher | undefined;
  readonly #lifecycle: MeshLifecycle;
  #config: ConfigStore;
  #configSource: ConfigSource | undefined;
  /** False for a caller's `configSource`: the mesh stops listening to it but does not close it. */
  #ownSource = true;
  readonly #sourceListeners: Disposable[] = [];
  #events = createEmitter<MeshEvent>(() => undefined);
  readonly #registrations: Registrations;
  readonly #telemetry: Telemetry | undefined;
  #admin: Promise<string | undefined> = Promise.resolve(undefined);
  /** Undo functions of this mesh's installs not undone yet: a shutdown undoes them. */
  readonly #installed = new Set<() => void>();
  // ---- traffic management (routing-stage.ts, routing-sources.ts) ----
  readonly #routing: RoutingStage;
  // ---- end traffic management ----

  constructor(options: MeshOptions) {
    // As undici's own `fetch` and `request`: callable without their object (`{ fetch: mesh.fetch }`,
    // `globalThis.fetch = mesh.fetch`), as a library's `fetch` option calls them.
    this.fetch = this.fetch.bind(this);
    this.request = this.request.bind(this);
    const start = readStartConfig(options);
    const { env, settings, config, registries, document, firstVersion, documentEndpoints, warnings } = start;
    const { fileRouting, telemetry } = start;
    const { hostHeader, connectionsPerEndpoint, resolveTimeoutMs, idleTimeoutMs, passthrough } = settings;
    this.serviceName = settings.serviceName;
    this.#clock = start.clock;
    this.#random = start.random;
    this.#logger = start.logger;
    this.#config = config;
    this.#configSource = document?.source;
    this.#ownSource = document?.own ?? true;
    this.#registrations = new Registrations({
      registries,
      registryName: settings.registryName,
      clock: this.#clock,
      random: this.#random,
      logger: this.#logger,
      close: (options) => this.close(options),
    });
    this.#telemetry = telemetry;
    // (A source may deliver a version while the constructor subscribes, before the lifecycle exists.)
    const closing = (): boolean => (this.#lifecycle as MeshLifecycle | undefined)?.stopped === true;
    this.#routing = new RoutingStage({
      random: this.#random,
      clock: this.#clock,
      logicalHost: hostHeader === 'logical',
      targetDestination: (target, lb, chain) => this.#destinations.targetDestination(target, lb, chain),
      send: (dest, opts, headers, handler, request, route, owner) =>
        this.#calls.send(dest, opts, headers, handler, request, undefined, route, owner),
    });

    this.#resolvers = createResolvers({
      registries,
      random: this.#random,
      env,
      options,
      clock: this.#clock,
      logger: this.#logger,
      documentEndpoints,
      serviceNames: () => this.#config.serviceNames(),
    });
    const parts = { events: this.#events, clock: this.#clock, random: this.#random, logger: this.#logger };
    this.#destinations = new DestinationTable({
      ...parts,
      resolvers: this.#resolvers,
      config: this.#config,
      telemetry,
      connectionsPerEndpoint,
      resolveTimeoutMs,
      idleTimeoutMs,
      closing,
      watchChain: (service) => this.#documents.watchChain(service),
      unwatchChain: (service) => this.#documents.unwatchChain(service),
      poolEvent: (event, origin, targets, error) => this.#emitPoolEvent(event, origin, targets, error),
    });
    this.#documents = new ConfigApplier(
      {
        ...parts,
        config: this.#config,
        source: this.#configSource,
        what: document?.what ?? 'config document',
        ownSource: this.#ownSource,
        documentEndpoints,
        routing: this.#routing,
        destinations: this.#destinations,
        closing,
      },
      fileRouting,
      firstVersion,
    );
    this.#documents.warnings.hold(warnings ?? []);
    // After close nothing a source says reaches the mesh, whether or not its handles dispose.
    if (this.#configSource !== undefined) {
      try {
        this.#sourceListeners.push(
          ...listenToSource(
            this.#configSource,
            {
              closing,
              apply: (v) => this.#documents.apply(v),
              reject: (error, version, stale, kind) => this.#documents.reject(error, version, stale, kind),
            },
            this.#logger,
          ),
        );
      } catch (error) {
        // The mesh does not start: what it has started so far is released.
        void telemetry.close().catch(() => undefined);
        void this.#resolvers.close().catch(() => undefined);
        if (this.#ownSource) void this.#configSource.close();
        throw error;
      }
    }
    // Warnings of the configuration in force at start reach listeners added right after createMesh.
    this.#documents.warnings.stopHolding();
    queueMicrotask(() => this.#documents.warnings.release());
    this.#documents.startRoutingSources(registries);
    const agentPools = new Set<Dispatcher>();
    // Pass-through origins: the agent's own events, as seen from the mesh dispatcher (from when
    // the mesh's own agent is made, at the first pass-through call).
    const ownAgentMade = (agent: Dispatcher): void =>
      forwardPoolEvents(agent, (...e) => this.#emitPoolEvent(...e), true);
    this.#agent =
      options.passthroughDispatcher ?? (passthrough ? passthroughAgent(agentPools, ownAgentMade) : undefined);
    this.#lifecycle = new MeshLifecycle({
      clock: this.#clock,
      destinations: this.#destinations,
      agent: this.#agent,
      ownAgent: options.passthroughDispatcher === undefined,
      agentPools,
      shutdown: (drained) => this.#shutdown(drained),
    });
    this.#calls = new CallPath({
      destinations: this.#destinations,
      routing: this.#routing,
      clock: this.#clock,
      random: this.#random,
      agent: this.#agent,
      hostHeader,
      lifecycle: this,
    });
    this.dispatcher = this.#calls.dispatcher;
    // Telemetry counts the events it knows and keeps every one for `/events`.
    this.#events.event((event) => telemetry.onMeshEvent(event));
    // The config document's first version is in force from the start (`mesh_config_version`).
    const firstDocument = this.#config.document;
    if (firstDocument !== undefined && this.#configSource !== undefined)
      telemetry.onMeshEvent({
        type: 'config_applied',
        source: this.#configSource.name,
        version: firstDocument.version,
      });
    this.#admin = startMeshAdmin({
      telemetry,
      mesh: this,
      serviceName: this.serviceName,
      destinations: this.#destinations,
      config: this.#config,
      document: () => this.#documents.documentStatus(),
      routing: () => this.#documents.routingStatus(),
      clock: this.#clock,
      logger: this.#logger,
      ready: () => this.#ready(),
      onFailure: (error) => this.#events.fire({ type: 'admin_failed', error }),
    });
    // Every mesh event also goes to `diagnostics_channel` `proxyless:mesh:event` (free without subscribers).
    const channel = diagnosticsChannel('mesh', 'event');
    this.#events.event((event) => {
      if (channel.hasSubscribers) channel.publish({ mesh: this.serviceName, ...event });
    });
  }

  /** As undici's Agent: its pools' connection events, from the dispatcher, with it first in targets. */
  #emitPoolEvent(...[event, origin, targets, error]: Parameters<PoolEventSink>): void {
    (this.dispatcher as EventEmitter).emit(event, origin, [this.dispatcher, ...targets], error);
  }

  config(service: string): EffectiveConfig {
    return this.#config.effective(service);
  }

  reloadConfig(): Promise<void> {
    if (this.#lifecycle.stopped)
      return Promise.reject(
        new MeshError('MESH_CLOSED', 'the mesh is closed; its configuration is not reloaded'),
      );
    const source = this.#configSource;
    if (source === undefined) return Promise.resolve();
    return reloadSource(source, this.#documents, () => this.#lifecycle.stopped);
  }

  /** undici's `request()` over the mesh dispatcher, plus `endpoint` (calls.ts). */
  request<TOpaque = null>(
    url: string | URL | UrlObject,
    options?: MeshRequestOptions<TOpaque>,
  ): Promise<MeshResponseData<TOpaque>> {
    return this.#calls.request(url, options);
  }

  /** undici's `fetch` over the mesh dispatcher (calls.ts). */
  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    return this.#calls.fetch(input, init);
  }

  install(): () => void {
    if (this.#lifecycle.stopped)
      throw new MeshError('MESH_CLOSED', 'the mesh is closed; it cannot be installed');
    const undoInstall = installGlobally(this.dispatcher);
    const undo = (): void => {
      this.#installed.delete(undo);
      undoInstall();
    };
    this.#installed.add(undo);
    return undo;
  }

  /**
   * `/readyz`: every service some layer names (code options, the config file) and every service
   * called so far has resolved at least once. A named service not built yet is built now, so its
   * registry watch starts (Envoy warms its clusters before it reports ready).
   */
  #ready(): boolean {
    if (this.#lifecycle.stopped) return false;
    const names = new Set([...this.#config.serviceNames(), ...this.services()]);
    // Every configured service's watch starts on this probe, not one per probe: each is looked at
    // before the answer (a 200-service document was ready only after 201 probes).
    let ready = true;
    for (const name of names) {
      // A name no registry knows (a policy for a host that passes through) cannot hold it up.
      const d = this.#destinations.serviceDestination(name) ?? this.#destinations.destinationFor(name);
      if (d !== undefined && d.endpointSet === undefined) ready = false;
    }
    return ready;
  }

  endpoints(service: string): EndpointSet | undefined {
    return this.#destinations.serviceDestination(service)?.endpointSet;
  }

  services(): string[] {
    return this.#destinations.services();
  }

  stats(service: string): ServiceStats | undefined {
    const d = this.#destinations.serviceDestination(service);
    if (d === undefined) return undefined;
    const breaker = d.circuitBreakerState;
    const routing = this.#routing.stats(service);
    const chain = this.#routing.chains.get(service);
    const targets = chain === undefined ? undefined : targetStats(chain, this.#destinations.targets);
    let inFlight = d.inFlight;
    // The service's own destination counts its routed calls too (wherever they were sent); a
    // service reached only through routes has its whole-service target's count, and its targets'.
    if (chain !== undefined && this.#destinations.byService.get(service) !== d) {
      const counted = new Set([d]);
      for (const [key, t] of this.#destinations.targets) {
        if (counted.has(t) || !chain.targets.has(targetIdOf(key))) continue;
        counted.add(t);
        inFlight += t.inFlight;
      }
    }
    return {
      ...d.balancer.stats(),
      ...(breaker ? { circuitBreaker: breaker } : {}),
      roles: [...d.roles, 'pick'],
      inFlight,
      ...(routing ? { routing } : {}),
      ...(targets ? { targets } : {}),
    };
  }

  routes(service: string): RoutingChain | undefined {
    return this.#routing.chains.get(service);
  }

  onEvent(listener: (event: MeshEvent) => void): Subscription {
    return this.#events.event(listener);
  }

  admin(): Promise<string | undefined> {
    return this.#admin;
  }

  close(options: CloseOptions = {}): Promise<void> {
    return this.#lifecycle.close(options);
  }

  destroy(reason?: Error): Promise<void> {
    return this.#lifecycle.destroy(reason);
  }

  /** `close()` was called (the dispatcher's `closed`, as undici's: `destroy()` alone does not set it). */
  get closed(): boolean {
    return this.#lifecycle.closeCalled;
  }

  /** `destroy()` was called or `close()` finished (the dispatcher's `destroyed`, as undici's). */
  get destroyed(): boolean {
    return this.#lifecycle.destroyed;
  }

  register(registration: Registration, options: RegisterOptions = {}): Promise<RegisteredInstance> {
    if (this.#lifecycle.stopped) {
      const service = (registration as { service?: unknown } | null)?.service;
      const what = 'the mesh is closed; it cannot register';
      return Promise.reject(
        typeof service === 'string' ? closedError(service, what) : new MeshError('MESH_CLOSED', what),
      );
    }
    return this.#registrations.register(registration, options);
  }

  /**
   * The rest of a shutdown, while `drained` (calls in flight, which the lifecycle drains or forces)
   * settles. The resolvers close only after it: a call waiting for a first answer may still get one.
   */
  async #shutdown(drained: Promise<void>): Promise<void> {
    await this.#telemetry?.close().catch(() => undefined);
    // Leave the registry first, so callers stop picking this instance while it still serves.
    await this.#registrations.close();
    await this.#documents.stopRoutingSources();
    await drained;
    await this.#resolvers.close();
    // A caller's source may hand back anything: its failure must not stop the shutdown.
    stopListening(this.#sourceListeners, this.#logger);
    // The file source is the mesh's own; a `configSource` belongs to the caller.
    if (this.#ownSource) await this.#configSource?.close();
    // A closed mesh does not keep Node's global fetch: what its installs replaced comes back
    // (until then, global fetch calls are refused with MESH_CLOSED, as every new call is).
    for (const undo of [...this.#installed].reverse()) undo();
    this.#events.clear();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
