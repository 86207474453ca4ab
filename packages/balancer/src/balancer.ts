/**
 * The balancer of one service: it takes endpoint-set updates, runs the pick path, and takes the
 * attempt, connectivity and health reports that feed its endpoints' state. Outlier detection, the
 * endpoint set and its active subset, events, stats and ready-waiting live in their own modules.
 */
import {
  type AttemptOutcome,
  abortError,
  type CallContext,
  type Clock,
  type Endpoint,
  type EndpointSet,
  type Random,
} from '@proxyless/core';
import { tcpConnectProbe } from './connect-probe.js';
import { type ConnectivityState, ConnectivityTracker, resolveConnectBackoff } from './connectivity.js';
import { type LevelLoad, mergeStates, selectActive } from './endpoint-set.js';
import { closedError, noEndpointsError } from './errors.js';
import { BalancerEvents } from './events.js';
import { HealthChecker, httpHealthProbe } from './health-check.js';
import type { HealthCheckLease } from './health-check-hub.js';
import type {
  BalancerDeps,
  BalancerEvent,
  BalancerSettings,
  BalancerStats,
  ObservableBalancer,
} from './observe.js';
import { OutlierDetector } from './outlier-detector.js';
import { firstNotExcluded, isWaitingToConnect, notConnecting } from './pick-fallback.js';
import { IntRandom, type PickerHost, type StatePicker } from './picker-host.js';
import { buildPicker } from './pickers.js';
import { chooseLevel, loadsChanged, type PickLevel, pickLevels } from './priority.js';
import { ReadyWaiters } from './ready-waiters.js';
import { EndpointState } from './state.js';
import { endpointStats } from './stats.js';

export type {
  BalancerDeps,
  BalancerEvent,
  BalancerSettings,
  BalancerStats,
  EndpointStats,
  ObservableBalancer,
} from './observe.js';

/**
 * Build a per-service balancer from resolved configuration.
 * Feed it endpoint sets with `update`; ask it with `pick`; report attempts with
 * `onAttemptStart`/`onAttemptEnd`.
 *
 * With `previous` (the balancer it replaces after a config change, closed by the caller once this
 * one is in force), the endpoints it knew are taken over with their counts, latency EWMAs,
 * slow-start age and outlier state: an ejected endpoint stays out for the ejection time it had
 * left, with its ejection multiplier. When `outlierDetection` is off in `config`, ejected
 * endpoints are readmitted instead, each with a `readmit` event at the first `update`.
 */
export function createBalancer(
  config: BalancerSettings,
  deps: BalancerDeps,
  previous?: ObservableBalancer,
): ObservableBalancer {
  return new MeshBalancer(config, deps, previous);
}

class MeshBalancer implements ObservableBalancer, PickerHost {
  readonly config: BalancerSettings['loadBalancer'];
  readonly waitForReady: boolean;
  /**
   * `ring_hash` and `maglev`: a call goes to its key's endpoint even while that one connects (the
   * other policies send it elsewhere then: see `notConnecting`).
   */
  readonly #keepsAffinity: boolean;
  readonly random: Random;
  readonly ints: IntRandom;
  /** The latest clock reading taken by an attempt or update (typed array: no boxing). */
  readonly #time = new Float64Array(1);
  readonly #deps: BalancerDeps;
  readonly #checker: HealthCheckLease | undefined;
  readonly #connectivity: ConnectivityTracker;
  readonly #outliers: OutlierDetector;
  readonly #waiters = new ReadyWaiters();
  readonly #clock: Clock;
  readonly #events: BalancerEvents;
  #byId = new Map<string, EndpointState>();
  #states: EndpointState[] = [];
  #active: EndpointState[] = [];
  /** Every usable endpoint (all zones), for retries when the local zone has nothing else. */
  #usable: EndpointState[] = [];
  #picker: StatePicker | undefined;
  /**
   * With calls shared between priority levels: each level's picker and active endpoints, with the
   * cumulative share (0–100) up to and including it; else `undefined` (one picker).
   */
  #levels: PickLevel[] | undefined;
  /** Every level's share of calls, when the endpoints have more than one priority. */
  #loads: readonly LevelLoad[] | undefined;
  #panic = false;
  /** Whether the maglev table was last built with more endpoints than `tableSize` (warned once). */
  #tableShort = false;
  /** Whether traffic stays in the zone; `undefined` until the first set is seen with a zone. */
  #local: boolean | undefined = undefined;
  #seenSet = false;
  #closed = false;
  /** Endpoints readmitted when taking over with outlier detection off; reported at the first update. */
  #readmitted: EndpointState[] = [];
  /**
   * The balancer in force of the line this one belongs to (each built with `previous` joins the
   * line of the one it replaced): an attempt picked from a replaced balancer ends its in-flight
   * count there, and its outcome counts where the endpoint's statistics now live. One cell for
   * the line, so a replaced balancer still held by a call keeps only the one in force alive.
   */
  #line: { current: MeshBalancer } = { current: this };

