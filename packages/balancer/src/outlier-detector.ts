/**
 * Outlier detection (Envoy's): consecutive-failure detectors run on every attempt's outcome, the
 * success-rate and failure-percentage detectors on an interval sweep; ejection, its cap and timed
 * readmission.
 */
import type { Clock, Logger, Random, Timer } from '@proxyless/core';
import type { OutlierDetectionConfig } from './config.js';
import type { BalancerEvent } from './observe.js';
import type { EndpointState } from './state.js';

/** What the detector needs from its balancer. */
export interface OutlierDetectorDeps {
  readonly service: string;
  readonly config: OutlierDetectionConfig;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  /** The balancer's current endpoint states. */
  states(): readonly EndpointState[];
  /** Whether `s` is still the balancer's state for its endpoint id. */
  inSet(s: EndpointState): boolean;
  emit(event: BalancerEvent): void;
  /** Recompute what takes traffic after an ejection or readmission. */
  rebuild(): void;
}

/** The outlier detection of one balancer: its sweep timer and the readmission timer of each ejection. */
export class OutlierDetector {
  readonly enabled: boolean;
  readonly #od: OutlierDetectionConfig;
  readonly #deps: OutlierDetectorDeps;
  readonly #readmitTimers = new Map<EndpointState, Timer>();
  #sweepTimer: Timer | undefined;
  #closed = false;

  constructor(deps: OutlierDetectorDeps) {
    this.#deps = deps;
    this.#od = deps.config;
    this.enabled = deps.config.enabled;
  }

  /**
   * An attempt on `s` ended (not cancelled; only while enabled): `local` when it failed locally
   * (connect, reset, timeout), else `status` is the response status when there is one.
   */
  record(s: EndpointState, local: boolean, status: number | undefined): void {
    // The sweep runs only while there is something to sweep: an idle balancer holds no timer.
    if (this.#sweepTimer === undefined) this.#scheduleSweep();
    if (local) {
      // Connection failures, resets and timeouts count as local-origin failures and, as in Envoy's
      // default (non-split) mode, also as gateway failures and 5xx.
      s.consecutiveLocal++;
      s.consecutiveGateway++;
      s.consecutive5xx++;
    } else if (status !== undefined && status >= 500) {
      s.consecutiveLocal = 0;
      s.consecutive5xx++;
      if (status === 502 || status === 503 || status === 504) s.consecutiveGateway++;
      else s.consecutiveGateway = 0;
    } else {
      s.consecutiveLocal = 0;
      s.consecutiveGateway = 0;
      s.consecutive5xx = 0;
      return;
    }
    if (s.ejected) return;
    const od = this.#od;
    if (od.consecutive5xx > 0 && s.consecutive5xx >= od.consecutive5xx) {
      this.#tryEject(s, 'consecutive_5xx', od.enforcingConsecutive5xx);
    } else if (od.consecutiveGatewayFailure > 0 && s.consecutiveGateway >= od.consecutiveGatewayFailure) {
      this.#tryEject(s, 'consecutive_gateway_failure', od.enforcingConsecutiveGatewayFailure);
    } else if (
      od.consecutiveLocalOriginFailure > 0 &&
      s.consecutiveLocal >= od.consecutiveLocalOriginFailure
    ) {
      this.#tryEject(s, 'consecutive_local_origin_failure', od.enforcingConsecutiveLocalOriginFailure);
    }
  }

