import {
  Duration,
  envVar,
  Fields,
  foreignNames,
  omitKeys,
  parseDuration,
  Section,
  type Static,
  Type,
} from '@proxyless/core';
import type { DeepPartial } from './util.js';

/** Resolved circuit breaker (error-rate tripping plus Envoy-style thresholds). */
export interface CircuitBreakerConfig {
  /** Open when this percentage of calls in the window failed. */
  readonly errorThresholdPercentage: number;
  /** Calls in the window before the error rate is considered. */
  readonly volumeThreshold: number;
  /** Rolling window, ms. */
  readonly rollingWindowMs: number;
  /** Time open before letting trial calls through, ms. */
  readonly resetTimeoutMs: number;
  /** Trial calls allowed while half-open. */
  readonly halfOpenMaxCalls: number;
  /**
   * Envoy threshold: connections to the destination as a whole. The mesh divides it evenly over
   * the endpoints' pools (at least one each), below `connectionsPerEndpoint`.
   */
  readonly maxConnections: number | undefined;
  /**
   * Envoy threshold: requests waiting in the concurrency-limit queue. Its one consumer is that
   * queue, so it needs `concurrencyLimit` with a queue (an error otherwise), unless it is 0 or a
   * layer above the one that set it took the queue away (then it is dropped).
   */
  readonly maxPendingRequests: number | undefined;
  /** Envoy threshold: concurrent requests to the destination. */
  readonly maxRequests: number;
  /** Envoy threshold: concurrent retries to the destination. */
  readonly maxRetries: number;
}

/** Breaker settings one layer sets. */
export type CircuitBreakerPatch = DeepPartial<CircuitBreakerConfig>;

/**
 * Built-in circuit-breaker defaults. Error-rate tripping as opossum (50 % over a 10 s window,
 * 20 calls before judging, 30 s open). `maxRequests` and `maxRetries` are 2^32−1, effectively
 * unbounded, as Istio sets Envoy's `max_requests` and `max_retries`. Envoy's own 1024 concurrent
 * requests failed every call past the 1,024th of a burst that plain undici and `fetch` queue and
 * serve (a `Promise.all` over 2,000 items, a fan-out, 1,024 open event streams to one service);
 * Envoy's 3 concurrent retries starve a busy destination of every retry, while the retry budget
 * (20 % of requests) already bounds retries in proportion to traffic.
 */
export const DEFAULT_CIRCUIT_BREAKER: CircuitBreakerConfig = Object.freeze({
  errorThresholdPercentage: 50,
  volumeThreshold: 20,
  rollingWindowMs: 10_000,
  resetTimeoutMs: 30_000,
  halfOpenMaxCalls: 1,
  maxConnections: undefined,
  maxPendingRequests: undefined,
  maxRequests: 4_294_967_295,
  maxRetries: 4_294_967_295,
});

const D = DEFAULT_CIRCUIT_BREAKER;
const int = (minimum: number, def: number | undefined, description: string, more: object = {}) =>
  Type.Optional(
    Type.Integer({ minimum, ...(def !== undefined ? { default: def } : {}), description, ...more }),
  );

