/**
 * A destination's connection pools: one undici `Pool` per endpoint, keyed by scheme + endpoint,
 * sized by `connectionsPerEndpoint` or an Envoy-style `circuitBreaker.maxConnections`, and retired
 * gracefully (requests on them finish) when their endpoint leaves the set or their size changes.
 */

import type { EventEmitter } from 'node:events';
import type { ObservableBalancer } from '@proxyless/balancer';
import { type Endpoint, formatHostPort, MeshError, undiciPool } from '@proxyless/core';
import type { Dispatcher, Pool } from 'undici';
import { errorCode, isLocalCode } from './transport-errors.js';

/** What the pools need from their destination. */
/**
 * Connections per endpoint when neither `connectionsPerEndpoint` nor the destination's
 * `maxConnections` says otherwise: Envoy's default `max_connections` (per cluster there). Not 100:
 * over HTTP/1.1 a long-lived response holds its connection, and the 101st call to a service with
 * 100 event streams open waited for one to end. Not unbounded: a burst of thousands of calls opened
 * a connection each at once (the server's listen backlog overflowed: resets and connect timeouts
 * charged to a healthy endpoint), where a bounded pool queues them.
 */
export const DEFAULT_CONNECTIONS = 1024;

export interface EndpointPoolsDeps {
  service: string;
  /** Connections each endpoint's pool may open, as set; `undefined`: {@link DEFAULT_CONNECTIONS}. */
  connectionsPerEndpoint: number | undefined;
  /** Connect timeout in force, ms: a routing target's `ConnectTimeout`, else `connectTimeout`. */
  connectTimeoutMs(): number;
  /** The balancer in force (told when an endpoint's first connection opens or its last closes). */
  balancer(): ObservableBalancer;
  /** `circuitBreaker.maxConnections` in force, if capped. */
  maxConnections(): number | undefined;
  /** How many endpoints the destination has now. */
  endpointCount(): number;
  /** True once the destination released everything: no pool is made any more. */
  released(): boolean;
  /** Each pool's `connect`, `disconnect`, `connectionError` and `drain` event, passed on. */
  poolEvent?: PoolEventSink;
  /** A connect to an endpoint failed (not for a local reason): its address may have moved. */
  connectFailed?: () => void;
}

/** Where a dispatcher's connection events go: undici's `(origin, targets, error?)` arguments. */
export type PoolEventSink = (event: PoolEventName, origin: URL, targets: Dispatcher[], error?: Error) => void;
export type PoolEventName = 'connect' | 'disconnect' | 'connectionError' | 'drain';
const POOL_EVENTS: readonly PoolEventName[] = ['connect', 'disconnect', 'connectionError', 'drain'];

/**
 * Pass `source`'s connection events to `sink`. `ownTarget`: the source puts itself first in
 * `targets` (an Agent does), and that entry is left out.
 */
export function forwardPoolEvents(source: Dispatcher, sink: PoolEventSink, ownTarget = false): void {
  for (const name of POOL_EVENTS) {
    (source as EventEmitter).on(name, (origin: URL, targets: Dispatcher[], error?: Error) =>
      sink(name, origin, ownTarget ? targets.slice(1) : targets, error),
    );
  }
}

/** The pool key of an endpoint: scheme + host:port (a TLS origin would get a pool of its own). */
function keyOf(endpoint: Endpoint): string {
  return `http://${formatHostPort(endpoint.address, endpoint.port)}`;
}

export class EndpointPools {
  readonly #deps: EndpointPoolsDeps;
  #pools = new Map<string, Pool>();
  #byEndpoint = new WeakMap<Endpoint, Pool>();
  /** The `connections` each pool was created with (resized pools are retired: see `resize`). */
  #size = new WeakMap<Pool, number>();
  /** The `connectTimeout` each pool was created with (a changed one retires it: see `resize`). */
  #connectTimeout = new WeakMap<Pool, number>();
  /**
   * Pools taken out of service (their endpoint left the set, or `maxConnections` resized them):
   * closed, with requests of their own still finishing. Shutdown waits for them or forces them.
   */
  #retired = new Set<Pool>();

  constructor(deps: EndpointPoolsDeps) {
    this.#deps = deps;
  }

