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
  /** The transport's own error behind `failure` (a connect's `ECONNREFUSED`), when there is one. */
  readonly error?: unknown;
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
   * Endpoints in `TRANSIENT_FAILURE` (a connect failed) are never returned.
   * @throws MeshError `MESH_NO_ENDPOINTS` when the set is empty;
   *   `MESH_NO_HEALTHY_ENDPOINTS` when every endpoint is in `TRANSIENT_FAILURE`.
   */
  pick(ctx: CallContext): Endpoint;
  /**
   * An attempt to `endpoint` was dispatched. May return a token for {@link onAttemptEnd}: the
   * endpoint's state the attempt counts on, so an endpoint removed and added again meanwhile is a
   * new one whose counts the old attempt does not touch.
   */
  onAttemptStart(endpoint: Endpoint): unknown;
  /**
   * That attempt ended. Called exactly once per `onAttemptStart`, with the token it returned. An
   * outcome with `failure: 'connect'` counts as {@link Balancer.onConnectFailure} too.
   */
  onAttemptEnd(endpoint: Endpoint, outcome: AttemptOutcome, token?: unknown): void;
  /**
   * A connection to `endpoint` could not be made (refused, unreachable, connect timeout, TLS
   * handshake failure). The endpoint leaves picking at once (`TRANSIENT_FAILURE`) and is probed in
   * the background with gRPC connection backoff until a connection succeeds. Idempotent.
   */
  onConnectFailure(endpoint: Endpoint, error?: unknown): void;
  /** A new connection to `endpoint` was established: it is `READY` (and pickable) again. */
  onConnected(endpoint: Endpoint): void;
  /** Every connection to `endpoint` closed without error: it is `IDLE` (still pickable). */
  onDisconnected(endpoint: Endpoint): void;
  /**
   * The service's `waitForReady` setting: when true, a pick that finds no usable endpoint should
   * wait with {@link Balancer.whenReady} (within the call's deadline) instead of failing. A call
   * may override it with the `waitForReady` call attribute.
   */
  readonly waitForReady: boolean;
  /**
   * Resolves as soon as `pick` can return an endpoint (at once if it already can).
   * @throws MeshError `MESH_ABORTED` (or the signal's `MeshError` reason, e.g. `MESH_TIMEOUT`)
   *   when `signal` aborts first; `MESH_CLOSED` when the balancer closes.
   */
  whenReady(signal?: AbortSignal): Promise<void>;
  close(): void;
}