/** The `circuitBreaker` section. On by default; `true` means the defaults. */
export const circuitBreakerSection = Section(
  Fields(
    {
      errorThresholdPercentage: Type.Optional(
        Type.Number({
          minimum: 1,
          maximum: 100,
          default: D.errorThresholdPercentage,
          description:
            'Open when more than this percentage of the attempts in the window failed (opossum: 50); checked after each outcome, a success included.',
          ...envVar(
            'MESH_CIRCUIT_ERROR_THRESHOLD',
            'Error percentage that opens the breaker (`circuitBreaker.errorThresholdPercentage`).',
            { type: 'number 1..100' },
          ),
        }),
      ),
      volumeThreshold: int(1, D.volumeThreshold, 'Attempts in the window before the error rate counts.'),
      rollingWindow: Type.Optional(
        Duration({
          min: 10,
          default: D.rollingWindowMs,
          description: 'Window of the error rate (10 buckets).',
        }),
      ),
      resetTimeout: Type.Optional(
        Duration({
          min: 1,
          default: D.resetTimeoutMs,
          description: 'Time open before trial calls are let through (half-open; opossum: 30 s).',
          ...envVar(
            'MESH_CIRCUIT_RESET_TIMEOUT',
            'Time the breaker stays open before a trial call (`circuitBreaker.resetTimeout`).',
            {
              defaultValue: '30s',
            },
          ),
        }),
      ),
      halfOpenMaxCalls: int(
        1,
        D.halfOpenMaxCalls,
        'Trial calls at once while half-open. A good trial closes the breaker; a failed one opens it again. Trials with no outcome after resetTimeout no longer hold their places: more are let through (one hung trial cannot hold the breaker shut).',
      ),
      maxConnections: int(
        1,
        undefined,
        'Envoy threshold: connections to the destination as a whole, divided evenly over its endpoints’ pools, rounding down (at least one each, as Envoy keeps at least one connection for a host it picks: with fewer connections than endpoints, one per endpoint; never above `connectionsPerEndpoint` when that is set, while the default of 1024 per endpoint gives way to it); requests beyond them wait in the pools.',
      ),
      maxPendingRequests: int(
        0,
        undefined,
        'Envoy threshold: requests waiting for a concurrency-limit slot. Bounds the `concurrencyLimit` queue, so it needs a `concurrencyLimit` with a `queue` above 0 (an error otherwise, unless it is 0, or a higher layer than the one that set it turned the queue off: then it has nothing to bound for that service and is dropped).',
      ),
      maxRequests: int(
        1,
        D.maxRequests,
        'Envoy threshold: attempts in flight to the destination. Beyond it: `MESH_CIRCUIT_OPEN` (`reason: maxRequests`). 2³²−1 (unbounded) as Istio: a burst that plain undici and `fetch` serve is not failed (Envoy: 1024).',
        {
          ...envVar(
            'MESH_MAX_REQUESTS',
            'Concurrent requests per destination before `MESH_CIRCUIT_OPEN` (`circuitBreaker.maxRequests`).',
            {
              type: 'integer ≥ 1',
            },
          ),
        },
      ),
      maxRetries: int(
        0,
        D.maxRetries,
        'Envoy threshold: retries in flight to the destination; beyond it a retry is not made (`retry_overflow`). 2³²−1 (unbounded) as Istio: the retry budget governs retries.',
      ),
    },
    foreignNames({
      consecutiveErrors: {
        use: 'outlierDetection.consecutive5xx, which ejects one endpoint: this breaker opens on an error percentage',
        from: "Istio's outlierDetection.consecutiveErrors",
      },
      consecutive5xxErrors: {
        use: 'outlierDetection.consecutive5xx, which ejects one endpoint: this breaker opens on an error percentage',
        from: "Istio's outlierDetection.consecutive5xxErrors",
      },
    }),
  ),
  {
    allowTrue: true,
    description: 'Circuit breaker: error-rate tripping plus Envoy thresholds. On by default.',
    ...envVar('MESH_CIRCUIT_BREAKER', 'Turns the per-destination circuit breaker on or off.', {
      type: 'boolean',
      defaultValue: 'true',
    }),
  },
);

/** The `circuitBreaker` section as written. */
export type CircuitBreakerOptions = Static<typeof circuitBreakerSection>;

/** A validated `circuitBreaker` section → its patch. */
export function circuitBreakerPatch(doc: CircuitBreakerOptions): CircuitBreakerPatch | false {
  if (doc === false) return false;
  if (doc === true) return {};
  const { rollingWindow, resetTimeout } = doc;
  const p: CircuitBreakerPatch = omitKeys(doc, ['rollingWindow', 'resetTimeout']);
  if (rollingWindow !== undefined) p.rollingWindowMs = parseDuration(rollingWindow, '');
  if (resetTimeout !== undefined) p.resetTimeoutMs = parseDuration(resetTimeout, '');
  return p;
}
