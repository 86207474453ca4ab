import type { Endpoint } from '@proxyless/core';
import type { ConnectivityState } from './connectivity.js';

/** Mutable per-endpoint bookkeeping, kept across endpoint-set updates by endpoint id. */
export class EndpointState {
  endpoint: Endpoint;
  /** `endpoint.weight`, kept here so picks read one object. */
  weight: number;
  /** Index in the balancer's current state list. */
  index = 0;
  inflight = 0;
  /** Peak-EWMA latency, ms; negative when never measured. */
  ewma = -1;
  /**
   * Clock time of the last EWMA update; before the first, when the endpoint joined (the assumed
   * `defaultRtt` decays from then, as a measured estimate does).
   */
  ewmaAt = 0;
  requests = 0;
  failures = 0;
  /** Outlier detection. */
  ejected = false;
  ejectedAt = 0;
  ejectedUntil = 0;
  /** Times ejected, decaying while healthy; multiplies the ejection time. */
  ejectionMultiplier = 0;
  /** Clock time of the last readmission; `-Infinity` before the first. */
  readmittedAt = Number.NEGATIVE_INFINITY;
  /** Total ejections ever. */
  ejections = 0;
  consecutive5xx = 0;
  consecutiveGateway = 0;
  consecutiveLocal = 0;
  intervalRequests = 0;
  intervalFailures = 0;
  /** Active health check verdict (true when unchecked). */
  checkHealthy = true;
  /** Clock time the endpoint joined, for slow start; `-Infinity` for endpoints present from the start. */
  addedAt: number;
  /** Weighted-round-robin deadline (EDF). */
  deadline = 0;
  /** Connectivity (gRPC subchannel states). */
  connectivity: ConnectivityState = 'IDLE';
  /** False from a connect failure until a connection succeeds again: never picked meanwhile. */
  reachable = true;
  /** Current reconnect backoff, ms (0 while reachable). */
  backoffMs = 0;
  /** Clock time of the next reconnect attempt while one is scheduled. */
  nextAttemptAt = 0;
  /** Connect failures seen so far (reported and probed). */
  connectFailures = 0;
  /**
   * The latest connect error reported: undici reports one failed connect twice (to the request
   * that waited for it, then as its pool's `connectionError`), with the same error object.
   */
  lastConnectError: unknown = undefined;

  constructor(endpoint: Endpoint, addedAt: number, joinedAt = 0) {
    this.endpoint = endpoint;
    this.weight = endpoint.weight;
    this.addedAt = addedAt;
    this.ewmaAt = joinedAt;
  }

  /**
   * A copy for a balancer that replaces the one holding `from` (a config change): what the
   * endpoint has shown so far — counts, latency EWMA, slow-start age, ejection and the outlier
   * counters — is kept. Calls in flight report to the balancer they were picked from, so
   * in-flight counts start at 0; connectivity and the health-check verdict are the new
   * balancer's own (its checker and reconnect probes).
   */
  static carriedOver(from: EndpointState): EndpointState {
    const s = new EndpointState(from.endpoint, from.addedAt);
    s.ewma = from.ewma;
    s.ewmaAt = from.ewmaAt;
    s.requests = from.requests;
    s.failures = from.failures;
    s.ejected = from.ejected;
    s.ejectedAt = from.ejectedAt;
    s.ejectedUntil = from.ejectedUntil;
    s.ejectionMultiplier = from.ejectionMultiplier;
    s.readmittedAt = from.readmittedAt;
    s.ejections = from.ejections;
    s.consecutive5xx = from.consecutive5xx;
    s.consecutiveGateway = from.consecutiveGateway;
    s.consecutiveLocal = from.consecutiveLocal;
    s.intervalRequests = from.intervalRequests;
    s.intervalFailures = from.intervalFailures;
    return s;
  }

  /**
   * One more latency sample at `now`: the peak-sensitive EWMA (Finagle's and Linkerd's) jumps to a
   * sample above it and decays toward one below it with time constant `decayTime`.
   */
  observeLatency(rtt: number, now: number, decayTime: number): void {
    if (this.ewma < 0) {
      this.ewma = rtt;
    } else {
      const dt = Math.max(now - this.ewmaAt, 0);
      const w = Math.exp(-dt / decayTime);
      this.ewma = rtt > this.ewma ? rtt : this.ewma * w + rtt * (1 - w);
    }
    this.ewmaAt = now;
  }

  /** Count one attempt that ended with an outcome from the endpoint; `failed` when it failed. */
  countAttempt(failed: boolean): void {
    this.requests++;
    this.intervalRequests++;
    if (failed) {
      this.failures++;
      this.intervalFailures++;
    }
  }

  /** Usable for normal (non-panic) balancing. Unreachable endpoints are not picked in any mode. */
  get usable(): boolean {
    return !this.ejected && this.checkHealthy && this.endpoint.health !== 'critical';
  }
}
