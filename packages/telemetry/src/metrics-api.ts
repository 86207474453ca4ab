/**
 * What the mesh's metrics are, apart from how they are kept (`metrics.ts`): the options, the label
 * caps, and the calls the stages and the mesh make to record a request, an attempt or an event.
 */
import type { Clock } from '@proxyless/core';
import type { Registry } from 'prom-client';
import type { CallEventLike, TelemetryEvent } from './events.js';
import type { ServiceStatsLike } from './views.js';

/** Caps on label values; past a cap a value is recorded as `_OTHER`. */
export interface MetricLimits {
  /** Distinct services. @defaultValue 2000 */
  services?: number;
  /**
   * Distinct endpoints per service (in `mesh_attempts_total`), counting the endpoints in the
   * service's set now: an endpoint that leaves the set frees its slot. @defaultValue 64
   */
  endpointsPerService?: number;
  /** Distinct reasons (retry, ejection) and error types per service. @defaultValue 16 */
  reasonsPerService?: number;
}

/** Options of `createMeshMetrics`. */
export interface MeshMetricsOptions {
  /** Where the series are registered. @defaultValue prom-client's global `register` */
  registry?: Registry;
  /** Bucket boundaries of the duration histograms, seconds. @defaultValue OpenTelemetry's advisory buckets */
  durationBuckets?: readonly number[];
  /** Reads resolver staleness at scrape time. @defaultValue the system clock */
  clock?: Clock;
  limits?: MetricLimits;
}

/** How an attempt ended, for `mesh_attempts_total`. */
/** `cancelled`: the caller stopped the call during this attempt (not the endpoint's failure). */
export type AttemptOutcome = 'success' | '5xx' | 'error' | 'cancelled';

/** The mesh's Prometheus series and the calls that record them. */
export interface MeshMetrics {
  readonly registry: Registry;
  /** One logical client request ended (its body ended or it failed). */
  recordClientRequest(
    service: string,
    method: string,
    status: number | undefined,
    errorType: string,
    seconds: number,
  ): void;
  /** One inbound request ended (server side). */
  recordServerRequest(method: string, status: number | undefined, errorType: string, seconds: number): void;
  /** One physical attempt ended. */
  recordAttempt(service: string, endpoint: string, outcome: AttemptOutcome): void;
  /** A call event from the resilience stages (`retry`, `give_up`, …). */
  recordCallEvent(service: string, event: CallEventLike): void;
  /** A mesh event (endpoints, balancer, breaker, resolver, config). */
  onMeshEvent(event: TelemetryEvent): void;
  /**
   * A service's destination was built, or its policy changed (a new balancer, a breaker added or
   * removed): the breaker and panic series start from its state (`closed`, not in panic), a breaker
   * turned off drops its series, and endpoint states are read again from the balancer in force.
   * With `target` (a service subset's routing target), its own breaker and panic series, labelled
   * `target`: the endpoint states stay the service's.
   */
  onDestination(service: string, stats: ServiceStatsLike, target?: string): void;
  /**
   * The destination of a service subset's routing target (`target`: its ID) was released: its
   * breaker and panic series (labelled `target`) go.
   */
  forgetTarget(service: string, target: string): void;
  /**
   * A destination of `service` being removed still has calls in flight: until every hold is
   * released, a `service_removed` drops only the series of the destination's state (endpoint,
   * breaker, panic and staleness gauges, ejections, resolver errors); the call series (request
   * durations, attempts, retries, retry-budget exhaustion) keep counting those calls and go when
   * the last hold is released — a counter is never dropped and then re-created by a call that was
   * already running. A destination of the service built again meanwhile (`onDestination`, or any
   * state event of a live destination) keeps the series.
   *
   * @returns the release (idempotent).
   */
  holdCallSeries(service: string): () => void;
  /** How many series these metrics currently hold (for tests and the admin page). */
  seriesCount(): Promise<number>;
}
