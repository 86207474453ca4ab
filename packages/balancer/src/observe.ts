import type { Balancer, Clock, Endpoint, Logger, Random } from '@proxyless/core';
import type { BalancerConfig } from './config.js';
import type { ConnectivitySettings, ConnectivityState, ConnectProbe } from './connectivity.js';
import type { HealthProbe } from './health-check.js';
import type { HealthCheckHub } from './health-check-hub.js';

/** Per-endpoint figures from {@link ObservableBalancer.stats}. */
export interface EndpointStats {
  readonly id: string;
  readonly address: string;
  readonly port: number;
  readonly zone: string | undefined;
  /** Priority level (0 unless the endpoint has one). */
  readonly priority: number;
  readonly weight: number;
  /** Weight after slow start. */
  readonly effectiveWeight: number;
  readonly health: Endpoint['health'];
  /** Active health check verdict (true when no checks run). */
  readonly checkHealthy: boolean;
  /** Connectivity (gRPC subchannel model); `TRANSIENT_FAILURE` endpoints are never picked. */
  readonly connectivity: ConnectivityState;
  /**
   * False from a failed connect until a connection succeeds: the endpoint is not picked, also while
   * a reconnect attempt is `CONNECTING`.
   */
  readonly reachable: boolean;
  /** Connect failures so far (reported by the mesh and by reconnect probes). */
  readonly connectFailures: number;
  /** Milliseconds until the next reconnect attempt, while one is scheduled. */
  readonly reconnectInMs: number | undefined;
  readonly inflight: number;
  /** Peak-EWMA latency in ms, `undefined` until measured. */
  readonly ewmaMs: number | undefined;
  readonly ejected: boolean;
  /** Times ejected so far. */
  readonly ejections: number;
  /**
   * Envoy's ejection multiplier: the next ejection lasts `baseEjectionTime` × (this + 1), capped.
   * It grows with each ejection and shrinks by one per outlier interval the endpoint stays in.
   */
  readonly ejectionMultiplier: number;
  /**
   * Attempts that ended with an outcome from the endpoint: a response, or a connect, reset or
   * timeout failure. An attempt the caller aborted (or a hedge or retry cancelled) counts for
   * nothing, even when the endpoint received it.
   */
  readonly requests: number;
  /** Of {@link requests}, those that failed (5xx, or a connect, reset or timeout failure). */
  readonly failures: number;
}

/** A snapshot of a balancer's state. */
export interface BalancerStats {
  readonly service: string;
  readonly policy: string;
  /** True while balancing over all reachable endpoints because too few are usable. */
  readonly panic: boolean;
  /** `local` while traffic stays in the configured zone, else `all`. */
  readonly locality: 'local' | 'all';
  /** Endpoints currently picked from. */
  readonly active: number;
  /**
   * Each priority level's share of calls (percent), lowest priority number first; present when
   * the endpoints have more than one priority.
   */
  readonly priorities?: readonly { readonly priority: number; readonly load: number }[];
  readonly endpoints: readonly EndpointStats[];
}

/** Something notable a balancer did. */
export type BalancerEvent =
  | {
      readonly type: 'panic_enter' | 'panic_exit';
      readonly service: string;
      readonly usable: number;
      readonly total: number;
    }
  | { readonly type: 'locality_spill' | 'locality_restore'; readonly service: string; readonly zone: string }
  | {
      /** The priority levels' shares of calls (percent) changed: a level lost or regained endpoints. */
      readonly type: 'priority_load';
      readonly service: string;
      readonly priorities: readonly { readonly priority: number; readonly load: number }[];
    }
  | {
      readonly type: 'eject';
      readonly service: string;
      readonly endpoint: string;
      readonly reason: string;
      readonly durationMs: number;
    }
  | { readonly type: 'readmit'; readonly service: string; readonly endpoint: string }
  | {
      readonly type: 'health_check';
      readonly service: string;
      readonly endpoint: string;
      readonly healthy: boolean;
    }
  | {
      /**
       * An endpoint's connectivity moved into or out of `TRANSIENT_FAILURE`: a connect failed, a
       * reconnect probe started or failed, it connected again. `error` names the failure (an
       * `E*`/`UND_ERR_*` code). A reachable endpoint's moves between `IDLE`, `CONNECTING` and
       * `READY` as its connections open and close are in `stats()` only.
       */
      readonly type: 'connectivity';
      readonly service: string;
      readonly endpoint: string;
      readonly from: ConnectivityState;
      readonly to: ConnectivityState;
      readonly error?: string;
    };

/** The balancer `createBalancer` returns: the core contract plus observation. */
export interface ObservableBalancer extends Balancer {
  /** Current per-endpoint figures and modes. */
  stats(): BalancerStats;
  /**
   * Endpoints a pick may choose outside panic: not failing an active health check, not ejected
   * (Envoy's healthy hosts). 0 with endpoints present means the balancer is in panic.
   */
  readonly usableCount: number;
  /**
   * Listen to panic, locality, ejection, health-check and connectivity events; returns an
   * unsubscribe function.
   */
  onEvent(listener: (event: BalancerEvent) => void): () => void;
  close(): void;
}

/** The configuration `createBalancer` takes: the resolved balancer config plus connectivity settings. */
export type BalancerSettings = BalancerConfig & ConnectivitySettings;

/** Dependencies of {@link createBalancer}. */
export interface BalancerDeps {
  service: string;
  clock: Clock;
  random: Random;
  logger: Logger;
  /** Active health probe; defaults to an HTTP GET with undici. Only used with `healthCheck`. */
  probe?: HealthProbe;
  /**
   * Reconnect probe for endpoints in `TRANSIENT_FAILURE`; defaults to a plain TCP connect
   * ({@link tcpConnectProbe}). The mesh passes one that also completes its TLS handshake.
   */
  connectProbe?: ConnectProbe;
  /**
   * Active health checks shared with the other balancers over the same service (the mesh passes
   * one per mesh, so an endpoint is probed once however many destinations use it). Without it the
   * balancer runs a checker of its own.
   */
  healthChecks?: HealthCheckHub;
}
