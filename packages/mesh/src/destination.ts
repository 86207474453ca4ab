import type { BalancerEvent, ObservableBalancer } from '@proxyless/balancer';
import {
  type Clock,
  composeInterceptors,
  type DispatchFn,
  type Disposable,
  type Endpoint,
  type EndpointSet,
  type Filter,
  formatHostPort,
  type Interceptor,
  KEEP_ALIVE,
  type Logger,
  MeshError,
  type MeshHandler,
  RelayController,
  RelayedHandler,
  type Resolver,
  type ResolverUpdate,
  type Timer,
  UndiciPool,
} from '@proxyless/core';
import type { Dispatcher, Pool } from 'undici';
import { createPickStage } from './pick.js';
import { buildStack, type StackParts } from './stack.js';

/** What a destination needs from the mesh that owns it. */
export interface DestinationDeps {
  /** The call's and each attempt's telemetry stages, when telemetry is on (placed by `MESH_STACK`). */
  telemetry: StackParts['telemetry'];
  clock: Clock;
  logger: Logger;
  connectionsPerEndpoint: number;
  /** Connect timeout of the destination's pools (a routing target's `ConnectTimeout`); undici's default when unset. */
  connectTimeoutMs?: number;
  resolveTimeoutMs: number;
  /**
   * Build the per-service policy (balancer + filters). Called again when config changes, with the
   * policy in force: what the change does not touch is taken over from it (see `buildPolicy`).
   */
  policy: (service: string, previous?: DestinationPolicy) => DestinationPolicy;
  onSetChange: (service: string, set: EndpointSet) => void;
  onResolverError: (service: string, error: MeshError) => void;
  /** Panic, locality, ejection and health-check events of the balancer in force. */
  onBalancerEvent: (event: BalancerEvent) => void;
}

/** The per-service policy objects: on a config change, only the parts it touches are built anew. */
export interface DestinationPolicy {
  /** A key that changes exactly when the config changes (e.g. its JSON). */
  readonly key: string;
  readonly balancer: ObservableBalancer;
  readonly filters: readonly Filter[];
  /** The roles of the stages in force, outermost first (`deadline`, `retry`, `circuitBreaker`, …). */
  readonly roles: readonly string[];
  /** The parts built for this policy (`balancer`, `retry`, …); the rest came from the previous one. */
  readonly rebuilt: readonly string[];
  /** `circuitBreaker.maxConnections`: connections to the whole destination, if capped. */
  readonly maxConnections: number | undefined;
  /** The circuit breaker's state (`closed`, `open`, `half-open`), when there is one. */
  circuitBreakerState(): 'closed' | 'open' | 'half-open' | undefined;
  close(): void;
  /** Release what `next` (built from this policy) did not take over. */
  retire(next: DestinationPolicy): void;
}

/**
 * One logical destination service: its resolver watch, current endpoint set, balancer, policy
 * pipeline and one undici `Pool` per endpoint. The pipeline is composed when the policy is built,
 * never per request.
 */
export class Destination {
  readonly service: string;
  #deps: DestinationDeps;
  #watch: Disposable;
  #set: EndpointSet | undefined;
  #lastError: MeshError | undefined;
  #policy: DestinationPolicy;
  #dispatch: DispatchFn;
  #roles: readonly string[] = [];
  #pools = new Map<string, Pool>();
  /** Set when the mesh evicted this destination for idleness: callers look it up again. */
  evicted = false;
  /** Calls in flight through this destination (until their exchange ends). */
  inFlight = 0;
  /** Clock time of the latest call (for idle eviction). */
  lastUsed: number;
  #byEndpoint = new WeakMap<Endpoint, Pool>();
  #draining: Pool[] = [];
  #ready = false;
  #waiters: Array<() => void> = [];
  #closed = false;
  #unsubscribe: () => void;

  constructor(service: string, resolver: Resolver, deps: DestinationDeps) {
    this.service = service;
    this.#deps = deps;
    this.#policy = deps.policy(service);
    this.#unsubscribe = this.#policy.balancer.onEvent(deps.onBalancerEvent);
    this.#dispatch = this.#compose();
    this.lastUsed = deps.clock.now();
    this.#watch = resolver.watch(service, (u) => this.#onUpdate(u));
  }

  get endpointSet(): EndpointSet | undefined {
    return this.#set;
  }