  /**
   * Take over the states a replaced balancer's detector left (config change). Enabled: each
   * ejection goes on for the time it had left (readmitted at once if that is over) and the sweep
   * runs if there are multipliers to decay or counts to judge. Disabled: nothing stays ejected
   * and the outlier counters are cleared.
   * @returns the endpoints readmitted because detection is off (the caller reports them once it
   * has listeners).
   */
  adopt(states: readonly EndpointState[]): EndpointState[] {
    const readmitted: EndpointState[] = [];
    const now = this.#deps.clock.now();
    let sweep = false;
    for (const s of states) {
      if (!this.enabled) {
        if (s.ejected) readmitted.push(s);
        s.ejected = false;
        s.ejectionMultiplier = 0;
        s.consecutive5xx = 0;
        s.consecutiveGateway = 0;
        s.consecutiveLocal = 0;
        s.intervalRequests = 0;
        s.intervalFailures = 0;
        continue;
      }
      if (s.ejectionMultiplier > 0 || s.intervalRequests > 0) sweep = true;
      if (!s.ejected) continue;
      const left = Math.max(0, s.ejectedUntil - now);
      this.#readmitTimers.set(
        s,
        this.#deps.clock.setTimer(left, () => this.#readmit(s)),
      );
    }
    if (sweep && this.#sweepTimer === undefined) this.#scheduleSweep();
    for (const s of readmitted) {
      this.#deps.logger.info('outlier detection turned off: endpoint readmitted', {
        service: this.#deps.service,
        endpoint: s.endpoint.id,
      });
    }
    return readmitted;
  }

  /**
   * End `s`'s ejection now (an active health check passed): readmitted as at the end of its
   * ejection time, its multiplier kept.
   */
  uneject(s: EndpointState): void {
    if (!s.ejected || this.#closed) return;
    this.#cancelReadmit(s);
    this.#readmit(s);
  }

  /** `s` left the endpoint set: stop its readmission timer. */
  remove(s: EndpointState): void {
    this.#cancelReadmit(s);
  }

  close(): void {
    this.#closed = true;
    this.#sweepTimer?.cancel();
    this.#sweepTimer = undefined;
    for (const t of this.#readmitTimers.values()) t.cancel();
    this.#readmitTimers.clear();
  }

  /**
   * Eject `s` if the enforcement roll allows it and the ejection cap is not reached (at least one
   * endpoint may always be ejected). Ejection time = base × times ejected, capped at the maximum.
   */
  #tryEject(s: EndpointState, reason: string, enforcing: number): boolean {
    if (s.ejected || this.#closed) return false;
    if (enforcing < 100 && this.#deps.random.next() * 100 >= enforcing) return false;
    const states = this.#deps.states();
    const total = states.length;
    let ejected = 0;
    for (const o of states) if (o.ejected) ejected++;
    if (ejected > 0 && ((ejected + 1) * 100) / total > this.#od.maxEjectionPercent) {
      this.#deps.logger.debug('outlier detection: ejection skipped, cap reached', {
        service: this.#deps.service,
        endpoint: s.endpoint.id,
        reason,
      });
      return false;
    }
    const now = this.#deps.clock.now();
    const { baseEjectionTime, maxEjectionTime } = this.#od;
    const cap = Math.max(maxEjectionTime, baseEjectionTime);
    // As Envoy: the multiplier grows only while base × k is below the cap (plus one base), so a
    // long flap does not take ever more clean intervals to decay once the time is capped.
    if (s.ejectionMultiplier * baseEjectionTime < cap + baseEjectionTime) s.ejectionMultiplier++;
    s.ejections++;
    const duration = Math.min(baseEjectionTime * s.ejectionMultiplier, cap);
    s.ejected = true;
    s.ejectedAt = now;
    s.ejectedUntil = now + duration;
    s.consecutive5xx = 0;
    s.consecutiveGateway = 0;
    s.consecutiveLocal = 0;
    this.#cancelReadmit(s);
    this.#readmitTimers.set(
      s,
      this.#deps.clock.setTimer(duration, () => this.#readmit(s)),
    );
    const fields = { service: this.#deps.service, endpoint: s.endpoint.id, reason, durationMs: duration };
    this.#deps.logger.warn('outlier detection: endpoint ejected', fields);
    this.#deps.emit({ type: 'eject', ...fields });
    this.#deps.rebuild();
    return true;
  }

  #readmit(s: EndpointState): void {
    this.#readmitTimers.delete(s);
    if (!s.ejected || this.#closed) return;
    s.ejected = false;
    s.readmittedAt = this.#deps.clock.now();
    s.intervalRequests = 0;
    s.intervalFailures = 0;
    const fields = { service: this.#deps.service, endpoint: s.endpoint.id };
    this.#deps.logger.info('outlier detection: endpoint readmitted', fields);
    this.#deps.emit({ type: 'readmit', ...fields });
    if (this.#deps.inSet(s)) this.#deps.rebuild();
  }

  #cancelReadmit(s: EndpointState): void {
    this.#readmitTimers.get(s)?.cancel();
    this.#readmitTimers.delete(s);
  }

  #scheduleSweep(): void {
    if (this.#closed) return;
    this.#sweepTimer = this.#deps.clock.setTimer(this.#od.interval, () => {
      this.#sweepTimer = undefined;
      if (this.#sweep()) this.#scheduleSweep();
    });
  }

  /**
   * The interval sweep: run the success-rate and failure-percentage detectors over this
   * interval's counts, then decay the ejection multiplier of the endpoints that stayed in, then
   * reset the counts.
   * @returns whether another sweep is needed (traffic this interval, or multipliers to decay).
   */
  #sweep(): boolean {
    if (this.#closed) return false;
    const od = this.#od;
    const states = this.#deps.states();
    let again = false;
    for (const s of states) if (s.intervalRequests > 0 || s.ejectionMultiplier > 0) again = true;
    const sr = od.successRate;
    const srHosts = states.filter((s) => !s.ejected && s.intervalRequests >= sr.requestVolume);
    if (srHosts.length > 0 && srHosts.length >= sr.minimumHosts) {
      let sum = 0;
      for (const s of srHosts) sum += successRate(s);
      const mean = sum / srHosts.length;
      let sq = 0;
      for (const s of srHosts) sq += (successRate(s) - mean) ** 2;
      const stdev = Math.sqrt(sq / srHosts.length);
      const threshold = mean - sr.stdevFactor * stdev;
      for (const s of srHosts) {
        if (successRate(s) < threshold) this.#tryEject(s, 'success_rate', sr.enforcing);
      }
    }
    const fp = od.failurePercentage;
    // As Envoy: only endpoints not ejected with `requestVolume` requests this interval take part,
    // and only when there are at least `minimumHosts` of them.
    const fpHosts = states.filter((s) => !s.ejected && s.intervalRequests >= fp.requestVolume);
    if (fpHosts.length > 0 && fpHosts.length >= fp.minimumHosts) {
      for (const s of fpHosts) {
        if ((s.intervalFailures * 100) / s.intervalRequests >= fp.threshold) {
          this.#tryEject(s, 'failure_percentage', fp.enforcing);
        }
      }
    }
    // Decay, as Envoy's sweep does after its detectors: an endpoint admitted for at least a whole
    // interval (and, here, without a failure in it) counts one ejection less. One readmitted in
    // the middle of the interval, or ejected again by this sweep, keeps its multiplier, so a
    // flapping endpoint stays out longer each time.
    const now = this.#deps.clock.now();
    for (const s of states) {
      if (
        !s.ejected &&
        s.ejectionMultiplier > 0 &&
        s.intervalFailures === 0 &&
        now - s.readmittedAt >= od.interval
      ) {
        s.ejectionMultiplier--;
      }
      s.intervalRequests = 0;
      s.intervalFailures = 0;
    }
    return again;
  }
}

/** Success percentage of an endpoint over the current interval. */
function successRate(s: EndpointState): number {
  return s.intervalRequests === 0
    ? 100
    : ((s.intervalRequests - s.intervalFailures) * 100) / s.intervalRequests;
}
