import type { Endpoint, EndpointSet } from './endpoint.js';
import type { CallContext } from './filter.js';

/**
 * How one attempt to one endpoint ended. Everything the balancer learns (latency EWMA,
 * in-flight counts, outlier detection, breaker input) comes from this one record.
 */
export interface AttemptOutcome {
  /** HTTP status, when a response head arrived. */
  readonly status?: number;
  /**
   * The failure class when no usable response arrived:
   * `connect` (refused/unreachable/connect timeout), `reset` (connection lost mid-request),
   * `timeout` (per-try or overall timeout), `cancelled` (caller abort; not the endpoint's fault).
   */
  readonly failure?: 'connect' | 'reset' | 'timeout' | 'cancelled';
  /** Time from dispatch to response head (or failure), in clock milliseconds. */
  readonly latencyMs: number;
}

/**
 * The momentary state of a load balancer: built from an `EndpointSet`, replaced when it changes.
 * `pick` is synchronous and must not allocate on the hot path.
 */
export interface Picker {
  /** An endpoint, or `undefined` if none is usable. */
  pick(ctx: CallContext): Endpoint | undefined;
}

/**
 * A per-service load balancer: owns picker, outlier detection, slow start, locality and panic
 * mode. The mesh feeds it endpoint sets and attempt outcomes; it answers picks.
 */
export interface Balancer {
  update(set: EndpointSet): void;
  /**
   * Choose an endpoint for this attempt, avoiding `ctx.excludeEndpoints` when others exist.
   * @throws MeshError `MESH_NO_ENDPOINTS` when the set is empty or nothing is usable.
   */
  pick(ctx: CallContext): Endpoint;
  /** An attempt to `endpoint` was dispatched. */
  onAttemptStart(endpoint: Endpoint): void;
  /** That attempt ended. Called exactly once per `onAttemptStart`. */
  onAttemptEnd(endpoint: Endpoint, outcome: AttemptOutcome): void;
  close(): void;
}
