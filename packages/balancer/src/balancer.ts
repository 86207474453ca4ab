import {
  type AttemptOutcome,
  abortError,
  type CallContext,
  type Clock,
  type Endpoint,
  type EndpointSet,
  MeshError,
  type Random,
  type Timer,
} from '@proxyless/core';
import type { OutlierDetectionConfig } from './config.js';
import { tcpConnectProbe } from './connect-probe.js';
import { type ConnectivityState, ConnectivityTracker, resolveConnectBackoff } from './connectivity.js';
import { HealthChecker, httpHealthProbe } from './health-check.js';
import type {
  BalancerDeps,
  BalancerEvent,
  BalancerSettings,
  BalancerStats,
  ObservableBalancer,
} from './observe.js';
import { buildPicker, IntRandom, type PickerHost, type StatePicker } from './pickers.js';
import { EndpointState } from './state.js';

export type {
  BalancerDeps,
  BalancerEvent,
  BalancerSettings,
  BalancerStats,
  EndpointStats,
  ObservableBalancer,
} from './observe.js';

/** A caller waiting in {@link ObservableBalancer.whenReady}. */
interface Waiter {
  resolve(): void;
  reject(error: unknown): void;
}

/**
 * Build a per-service balancer from resolved configuration.
 * Feed it endpoint sets with `update`; ask it with `pick`; report attempts with
 * `onAttemptStart`/`onAttemptEnd`.
 */
export function createBalancer(config: BalancerSettings, deps: BalancerDeps): ObservableBalancer {
  return new MeshBalancer(config, deps);
}

class MeshBalancer implements ObservableBalancer, PickerHost {
  readonly config: BalancerSettings['loadBalancer'];
  readonly waitForReady: boolean;
  readonly random: Random;
  readonly ints: IntRandom;
  ringBase = 0;
  /** The latest clock reading taken by an attempt or update (typed array: no boxing). */
  readonly #time = new Float64Array(1);
  readonly #od: OutlierDetectionConfig;
  readonly #deps: BalancerDeps;
  readonly #checker: HealthChecker | undefined;
  readonly #connectivity: ConnectivityTracker;
  readonly #waiters = new Set<Waiter>();
  readonly #readmitTimers = new Map<EndpointState, Timer>();
  #sweepTimer: Timer | undefined;
  readonly #clock: Clock;
  readonly #listeners = new Set<(event: BalancerEvent) => void>();
  #byId = new Map<string, EndpointState>();
  #states: EndpointState[] = [];
  #active: EndpointState[] = [];
  /** Every usable endpoint (all zones), for retries when the local zone has nothing else. */
  #usable: EndpointState[] = [];
  #picker: StatePicker | undefined;
  #panic = false;
  #local = false;
  #seenSet = false;
  #closed = false;