  /** The pool of `endpoint`, made on first use. */
  pool(endpoint: Endpoint): Pool {
    // Endpoint objects are immutable and reused across sets: cache the pool on the object first.
    const cached = this.#byEndpoint.get(endpoint);
    if (cached !== undefined && !cached.closed && !cached.destroyed) return cached;
    const key = keyOf(endpoint);
    let pool = this.#pools.get(key);
    if (pool === undefined) {
      if (this.#deps.released())
        throw new MeshError('MESH_CLOSED', `the mesh is closed; no request to "${this.#deps.service}"`);
      const connectTimeout = this.#deps.connectTimeoutMs();
      const connections = this.#connectionsPerPool();
      const created = new (undiciPool())(key, { connections, connectTimeout });
      // Connectivity (gRPC subchannel states): a new connection makes the endpoint READY at once;
      // none left makes it IDLE. Connect failures arrive as attempt outcomes from the pick stage.
      // A retired pool losing its last connection says nothing: the endpoint's pool is another one.
      created.on('connect', () => this.#deps.balancer().onConnected(endpoint));
      // A connect that failed with no request waiting for it any more (the caller, a per-try
      // timeout or a hedge gave up while it connected) reaches the balancer here; one a request
      // waited for arrives twice (as that attempt's outcome too), with the same error: counted once.
      created.on('connectionError', (_origin, _targets, error) => {
        if (isLocalCode(errorCode(error))) return;
        this.#deps.balancer().onConnectFailure(endpoint, error);
        this.#deps.connectFailed?.();
      });
      created.on('disconnect', () => {
        if (created.stats.connected === 0 && this.#pools.get(key) === created)
          this.#deps.balancer().onDisconnected(endpoint);
      });
      if (this.#deps.poolEvent !== undefined) forwardPoolEvents(created, this.#deps.poolEvent);
      this.#pools.set(key, created);
      this.#size.set(created, connections);
      this.#connectTimeout.set(created, connectTimeout);
      pool = created;
    }
    this.#byEndpoint.set(endpoint, pool);
    return pool;
  }

  /** Open connections of `endpoint`'s pool (`undefined`: no pool yet). */
  connections(endpoint: Endpoint): number | undefined {
    return this.#pools.get(keyOf(endpoint))?.stats.connected;
  }

  /** Retire the pools of endpoints not in `endpoints`; resize the rest if the share changed. */
  keepOnly(endpoints: readonly Endpoint[]): void {
    const live = new Set(endpoints.map(keyOf));
    for (const [key, pool] of this.#pools) {
      // Graceful: requests already on the pool finish; new ones go to live endpoints.
      if (!live.has(key)) this.#retire(key, pool);
    }
    // With `maxConnections`, the share of each endpoint follows the number of endpoints.
    if (this.#deps.maxConnections() !== undefined) this.resize();
  }

  /**
   * Retire every pool whose `connections` or `connectTimeout` is not what a pool made now would
   * get (both are fixed when undici makes a pool): requests on it finish there, new ones open
   * a new pool.
   * @returns whether a pool was retired.
   */
  resize(): boolean {
    const size = this.#connectionsPerPool();
    const connectTimeout = this.#deps.connectTimeoutMs();
    let retired = false;
    for (const [key, pool] of this.#pools) {
      if (this.#size.get(pool) !== size || this.#connectTimeout.get(pool) !== connectTimeout) {
        this.#retire(key, pool);
        retired = true;
      }
    }
    return retired;
  }

  /** Every pool, live and retired, out of the destination's hands (to close or destroy). */
  take(): Pool[] {
    const pools = [...this.#pools.values(), ...this.#retired];
    this.#pools.clear();
    this.#retired.clear();
    return pools;
  }

  /**
   * Connections for a new endpoint pool: `connectionsPerEndpoint` when set; the destination's
   * Envoy-style `maxConnections` divided evenly over its current endpoints (at least one each), and
   * never above `connectionsPerEndpoint` when both are set; else {@link DEFAULT_CONNECTIONS}.
   */
  #connectionsPerPool(): number {
    const perEndpoint = this.#deps.connectionsPerEndpoint;
    const max = this.#deps.maxConnections();
    if (max === undefined) return perEndpoint ?? DEFAULT_CONNECTIONS;
    const n = Math.max(1, this.#deps.endpointCount());
    const share = Math.max(1, Math.floor(max / n));
    return perEndpoint === undefined ? share : Math.min(perEndpoint, share);
  }

  /**
   * Take a pool out of service: closed (its requests finish), and kept in `#retired` until it is,
   * so that `close()` waits for it and `destroy()` forces it like any other.
   */
  #retire(key: string, pool: Pool): void {
    this.#pools.delete(key);
    this.#retired.add(pool);
    const forget = (): void => {
      this.#retired.delete(pool);
    };
    pool.close().then(forget, forget);
  }
}