  get lastError(): MeshError | undefined {
    return this.#lastError;
  }

  get policyKey(): string {
    return this.#policy.key;
  }

  get circuitBreakerState(): 'closed' | 'open' | 'half-open' | undefined {
    return this.#policy.circuitBreakerState();
  }

  get balancer(): ObservableBalancer {
    return this.#policy.balancer;
  }

  /** The roles of the stages in force, outermost first (the pick stage under them is not listed). */
  get roles(): readonly string[] {
    return this.#roles;
  }

  /**
   * Send one call (dispatch options carrying its context) through this destination's stack. Before
   * the first resolution the call waits (up to `resolveTimeoutMs`), with a controller of its own so
   * the caller can abort it.
   */
  dispatch(opts: Dispatcher.DispatchOptions, handler: MeshHandler): boolean {
    if (this.#ready) return this.#dispatch(opts, handler);
    this.#waitReady(opts, handler);
    return true;
  }

  /**
   * Apply a config change: only the parts of the policy it touches are built anew (the balancer,
   * single stages); the rest keep their instances and state, and so do the endpoint set and pools.
   * @returns what was built anew (empty: nothing changed, nothing was built or armed).
   */
  refreshPolicy(): readonly string[] {
    const old = this.#policy;
    let next: DestinationPolicy;
    try {
      next = this.#deps.policy(this.service, old);
    } catch (error) {
      // Validated before the configuration was accepted; if it still fails, keep the policy in force.
      this.#deps.logger.error('policy rebuild failed; keeping the policy in force', {
        service: this.service,
        error,
      });
      return [];
    }
    if (next.key === old.key && next.rebuilt.length === 0) return [];
    this.#policy = next;
    if (next.balancer !== old.balancer) {
      this.#unsubscribe();
      this.#unsubscribe = next.balancer.onEvent(this.#deps.onBalancerEvent);
      if (this.#set) next.balancer.update(this.#set);
    }
    const sameStack =
      next.filters.length === old.filters.length && next.filters.every((f, i) => f === old.filters[i]);
    if (!sameStack) this.#dispatch = this.#compose();
    old.retire(next);
    return next.rebuilt;
  }