  constructor(config: BalancerSettings, deps: BalancerDeps, previous?: ObservableBalancer) {
    this.config = config.loadBalancer;
    this.waitForReady = config.waitForReady ?? config.loadBalancer.waitForReady ?? false;
    this.#keepsAffinity =
      config.loadBalancer.policy === 'ring_hash' || config.loadBalancer.policy === 'maglev';
    this.#deps = deps;
    this.#clock = deps.clock;
    this.random = deps.random;
    this.ints = new IntRandom(deps.random);
    this.#events = new BalancerEvents(deps.service, deps.logger);
    this.#outliers = new OutlierDetector({
      service: deps.service,
      config: config.outlierDetection,
      clock: deps.clock,
      random: deps.random,
      logger: deps.logger,
      states: () => this.#states,
      inSet: (s) => this.#byId.get(s.endpoint.id) === s,
      emit: (event) => this.#events.emit(event),
      rebuild: () => this.#rebuild(),
    });
    const hc = config.healthCheck;
    const onHealthChange = (id: string, healthy: boolean): void => this.#onHealthChange(id, healthy);
    // Envoy's `successful_active_health_check_uneject_host`: a passing check ends an ejection.
    const onHealthPass = (id: string): void => {
      const s = this.#byId.get(id);
      if (s?.ejected && !this.#closed && config.outlierDetection.successfulActiveHealthCheckUnejectHost)
        this.#outliers.uneject(s);
    };
    this.#checker = !hc
      ? undefined
      : deps.healthChecks
        ? deps.healthChecks.lease(
            deps.service,
            hc,
            deps.probe ?? httpHealthProbe,
            onHealthChange,
            onHealthPass,
          )
        : new HealthChecker(hc, {
            service: deps.service,
            clock: deps.clock,
            random: deps.random,
            logger: deps.logger,
            probe: deps.probe ?? httpHealthProbe,
            onChange: onHealthChange,
            onPass: onHealthPass,
          });
    this.#connectivity = new ConnectivityTracker({
      clock: deps.clock,
      random: deps.random,
      probe: deps.connectProbe ?? tcpConnectProbe,
      backoff: resolveConnectBackoff(config.connectBackoff, config.loadBalancer.connectBackoff),
      onTransition: (s, from, to, reachableChanged, error) =>
        this.#onConnectivity(s, from, to, reachableChanged, error),
    });
    if (previous instanceof MeshBalancer) this.#takeOver(previous);
  }

  /** Start from the endpoints of the balancer this one replaces (see {@link createBalancer}). */
  #takeOver(previous: MeshBalancer): void {
    const byId = new Map<string, EndpointState>();
    const states: EndpointState[] = [];
    for (const old of previous.#states) {
      const s = EndpointState.carriedOver(old);
      s.index = states.length;
      states.push(s);
      byId.set(s.endpoint.id, s);
    }
    this.#byId = byId;
    this.#states = states;
    this.#seenSet = previous.#seenSet;
    this.#line = previous.#line;
    this.#line.current = this;
    this.#panic = previous.#panic;
    this.#local = previous.#local;
    this.#readmitted = this.#outliers.adopt(states);
    // Health checks turned off: an endpoint the old checks held out takes traffic again, and says so.
    if (this.#checker === undefined)
      for (const old of previous.#states) if (!old.checkHealthy) this.#checkCleared.push(old.endpoint.id);
  }

  /** Endpoints failing the health checks of the balancer this one replaced, which has none. */
  #checkCleared: string[] = [];

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
    // Never measured: `defaultRtt`, decaying from when the endpoint joined as any estimate does
    // (tower's PeakEwma, Linkerd's): one the measured endpoints beat at first is still tried in time.
    const rtt = state.ewma < 0 ? this.config.defaultRtt : state.ewma;
    const dt = now - state.ewmaAt;
    return dt > 0 ? rtt * Math.exp(-dt / this.config.decayTime) : rtt;
  }

  update(set: EndpointSet): void {
    if (this.#closed) return;
    const now = this.#clock.now();
    this.#time[0] = now;
    const { byId: next, states } = mergeStates(
      this.#byId,
      set.endpoints,
      this.#seenSet ? now : Number.NEGATIVE_INFINITY,
      now,
    );
    for (const [id, s] of this.#byId) {
      if (!next.has(id)) {
        this.#outliers.remove(s);
        this.#connectivity.remove(s);
      }
    }
    this.#byId = next;
    this.#states = states;
    this.#seenSet = true;
    if (this.#readmitted.length > 0) {
      for (const s of this.#readmitted) {
        if (next.get(s.endpoint.id) === s)
          this.#events.emit({ type: 'readmit', service: this.#deps.service, endpoint: s.endpoint.id });
      }
      this.#readmitted = [];
    }
    if (this.#checkCleared.length > 0) {
      for (const id of this.#checkCleared)
        if (next.has(id))
          this.#events.emit({
            type: 'health_check',
            service: this.#deps.service,
            endpoint: id,
            healthy: true,
          });
      this.#checkCleared = [];
    }
    if (this.#checker) {
      this.#checker.sync(set.endpoints);
      for (const s of states) s.checkHealthy = this.#checker.isHealthy(s.endpoint.id);
    }
    this.#rebuild();
  }

  /** Recompute the active list (health, ejection, locality, panic) and the picker. */
  #rebuild(): void {
    const { usable, active, total, panic, local, inZone, levels, loads } = selectActive(
      this.#states,
      this.config,
    );
    const zone = this.config.zone;
    // A switch fires its event; the first state does only when it is a spill (starting in the zone
    // restores nothing).
    if (zone !== undefined && inZone > 0 && local !== this.#local && (this.#local !== undefined || !local))
      this.#events.locality(local, zone);
    this.#local = local;
    if (panic !== this.#panic) {
      this.#panic = panic;
      this.#events.panic(panic, usable.length, total);
    }
    this.#active = active;
    this.#usable = usable;
    const build = (states: EndpointState[]) => buildPicker(this.config.policy, states, this);
    this.#levels = levels === undefined ? undefined : pickLevels(levels, build);
    if (this.#levels !== undefined) this.#picker = this.#levels[0]?.picker;
    else this.#picker = active.length > 0 ? build(active) : undefined;
    if (loadsChanged(this.#loads, loads)) this.#events.priorityLoad(loads ?? []);
    this.#loads = loads;
    // A maglev table smaller than the endpoints leaves some with no entry: they get no traffic.
    const short = this.config.policy === 'maglev' && active.length > this.config.tableSize;
    if (short !== this.#tableShort) {
      this.#tableShort = short;
      if (short) this.#events.tableTooSmall(active.length, this.config.tableSize);
    }
    if (this.#picker !== undefined && this.#waiters.size > 0) this.#waiters.resolveAll();
  }

  get usableCount(): number {
    return this.#usable.length;
  }

  pick(ctx: CallContext): Endpoint {
    let picker = this.#picker;
    if (picker === undefined) throw noEndpointsError(this.#deps.service, this.#states);
    let active = this.#active;
    const levels = this.#levels;
    if (levels !== undefined) {
      const level = chooseLevel(levels, ctx, this.#keepsAffinity ? this.config.hashOn : false, this.random);
      picker = level.picker;
      active = level.active;
    }
    let s = picker.pick(ctx);
    const exclude = ctx.excludeEndpoints;
    if (exclude !== undefined && exclude.size > 0 && exclude.has(s.endpoint.id)) {
      const n = active.length;
      for (let tries = 0; tries < 3 && exclude.has(s.endpoint.id); tries++) s = picker.pick(ctx);
      if (exclude.has(s.endpoint.id)) s = firstNotExcluded(active, exclude, this.ints) ?? s;
      // Nothing else in the local zone (or the level): a retry may leave it.
      if (exclude.has(s.endpoint.id) && active !== this.#usable && n < this.#usable.length) {
        s = firstNotExcluded(this.#usable, exclude, this.ints) ?? s;
      }
    }
    if (!this.#keepsAffinity && isWaitingToConnect(s))
      s = notConnecting(active, ctx.excludeEndpoints, this.ints, s);
    return s.endpoint;
  }

  onAttemptStart(endpoint: Endpoint): EndpointState | undefined {
    const s = this.#byId.get(endpoint.id);
    if (s) {
      s.inflight++;
      this.#connectivity.attemptStarted(s);
    }
    this.#time[0] = this.#clock.now();
    return s;
  }

  onAttemptEnd(endpoint: Endpoint, outcome: AttemptOutcome, token?: unknown): void {
    const current = this.#byId.get(endpoint.id);
    // The state the attempt started on: an endpoint removed (and maybe added again) since is
    // another state, whose in-flight count and statistics this attempt must not touch.
    const s = token instanceof EndpointState ? token : current;
    if (!s) return;
    if (s.inflight > 0) s.inflight--;
    if (s !== current) return;
    const successor = this.#line.current;
    if (successor !== this) {
      // Replaced while the attempt was in flight (a config change): its outcome is the endpoint's,
      // whose statistics, counters and ejection now live in the balancer in force.
      if (!successor.#closed) successor.#record(endpoint, outcome);
      return;
    }
    this.#record(endpoint, outcome, s);
  }

  /** Count an ended attempt's outcome against `endpoint` (its state here, or `s` when given). */
  #record(endpoint: Endpoint, outcome: AttemptOutcome, state?: EndpointState): void {
    const s = state ?? this.#byId.get(endpoint.id);
    if (!s) return;
    const now = this.#clock.now();
    this.#time[0] = now;
    if (outcome.failure === 'cancelled') return;
    if (outcome.failure === 'connect') this.#connectivity.connectFailed(s, outcome.error);
    else if (outcome.status !== undefined) this.#connectivity.responded(s);
    s.observeLatency(outcome.latencyMs, now, this.config.decayTime);
    const status = outcome.status;
    const local = outcome.failure !== undefined;
    s.countAttempt(local || (status !== undefined && status >= 500));
    if (this.#outliers.enabled) this.#outliers.record(s, local, status);
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
    if (this.#closed) return Promise.reject(closedError(this.#deps.service));
    if (this.#picker !== undefined) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(abortError(signal));
    return this.#waiters.wait(signal);
  }

  /**
   * A connectivity transition. One into or out of `TRANSIENT_FAILURE` (a connect failed, a
   * reconnect probe, connected again) is an event, with a log line and a rebuild when picking
   * changes. The moves between `IDLE`, `CONNECTING` and `READY` of a reachable endpoint as its
   * connections open and close are in `stats()` only: an event for each was two per request to a
   * server that closes every connection, which flushed the admin's event history.
   */
  #onConnectivity(
    s: EndpointState,
    from: ConnectivityState,
    to: ConnectivityState,
    reachableChanged: boolean,
    error: unknown,
  ): void {
    if (this.#closed || this.#byId.get(s.endpoint.id) !== s) return;
    if (!reachableChanged && from !== 'TRANSIENT_FAILURE' && to !== 'TRANSIENT_FAILURE') return;
    this.#events.connectivity(s.endpoint.id, from, to, reachableChanged, error);
    if (reachableChanged) this.#rebuild();
  }

  #onHealthChange(id: string, healthy: boolean): void {
    const s = this.#byId.get(id);
    if (!s || this.#closed) return;
    // Envoy: an endpoint back from a failed active health check ramps up again under slow start.
    if (healthy && !s.checkHealthy) s.addedAt = this.#clock.now();
    s.checkHealthy = healthy;
    this.#events.emit({ type: 'health_check', service: this.#deps.service, endpoint: id, healthy });
    this.#rebuild();
  }

  stats(): BalancerStats {
    const now = this.#clock.now();
    return {
      service: this.#deps.service,
      policy: this.config.policy,
      panic: this.#panic,
      locality: this.#local ? 'local' : 'all',
      active: this.#active.length,
      ...(this.#loads === undefined ? {} : { priorities: this.#loads }),
      endpoints: this.#states.map((s) => endpointStats(s, now, this, this.#connectivity)),
    };
  }

  onEvent(listener: (event: BalancerEvent) => void): () => void {
    return this.#events.add(listener);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#outliers.close();
    this.#checker?.close();
    this.#connectivity.close();
    this.#events.clear();
    this.#waiters.rejectAll(() => closedError(this.#deps.service));
  }
}
