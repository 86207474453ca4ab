import type { BalancerEvent, ObservableBalancer } from '@proxyless/balancer';
import {
  abortError,
  type CallContext,
  type CallResult,
  type Clock,
  compose,
  type Disposable,
  type Endpoint,
  type EndpointSet,
  formatHostPort,
  type Logger,
  MeshError,
  type Next,
  type Resolver,
  type ResolverUpdate,
} from '@proxyless/core';
import { type Dispatcher, Pool } from 'undici';
import { createTerminal } from './terminal.js';

/** What a destination needs from the mesh that owns it. */
export interface DestinationDeps {
  clock: Clock;
  logger: Logger;
  connectionsPerEndpoint: number;
  resolveTimeoutMs: number;
  /** Build the per-service policy (balancer + filters). Called again when config changes. */
  policy: (service: string) => DestinationPolicy;
  onSetChange: (service: string, set: EndpointSet) => void;
  onResolverError: (service: string, error: MeshError) => void;
  /** Panic, locality, ejection and health-check events of the balancer in force. */
  onBalancerEvent: (event: BalancerEvent) => void;
}

/** The per-service policy objects: rebuilt as a whole when the service's config changes. */
export interface DestinationPolicy {
  /** A key that changes exactly when the config changes (e.g. its JSON). */
  readonly key: string;
  readonly balancer: ObservableBalancer;
  readonly filters: readonly import('@proxyless/core').Filter[];
  /** `circuitBreaker.maxConnections`: connections to the whole destination, if capped. */
  readonly maxConnections: number | undefined;
  /** The circuit breaker's state (`closed`, `open`, `half-open`), when there is one. */
  circuitBreakerState(): 'closed' | 'open' | 'half-open' | undefined;
  close(): void;
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
  #call: Next;
  #pools = new Map<string, Pool>();
  #byEndpoint = new WeakMap<Endpoint, Pool>();
  #ready = false;
  #waiters: Array<() => void> = [];
  #closed = false;
  #unsubscribe: () => void;

  constructor(service: string, resolver: Resolver, deps: DestinationDeps) {
    this.service = service;
    this.#deps = deps;
    this.#policy = deps.policy(service);
    this.#unsubscribe = this.#policy.balancer.onEvent(deps.onBalancerEvent);
    this.#call = this.#compose();
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

  /** Run a call through this destination's pipeline, waiting for the first resolution if needed. */
  call(ctx: CallContext): Promise<CallResult> {
    if (this.#ready) return this.#call(ctx);
    return this.#waitReady(ctx).then(() => this.#call(ctx));
  }

  /** Rebuild the policy when its config changed; keeps the endpoint set and pools. */
  refreshPolicy(): void {
    let next: DestinationPolicy;
    try {
      next = this.#deps.policy(this.service);
    } catch (error) {
      // Validated before the configuration was accepted; if it still fails, keep the policy in force.
      this.#deps.logger.error('policy rebuild failed; keeping the policy in force', {
        service: this.service,
        error,
      });
      return;
    }
    if (next.key === this.#policy.key) {
      next.close();
      return;
    }
    const old = this.#policy;
    this.#unsubscribe();
    this.#policy = next;
    this.#unsubscribe = next.balancer.onEvent(this.#deps.onBalancerEvent);
    if (this.#set) next.balancer.update(this.#set);
    this.#call = this.#compose();
    old.close();
  }

  #compose(): Next {
    const terminal = createTerminal(this.service, () => this.#policy.balancer, {
      pool: (e) => this.#pool(e),
    });
    return compose(this.#policy.filters, terminal);
  }

  #pool(endpoint: Endpoint): Dispatcher {
    // Endpoint objects are immutable and reused across sets: cache the pool on the object first.
    const cached = this.#byEndpoint.get(endpoint);
    if (cached !== undefined && !cached.closed && !cached.destroyed) return cached;
    const key = formatHostPort(endpoint.address, endpoint.port);
    let pool = this.#pools.get(key);
    if (pool === undefined) {
      if (this.#closed)
        throw new MeshError('MESH_CLOSED', `the mesh is closed; no request to "${this.service}"`);
      pool = new Pool(`http://${key}`, { connections: this.#connectionsPerPool() });
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
    const live = new Set(set.endpoints.map((e) => formatHostPort(e.address, e.port)));
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

  #waitReady(ctx: CallContext): Promise<void> {
    if (ctx.signal?.aborted) return Promise.reject(abortError(ctx.signal));
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        cleanup();
        reject(abortError(ctx.signal!));
      };
      const timer = this.#deps.clock.setTimer(this.#deps.resolveTimeoutMs, () => {
        cleanup();
        reject(
          new MeshError(
            'MESH_NO_ENDPOINTS',
            `no endpoints for "${this.service}": the registry gave no answer within ${this.#deps.resolveTimeoutMs}ms`,
            { details: { service: this.service } },
          ),
        );
      });
      const done = (): void => {
        cleanup();
        resolve();
      };
      const cleanup = (): void => {
        timer.cancel();
        ctx.signal?.removeEventListener('abort', onAbort);
        this.#waiters = this.#waiters.filter((w) => w !== done);
      };
      this.#waiters.push(done);
      ctx.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#watch.dispose();
    this.#unsubscribe();
    this.#policy.close();
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.close().catch(() => p.destroy())));
  }

  /** Close every pool immediately, failing in-flight requests. */
  async destroy(): Promise<void> {
    this.#closed = true;
    this.#watch.dispose();
    this.#unsubscribe();
    this.#policy.close();
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(() => undefined)));
  }
}