  #compose(): DispatchFn {
    const pick = createPickStage(
      this.service,
      () => this.#policy.balancer,
      { pool: (e) => this.#pool(e) },
      this.#deps.clock,
    );
    const policy = new Map<string, Interceptor>();
    this.#policy.roles.forEach((role, i) => {
      policy.set(role, this.#policy.filters[i] as Interceptor);
    });
    const stack = buildStack({ policy, telemetry: this.#deps.telemetry });
    this.#roles = stack.roles;
    return composeInterceptors(stack.interceptors, pick);
  }

  #pool(endpoint: Endpoint): Dispatcher {
    // Endpoint objects are immutable and reused across sets: cache the pool on the object first.
    const cached = this.#byEndpoint.get(endpoint);
    if (cached !== undefined && !cached.closed && !cached.destroyed) return cached;
    // Pools are keyed by scheme + endpoint: a TLS origin gets its own pool with its connect options.
    const key = `http://${formatHostPort(endpoint.address, endpoint.port)}`;
    let pool = this.#pools.get(key);
    if (pool === undefined) {
      if (this.#closed)
        throw new MeshError('MESH_CLOSED', `the mesh is closed; no request to "${this.service}"`);
      const connectTimeout = this.#deps.connectTimeoutMs;
      pool = new UndiciPool(key, {
        connections: this.#connectionsPerPool(),
        ...(connectTimeout !== undefined && connectTimeout > 0 ? { connectTimeout } : {}),
      });
      // Connectivity (gRPC subchannel states): a new connection makes the endpoint READY at once;
      // none left makes it IDLE. Connect failures arrive as attempt outcomes from the pick stage.
      pool.on('connect', () => this.#policy.balancer.onConnected(endpoint));
      pool.on('disconnect', () => {
        if ((pool as Pool).stats.connected === 0) this.#policy.balancer.onDisconnected(endpoint);
      });
      this.#pools.set(key, pool);
    }
    this.#byEndpoint.set(endpoint, pool);
    return pool;
  }

  /**
   * Connections for a new endpoint pool: `connectionsPerEndpoint`, or less when the destination has
   * an Envoy-style `maxConnections` — divided evenly over its current endpoints, at least one each.
   */
  #connectionsPerPool(): number {
    const perEndpoint = this.#deps.connectionsPerEndpoint;
    const max = this.#policy.maxConnections;
    if (max === undefined) return perEndpoint;
    const n = Math.max(1, this.#set?.endpoints.length ?? 1);
    return Math.max(1, Math.min(perEndpoint, Math.floor(max / n)));
  }

  #onUpdate(update: ResolverUpdate): void {
    if (this.#closed) return;
    if (update.kind === 'endpoints') {
      this.#lastError = undefined;
      this.#apply(update.set);
    } else {
      this.#lastError = update.error;
      this.#deps.onResolverError(this.service, update.error);
      // Keep routing on the last known set (marked stale); never empty a working set on a failure.
      if (update.lastGood) this.#apply(update.lastGood);
    }
    this.#markReady();
  }

  #apply(set: EndpointSet): void {
    this.#set = set;
    this.#policy.balancer.update(set);
    const live = new Set(set.endpoints.map((e) => `http://${formatHostPort(e.address, e.port)}`));
    for (const [key, pool] of this.#pools) {
      if (!live.has(key)) {
        this.#pools.delete(key);
        // Graceful: requests already on the pool finish; new ones go to live endpoints.
        pool.close().catch(() => undefined);
      }
    }
    this.#deps.onSetChange(this.service, set);
  }

  #markReady(): void {
    if (this.#ready) return;
    this.#ready = true;
    const w = this.#waiters;
    this.#waiters = [];
    for (const fn of w) fn();
  }

  #waitReady(opts: Dispatcher.DispatchOptions, handler: MeshHandler): void {
    let timer: Timer | undefined;
    let inner: Dispatcher.DispatchController | undefined;
    let waiting = true;
    const leave = (): void => {
      waiting = false;
      timer?.cancel();
      this.#waiters = this.#waiters.filter((w) => w !== go);
    };
    const relay = new RelayController((reason) => {
      if (inner !== undefined) return inner.abort(reason);
      if (!waiting) return;
      leave();
      handler.onResponseError?.(relay, reason);
    });
    const go = (): void => {
      if (!waiting) return;
      leave();
      this.#dispatch(
        opts,
        new RelayedHandler(handler, relay, (c) => {
          inner = c;
        }),
      );
    };
    handler.onRequestStart?.(relay, {});
    if (relay.aborted) return;
    this.#waiters.push(go);
    timer = this.#deps.clock.setTimer(
      this.#deps.resolveTimeoutMs,
      () => {
        if (!waiting) return;
        leave();
        handler.onResponseError?.(
          relay,
          new MeshError(
            'MESH_NO_ENDPOINTS',
            `no endpoints for "${this.service}": the registry gave no answer within ${this.#deps.resolveTimeoutMs}ms`,
            { details: { service: this.service } },
          ),
        );
      },
      KEEP_ALIVE,
    );
  }

  /**
   * Graceful: stop the watch and the policy timers, let exchanges in flight finish, close every
   * pool. With `timeoutMs`, pools still busy after it are destroyed.
   */
  async close(timeoutMs?: number): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#watch.dispose();
    this.#unsubscribe();
    this.#policy.close();
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    this.#draining = pools;
    const closing = Promise.all(pools.map((p) => p.close().catch(() => p.destroy())));
    if (timeoutMs === undefined) {
      await closing;
      return;
    }
    let timer: Timer | undefined;
    const expired = new Promise<'expired'>((resolve) => {
      timer = this.#deps.clock.setTimer(timeoutMs, () => resolve('expired'), KEEP_ALIVE);
    });
    const outcome = await Promise.race([closing.then(() => 'closed' as const), expired]);
    timer?.cancel();
    if (outcome === 'expired') await Promise.all(pools.map((p) => p.destroy().catch(() => undefined)));
  }

  /** Close every pool immediately, failing in-flight requests. */
  async destroy(): Promise<void> {
    const wasClosed = this.#closed;
    this.#closed = true;
    if (!wasClosed) {
      this.#watch.dispose();
      this.#unsubscribe();
      this.#policy.close();
    }
    // Pools a graceful close is still draining are destroyed too: destroy() always forces.
    const pools = [...this.#pools.values(), ...this.#draining];
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(() => undefined)));
  }
}