  constructor(config: BalancerSettings, deps: BalancerDeps) {
    this.config = config.loadBalancer;
    this.waitForReady = config.waitForReady ?? false;
    this.#od = config.outlierDetection;
    this.#deps = deps;
    this.#clock = deps.clock;
    this.random = deps.random;
    this.ints = new IntRandom(deps.random);
    this.#checker = config.healthCheck
      ? new HealthChecker(config.healthCheck, {
          service: deps.service,
          clock: deps.clock,
          random: deps.random,
          logger: deps.logger,
          probe: deps.probe ?? httpHealthProbe,
          onChange: (id, healthy) => this.#onHealthChange(id, healthy),
        })
      : undefined;
    this.#connectivity = new ConnectivityTracker({
      clock: deps.clock,
      random: deps.random,
      probe: deps.connectProbe ?? tcpConnectProbe,
      backoff: resolveConnectBackoff(config.connectBackoff),
      onTransition: (s, from, to, reachableChanged, error) =>
        this.#onConnectivity(s, from, to, reachableChanged, error),
    });
  }

  now(): number {
    return this.#clock.now();
  }

  recentNow(): number {
    return this.#time[0] as number;
  }

  effectiveWeight(state: EndpointState, now: number): number {
    const w = state.weight;
    const ss = this.config.slowStart;
    if (!ss) return w;
    const age = now - state.addedAt;
    if (age >= ss.window) return w;
    const factor = Math.max(ss.minWeightPercent / 100, (Math.max(age, 1) / ss.window) ** (1 / ss.aggression));
    return w * factor;
  }

  latency(state: EndpointState, now: number): number {
    if (state.ewma < 0) return this.config.defaultRtt;
    const dt = now - state.ewmaAt;
    return dt > 0 ? state.ewma * Math.exp(-dt / this.config.decayTime) : state.ewma;
  }

  update(set: EndpointSet): void {
    if (this.#closed) return;
    const now = this.#clock.now();
    this.#time[0] = now;
    const next = new Map<string, EndpointState>();
    const states: EndpointState[] = [];
    for (const e of set.endpoints) {
      if (next.has(e.id)) continue;
      let s = this.#byId.get(e.id);
      if (s) {
        s.endpoint = e;
        s.weight = e.weight;
      } else s = new EndpointState(e, this.#seenSet ? now : Number.NEGATIVE_INFINITY);
      s.index = states.length;
      states.push(s);
      next.set(e.id, s);
    }
    for (const [id, s] of this.#byId) {
      if (!next.has(id)) {
        this.#cancelReadmit(s);
        this.#connectivity.remove(s);
      }
    }
    this.#byId = next;
    this.#states = states;
    this.#seenSet = true;
    if (this.#checker) {
      this.#checker.sync(set.endpoints);
      for (const s of states) s.checkHealthy = this.#checker.isHealthy(s.endpoint.id);
    }
    this.#rebuild();
  }

  /** Recompute the active list (health, ejection, locality, panic) and the picker. */
  #rebuild(): void {
    // An endpoint whose connect failed cannot take traffic in any mode (not even panic): it is left
    // out of every figure below, as if it were not in the set until a connection succeeds again.
    const all = this.#states.filter((s) => s.reachable);
    const usable = all.filter((s) => s.usable);
    const total = all.length;
    const panic = total > 0 && (usable.length * 100) / total < this.config.panicThreshold;
    let active = usable;
    let local = false;
    const zone = this.config.zone;
    if (panic) {
      active = all;
    } else if (zone !== undefined) {
      const inZone = all.filter((s) => s.endpoint.zone === zone);
      const usableInZone = usable.filter((s) => s.endpoint.zone === zone);
      if (
        usableInZone.length > 0 &&
        (usableInZone.length * 100) / inZone.length >= this.config.localityMinHealthyPercent
      ) {
        active = usableInZone;
        local = true;
      }
      if (inZone.length > 0 && local !== this.#local) {
        this.#emit({
          type: local ? 'locality_restore' : 'locality_spill',
          service: this.#deps.service,
          zone,
        });
        if (!local)
          this.#deps.logger.info('balancer: spilling over to other zones', {
            service: this.#deps.service,
            zone,
          });
      }
    }
    this.#local = local;
    if (panic !== this.#panic) {
      this.#panic = panic;
      const fields = { service: this.#deps.service, usable: usable.length, total };
      if (panic) this.#deps.logger.warn('balancer: panic mode, balancing over all endpoints', fields);
      else this.#deps.logger.info('balancer: left panic mode', fields);
      this.#emit({ type: panic ? 'panic_enter' : 'panic_exit', ...fields });
    }
    this.#active = active;
    this.#usable = usable;
    this.#picker = active.length > 0 ? buildPicker(this.config.policy, active, this) : undefined;
    if (this.#picker !== undefined && this.#waiters.size > 0) {
      const waiters = [...this.#waiters];
      this.#waiters.clear();
      for (const w of waiters) w.resolve();
    }
  }

  pick(ctx: CallContext): Endpoint {
    const picker = this.#picker;
    if (picker === undefined) throw this.#noEndpoints();
    let s = picker.pick(ctx);
    const exclude = ctx.excludeEndpoints;
    if (exclude !== undefined && exclude.size > 0 && exclude.has(s.endpoint.id)) {
      const active = this.#active;
      const n = active.length;
      for (let tries = 0; tries < 3 && exclude.has(s.endpoint.id); tries++) s = picker.pick(ctx);
      if (exclude.has(s.endpoint.id)) s = this.#firstNotExcluded(active, exclude) ?? s;
      // Nothing else in the local zone: a retry may leave it.
      if (exclude.has(s.endpoint.id) && active !== this.#usable && n < this.#usable.length) {
        s = this.#firstNotExcluded(this.#usable, exclude) ?? s;
      }
    }
    return s.endpoint;
  }

  /** An endpoint of `list` not in `exclude`, scanning from a random offset. */
  #firstNotExcluded(list: readonly EndpointState[], exclude: ReadonlySet<string>): EndpointState | undefined {
    const n = list.length;
    const start = this.ints.int(n);
    for (let i = 0; i < n; i++) {
      const c = list[(start + i) % n] as EndpointState;
      if (!exclude.has(c.endpoint.id)) return c;
    }
    return undefined;
  }

  #noEndpoints(): MeshError {
    const service = this.#deps.service;
    const total = this.#states.length;
    if (total > 0 && this.#states.every((s) => !s.reachable)) {
      return new MeshError(
        'MESH_NO_HEALTHY_ENDPOINTS',
        `service "${service}" has no reachable endpoints (${total} known, every connect failed; reconnecting)`,
        { details: { service } },
      );
    }
    return new MeshError(
      'MESH_NO_ENDPOINTS',
      total === 0
        ? `service "${service}" has no endpoints`
        : `service "${service}" has no usable endpoints (${total} known, none healthy)`,
      { details: { service } },
    );
  }

  onAttemptStart(endpoint: Endpoint): void {
    const s = this.#byId.get(endpoint.id);
    if (s) {
      s.inflight++;
      this.#connectivity.attemptStarted(s);
    }
    this.#time[0] = this.#clock.now();
  }

  onAttemptEnd(endpoint: Endpoint, outcome: AttemptOutcome): void {
    const s = this.#byId.get(endpoint.id);
    if (!s) return;
    if (s.inflight > 0) s.inflight--;
    const now = this.#clock.now();
    this.#time[0] = now;
    if (outcome.failure === 'cancelled') return;
    if (outcome.failure === 'connect') this.#connectivity.connectFailed(s, outcome);
    else if (outcome.status !== undefined) this.#connectivity.responded(s);
    this.#observeLatency(s, outcome.latencyMs, now);
    s.requests++;
    s.intervalRequests++;
    const status = outcome.status;
    const local = outcome.failure !== undefined;
    const failed = local || (status !== undefined && status >= 500);
    if (failed) {
      s.failures++;
      s.intervalFailures++;
    }
    if (!this.#od.enabled) return;
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

  onConnectFailure(endpoint: Endpoint, error?: unknown): void {
    const s = this.#byId.get(endpoint.id);
    if (s && !this.#closed) this.#connectivity.connectFailed(s, error);
  }

  onConnected(endpoint: Endpoint): void {
    const s = this.#byId.get(endpoint.id);
    if (s && !this.#closed) this.#connectivity.connected(s);
  }

  onDisconnected(endpoint: Endpoint): void {
    const s = this.#byId.get(endpoint.id);
    if (s && !this.#closed) this.#connectivity.disconnected(s);
  }

  whenReady(signal?: AbortSignal): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closedError());
    if (this.#picker !== undefined) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(abortError(signal));
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#waiters.delete(waiter);
        reject(abortError(signal as AbortSignal));
      };
      const waiter: Waiter = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      };
      this.#waiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  #closedError(): MeshError {
    return new MeshError('MESH_CLOSED', `the balancer of "${this.#deps.service}" is closed`, {
      details: { service: this.#deps.service },
    });
  }

  /** Every connectivity transition: an event, a log line when picking changes, a rebuild if it does. */
  #onConnectivity(
    s: EndpointState,
    from: ConnectivityState,
    to: ConnectivityState,
    reachableChanged: boolean,
    error: unknown,
  ): void {
    if (this.#closed || this.#byId.get(s.endpoint.id) !== s) return;
    const code = errorCode(error);
    const fields = { service: this.#deps.service, endpoint: s.endpoint.id };
    if (reachableChanged) {
      if (to === 'TRANSIENT_FAILURE') {
        this.#deps.logger.warn('balancer: connect failed, endpoint out of picking until it reconnects', {
          ...fields,
          error: code,
        });
      } else this.#deps.logger.info('balancer: endpoint reconnected', fields);
    }
    this.#emit({ type: 'connectivity', ...fields, from, to, ...(code === undefined ? {} : { error: code }) });
    if (reachableChanged) this.#rebuild();
  }

  /**
   * Eject `s` if the enforcement roll allows it and the ejection cap is not reached (at least one
   * endpoint may always be ejected). Ejection time = base × times ejected, capped at the maximum.
   */
  #tryEject(s: EndpointState, reason: string, enforcing: number): boolean {
    if (s.ejected || this.#closed) return false;
    if (enforcing < 100 && this.random.next() * 100 >= enforcing) return false;
    const total = this.#states.length;
    let ejected = 0;
    for (const o of this.#states) if (o.ejected) ejected++;
    if (ejected > 0 && ((ejected + 1) * 100) / total > this.#od.maxEjectionPercent) {
      this.#deps.logger.debug('outlier detection: ejection skipped, cap reached', {
        service: this.#deps.service,
        endpoint: s.endpoint.id,
        reason,
      });
      return false;
    }
    const now = this.#clock.now();
    s.ejectionMultiplier++;
    s.ejections++;
    const { baseEjectionTime, maxEjectionTime } = this.#od;
    const duration = Math.min(
      baseEjectionTime * s.ejectionMultiplier,
      Math.max(maxEjectionTime, baseEjectionTime),
    );
    s.ejected = true;
    s.ejectedAt = now;
    s.ejectedUntil = now + duration;
    s.consecutive5xx = 0;
    s.consecutiveGateway = 0;
    s.consecutiveLocal = 0;
    this.#cancelReadmit(s);
    this.#readmitTimers.set(
      s,
      this.#clock.setTimer(duration, () => this.#readmit(s)),
    );
    const fields = { service: this.#deps.service, endpoint: s.endpoint.id, reason, durationMs: duration };
    this.#deps.logger.warn('outlier detection: endpoint ejected', fields);
    this.#emit({ type: 'eject', ...fields });
    this.#rebuild();
    return true;
  }

  #readmit(s: EndpointState): void {
    this.#readmitTimers.delete(s);
    if (!s.ejected || this.#closed) return;
    s.ejected = false;
    s.intervalRequests = 0;
    s.intervalFailures = 0;
    const fields = { service: this.#deps.service, endpoint: s.endpoint.id };
    this.#deps.logger.info('outlier detection: endpoint readmitted', fields);
    this.#emit({ type: 'readmit', ...fields });
    if (this.#byId.get(s.endpoint.id) === s) this.#rebuild();
  }

  #cancelReadmit(s: EndpointState): void {
    this.#readmitTimers.get(s)?.cancel();
    this.#readmitTimers.delete(s);
  }

  #scheduleSweep(): void {
    if (this.#closed) return;
    this.#sweepTimer = this.#clock.setTimer(this.#od.interval, () => {
      this.#sweepTimer = undefined;
      if (this.#sweep()) this.#scheduleSweep();
    });
  }

  /**
   * The interval sweep: decay the ejection multiplier of endpoints that stayed in, then run the
   * success-rate and failure-percentage detectors over this interval's counts, then reset them.
   * @returns whether another sweep is needed (traffic this interval, or multipliers to decay).
   */
  #sweep(): boolean {
    if (this.#closed) return false;
    const od = this.#od;
    const states = this.#states;
    let again = false;
    for (const s of states) if (s.intervalRequests > 0 || s.ejectionMultiplier > 0) again = true;
    for (const s of states) {
      if (!s.ejected && s.ejectionMultiplier > 0 && s.intervalFailures === 0) s.ejectionMultiplier--;
    }
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
    if (states.length >= fp.minimumHosts) {
      for (const s of states) {
        if (s.ejected || s.intervalRequests < fp.requestVolume) continue;
        if ((s.intervalFailures * 100) / s.intervalRequests >= fp.threshold) {
          this.#tryEject(s, 'failure_percentage', fp.enforcing);
        }
      }
    }
    for (const s of states) {
      s.intervalRequests = 0;
      s.intervalFailures = 0;
    }
    return again;
  }

  #onHealthChange(id: string, healthy: boolean): void {
    const s = this.#byId.get(id);
    if (!s || this.#closed) return;
    // Envoy: an endpoint back from a failed active health check ramps up again under slow start.
    if (healthy && !s.checkHealthy) s.addedAt = this.#clock.now();
    s.checkHealthy = healthy;
    this.#emit({ type: 'health_check', service: this.#deps.service, endpoint: id, healthy });
    this.#rebuild();
  }

  #observeLatency(s: EndpointState, rtt: number, now: number): void {
    if (s.ewma < 0) {
      s.ewma = rtt;
    } else {
      const dt = Math.max(now - s.ewmaAt, 0);
      const w = Math.exp(-dt / this.config.decayTime);
      s.ewma = rtt > s.ewma ? rtt : s.ewma * w + rtt * (1 - w);
    }
    s.ewmaAt = now;
  }

  stats(): BalancerStats {
    const now = this.#clock.now();
    return {
      service: this.#deps.service,
      policy: this.config.policy,
      panic: this.#panic,
      locality: this.#local ? 'local' : 'all',
      active: this.#active.length,
      endpoints: this.#states.map((s) => ({
        id: s.endpoint.id,
        address: s.endpoint.address,
        port: s.endpoint.port,
        zone: s.endpoint.zone,
        weight: s.endpoint.weight,
        effectiveWeight: this.effectiveWeight(s, now),
        health: s.endpoint.health,
        checkHealthy: s.checkHealthy,
        connectivity: s.connectivity,
        connectFailures: s.connectFailures,
        reconnectInMs: reconnectIn(this.#connectivity.nextAttemptAt(s), now),
        inflight: s.inflight,
        ewmaMs: s.ewma < 0 ? undefined : this.latency(s, now),
        ejected: s.ejected,
        ejections: s.ejections,
        requests: s.requests,
        failures: s.failures,
      })),
    };
  }

  onEvent(listener: (event: BalancerEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(event: BalancerEvent): void {
    for (const l of this.#listeners) {
      try {
        l(event);
      } catch (error) {
        this.#deps.logger.error('balancer: event listener threw', { service: this.#deps.service, error });
      }
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sweepTimer?.cancel();
    this.#sweepTimer = undefined;
    for (const t of this.#readmitTimers.values()) t.cancel();
    this.#readmitTimers.clear();
    this.#checker?.close();
    this.#connectivity.close();
    this.#listeners.clear();
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w.reject(this.#closedError());
  }
}

/** Success percentage of an endpoint over the current interval. */
function successRate(s: EndpointState): number {
  return s.intervalRequests === 0
    ? 100
    : ((s.intervalRequests - s.intervalFailures) * 100) / s.intervalRequests;
}

function reconnectIn(at: number | undefined, now: number): number | undefined {
  return at === undefined ? undefined : Math.max(at - now, 0);
}

/** A short name for a connect failure: the error's `code` (`ECONNREFUSED`, `UND_ERR_CONNECT_TIMEOUT`). */
function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  const cause = (error as { cause?: unknown }).cause;
  if (cause !== undefined && cause !== error) return errorCode(cause);
  const failure = (error as { failure?: unknown }).failure;
  return typeof failure === 'string' ? failure : undefined;
}
