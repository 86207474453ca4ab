import { type Clock, systemClock } from '@proxyless/core';
import type { Registry } from 'prom-client';
import { OTEL_DURATION_BUCKETS } from './config.js';
import { ENDPOINT_STATES, EndpointStates } from './endpoint-states.js';
import {
  type BreakerState,
  type CallEventLike,
  type EndpointSetLike,
  giveUpCause,
  type TelemetryEvent,
} from './events.js';
import type { CounterHandle, HistogramHandle } from './fast-metrics.js';
import { declareInstruments, type Instruments } from './instruments.js';
import { BoundedValues, methodLabel, OTHER, statusLabel } from './labels.js';
import type { AttemptOutcome, MeshMetrics, MeshMetricsOptions } from './metrics-api.js';
import { metricsFailed, type ServiceState, sourceLabel } from './metrics-support.js';
import { register } from './prom.js';
import type { ServiceStatsLike } from './views.js';

export type { AttemptOutcome, MeshMetrics, MeshMetricsOptions, MetricLimits } from './metrics-api.js';

const ATTEMPT_OUTCOMES: readonly AttemptOutcome[] = ['success', '5xx', 'error', 'cancelled'];

const BREAKER_STATES: readonly BreakerState[] = ['closed', 'open', 'half-open'];

/**
 * Create (or reuse, when a registry already holds them) the mesh's metrics.
 *
 * @example
 * const metrics = createMeshMetrics({ registry: new Registry() });
 * metrics.recordClientRequest('payments', 'GET', 200, '', 0.012);
 */
export function createMeshMetrics(options: MeshMetricsOptions = {}): MeshMetrics {
  return new PromMeshMetrics(options);
}

class PromMeshMetrics implements MeshMetrics {
  readonly registry: Registry;
  readonly #clock: Clock;
  /** The Prometheus instruments recorded into. */
  readonly #m: Instruments;
  readonly #services: BoundedValues;
  readonly #endpointLimit: number;
  readonly #reasonLimit: number;
  readonly #state = new Map<string, ServiceState>();
  /** Holds on the call series of services, by service ({@link MeshMetrics.holdCallSeries}). */
  readonly #holds = new Map<string, number>();
  /** Services removed whose call series wait for the last hold to be released. */
  readonly #draining = new Set<string>();
  /** Services whose endpoint set changed version: departed endpoints' series to drop. */
  readonly #departures = new Set<string>();
  #departuresScheduled = false;
  /** Series handles of the hot-path metrics, by raw label key, so a request costs a lookup and an add. */
  readonly #clientSeries = new Map<string, Map<string, Map<number, Map<string, HistogramHandle>>>>();
  readonly #attemptSeries = new Map<string, Map<string, Map<AttemptOutcome, CounterHandle>>>();

  constructor(o: MeshMetricsOptions) {
    const registry = o.registry ?? register;
    this.registry = registry;
    this.#clock = o.clock ?? systemClock;
    this.#services = new BoundedValues(o.limits?.services ?? 2000);
    this.#endpointLimit = o.limits?.endpointsPerService ?? 64;
    this.#reasonLimit = o.limits?.reasonsPerService ?? 16;
    this.#m = declareInstruments(registry, o.durationBuckets ?? OTEL_DURATION_BUCKETS, () =>
      this.#collectStaleness(),
    );
  }

  recordClientRequest(
    service: string,
    method: string,
    status: number | undefined,
    errorType: string,
    seconds: number,
  ): void {
    // Nested maps keyed by the raw values: a lookup allocates nothing.
    let byMethod = this.#clientSeries.get(service);
    if (byMethod === undefined) {
      byMethod = new Map();
      if (this.#clientSeries.size < 10_000) this.#clientSeries.set(service, byMethod);
    }
    let byStatus = byMethod.get(method);
    if (byStatus === undefined) {
      byStatus = new Map();
      if (byMethod.size < 64) byMethod.set(method, byStatus);
    }
    const statusKey = status ?? 0;
    let byError = byStatus.get(statusKey);
    if (byError === undefined) {
      byError = new Map();
      if (byStatus.size < 64) byStatus.set(statusKey, byError);
    }
    let series = byError.get(errorType);
    if (series === undefined) {
      const svc = this.#services.bound(service);
      series = this.#m.clientDuration.handle({
        http_request_method: methodLabel(method),
        http_response_status_code: statusLabel(status),
        server_address: svc,
        // Empty on success, always: the cap bounds error types, and a success is none (with 16
        // distinct errors seen first, a success was counted under `_OTHER`).
        error_type:
          errorType === '' || svc === OTHER
            ? errorType && OTHER
            : this.#serviceState(svc).errorTypes.bound(errorType),
      });
      // Caches are capped: the raw key space is what callers send; the series behind are bounded anyway.
      if (byError.size < 64) byError.set(errorType, series);
    }
    series.observe(seconds);
  }

  recordServerRequest(method: string, status: number | undefined, errorType: string, seconds: number): void {
    this.#m.serverDuration
      .handle({
        http_request_method: methodLabel(method),
        http_response_status_code: statusLabel(status),
        error_type: errorType.length > 64 ? OTHER : errorType,
      })
      .observe(seconds);
  }

  recordAttempt(service: string, endpoint: string, outcome: AttemptOutcome): void {
    let byEndpoint = this.#attemptSeries.get(service);
    if (byEndpoint === undefined) {
      byEndpoint = new Map();
      if (this.#attemptSeries.size < 10_000) this.#attemptSeries.set(service, byEndpoint);
    }
    let byOutcome = byEndpoint.get(endpoint);
    if (byOutcome === undefined) {
      byOutcome = new Map();
      if (byEndpoint.size < 1024) byEndpoint.set(endpoint, byOutcome);
    }
    let series = byOutcome.get(outcome);
    if (series === undefined) {
      if (this.#departures.size > 0) this.#dropDepartedEndpoints();
      const svc = this.#services.bound(service);
      series = this.#m.attempts.handle({
        service: svc,
        endpoint: this.#endpointLabel(svc, endpoint),
        outcome,
      });
      byOutcome.set(outcome, series);
    }
    series.inc();
  }

  recordCallEvent(service: string, event: CallEventLike): void {
    try {
      this.#recordCallEvent(service, event);
    } catch (error) {
      metricsFailed(error);
    }
  }

  #recordCallEvent(service: string, event: CallEventLike): void {
    if (event.type === 'retry') {
      const svc = this.#services.bound(service);
      this.#m.retries.inc({ service: svc, reason: this.#reason(svc, event.reason ?? '') });
    } else if (event.type === 'give_up' && giveUpCause(event.reason) === 'budget_exhausted') {
      this.#m.budgetExhausted.inc({ service: this.#services.bound(service) });
    }
  }

  onMeshEvent(event: TelemetryEvent): void {
    switch (event.type) {
      case 'config_applied':
        // Versions of different sources are unrelated numbers: one series each.
        // Consul's discovery chains are one per service, each with its own index.
        this.#m.configVersion.set(
          {
            source: sourceLabel(event.source),
            ...(event.service !== undefined ? { service: this.#services.bound(event.service) } : {}),
          },
          event.version,
        );
        return;
      case 'config_rejected':
        this.#m.configRejected.inc({ source: sourceLabel(event.source) });
        return;
      case 'config_source_error':
        this.#m.configSourceErrors.inc({ source: sourceLabel(event.source) });
        return;
      case 'resolver_error':
        this.#live(event.service);
        this.#m.resolverErrors.inc({ service: this.#services.bound(event.service) });
        return;
      case 'circuit_breaker': {
        this.#live(event.service);
        const svc = this.#services.bound(event.service);
        if (svc === OTHER) return;
        // A routing target's subset has a breaker of its own: its series carry `target` (as
        // Envoy's stats are per cluster, a Consul subset being a cluster of its own), so a canary
        // subset's open breaker is not read as the service's, nor hidden.
        const at = this.#targetLabels(svc, event.target);
        for (const s of BREAKER_STATES) this.#m.breaker.set({ ...at, state: s }, s === event.state ? 1 : 0);
        return;
      }
      case 'endpoints_changed': {
        // A routing target's subset: the service's gauges follow the service's own set only.
        if (event.target !== undefined) return;
        this.#live(event.service);
        const svc = this.#services.bound(event.service);
        if (svc === OTHER) return;
        const st = this.#serviceState(svc);
        this.#noteEndpointSet(svc, st, event.set);
        st.states.setEndpoints(event.set.endpoints);
        st.staleSince = event.set.stale ? (event.set.staleSince ?? event.set.updatedAt) : undefined;
        this.#m.stale.set({ service: svc }, event.set.stale ? 1 : 0);
        this.#updateEndpoints(svc, st);
        return;
      }
      case 'balancer': {
        this.#live(event.service);
        const svc = this.#services.bound(event.service);
        if (svc === OTHER) return;
        const st = this.#serviceState(svc);
        const e = event.event;
        if (e.type === 'eject' && e.endpoint !== undefined)
          this.#m.ejections.inc({ service: svc, reason: this.#reason(svc, e.reason ?? '') });
        if (e.type === 'panic_enter' || e.type === 'panic_exit')
          this.#m.panic.set(this.#targetLabels(svc, event.target), e.type === 'panic_enter' ? 1 : 0);
        else if (st.states.onEvent(e)) this.#updateEndpoints(svc, st);
        return;
      }
      case 'service_removed': {
        // The service's slot under the services cap is freed, so its series go with it: a cap
        // that freed slots but kept series would let churning services grow them without bound.
        const svc = event.service;
        if (!this.#services.has(svc)) return;
        this.#dropDestinationSeries(svc);
        // Calls still in flight to the removed destination are counted before their series go:
        // dropped now, a call ending later would make them again (and leave them for good).
        if (this.#holds.has(svc)) this.#draining.add(svc);
        else this.#dropCallSeries(svc);
        return;
      }
    }
  }

  holdCallSeries(service: string): () => void {
    this.#holds.set(service, (this.#holds.get(service) ?? 0) + 1);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      const n = (this.#holds.get(service) ?? 1) - 1;
      if (n > 0) {
        this.#holds.set(service, n);
        return;
      }
      this.#holds.delete(service);
      if (this.#draining.delete(service)) this.#dropCallSeries(service);
    };
  }

  /** A live destination of `service` speaks: a removal waiting for its calls is called off. */
  #live(service: string): void {
    if (this.#draining.size > 0) this.#draining.delete(service);
  }

  /** The series of a removed destination's state; its service keeps its slot (and call series). */
  #dropDestinationSeries(svc: string): void {
    const st = this.#state.get(svc);
    for (const reason of [...(st?.reasons.values() ?? []), OTHER]) {
      this.#m.ejections.remove({ service: svc, reason });
    }
    this.#m.resolverErrors.remove({ service: svc });
    for (const s of ENDPOINT_STATES) this.#m.endpoints.remove({ service: svc, state: s });
    for (const s of BREAKER_STATES) this.#m.breaker.remove({ service: svc, state: s });
    for (const target of [...(st?.targets.values() ?? []), OTHER]) this.#dropTargetSeries(svc, target);
    this.#m.stale.remove({ service: svc });
    this.#m.staleness.remove({ service: svc });
    this.#m.panic.remove({ service: svc });
    // Consul's discovery chain of the service: its watch is released with the destination, and a
    // watch started again sets it anew. Kept, every mistyped host under Consul left one for good.
    this.#m.configVersion.remove({ source: 'consul', service: svc });
    // No endpoint set known any more: the staleness collector skips it, and a destination built
    // again starts from its own.
    if (st !== undefined)
      this.#state.set(svc, {
        ...st,
        states: new EndpointStates(),
        targets: new BoundedValues(this.#reasonLimit),
        staleSince: undefined,
        live: undefined,
        liveVersion: undefined,
      });
    this.#departures.delete(svc);
  }

  /** The call series of a removed service, and its slot under the services cap. */
  #dropCallSeries(svc: string): void {
    this.#state.delete(svc);
    this.#departures.delete(svc);
    this.#services.delete(svc);
    // The hot-path handles of the removed series must not be reused if the service returns.
    this.#clientSeries.delete(svc);
    this.#attemptSeries.delete(svc);
    this.#m.clientDuration.removeWhere('server_address', svc);
    this.#m.attempts.removeWhere('service', svc);
    this.#m.retries.removeWhere('service', svc);
    this.#m.budgetExhausted.remove({ service: svc });
  }

  onDestination(service: string, stats: ServiceStatsLike, target?: string): void {
    // Called as a destination is built, inside the first call to it: a metrics failure must never
    // fail that call.
    try {
      this.#onDestination(service, stats, target);
    } catch (error) {
      metricsFailed(error);
    }
  }

  #onDestination(service: string, stats: ServiceStatsLike, target?: string): void {
    this.#live(service);
    const svc = this.#services.bound(service);
    if (svc === OTHER) return;
    const at = this.#targetLabels(svc, target);
    const breaker = stats.circuitBreaker;
    for (const s of BREAKER_STATES) {
      if (breaker === undefined) this.#m.breaker.remove({ ...at, state: s });
      else this.#m.breaker.set({ ...at, state: s }, s === breaker ? 1 : 0);
    }
    this.#m.panic.set(at, stats.panic === true ? 1 : 0);
    // A subset's balancer sees part of the set: the endpoint states stay the service's.
    if (target !== undefined) return;
    // The balancer in force may be a new one (a config change): its view replaces what the events
    // of the previous one left.
    const st = this.#serviceState(svc);
    st.states.resetFrom(stats.endpoints);
    if (st.states.known) this.#updateEndpoints(svc, st);
  }

  forgetTarget(service: string, target: string): void {
    if (!this.#services.has(service)) return;
    const st = this.#state.get(service);
    if (st === undefined || !st.targets.has(target)) return;
    this.#dropTargetSeries(service, target);
    st.targets.delete(target);
  }

  /** The labels of a destination's breaker and panic series: `target` for a routing subset's. */
  #targetLabels(svc: string, target: string | undefined): { service: string; target?: string } {
    if (target === undefined) return { service: svc };
    return { service: svc, target: this.#serviceState(svc).targets.bound(target) };
  }

  #dropTargetSeries(svc: string, target: string): void {
    for (const s of BREAKER_STATES) this.#m.breaker.remove({ service: svc, target, state: s });
    this.#m.panic.remove({ service: svc, target });
  }

  async seriesCount(): Promise<number> {
    let n = 0;
    for (const m of await this.registry.getMetricsAsJSON()) n += m.values.length;
    return n;
  }

  #serviceState(svc: string): ServiceState {
    let st = this.#state.get(svc);
    if (st === undefined) {
      st = {
        endpoints: new BoundedValues(this.#endpointLimit),
        reasons: new BoundedValues(this.#reasonLimit),
        errorTypes: new BoundedValues(this.#reasonLimit),
        states: new EndpointStates(),
        targets: new BoundedValues(this.#reasonLimit),
        staleSince: undefined,
        live: undefined,
        liveVersion: undefined,
      };
      this.#state.set(svc, st);
    }
    return st;
  }

  /**
   * The `endpoint` label of an attempt to `endpoint`: its own while it is in the service's set
   * (within the cap), else `_OTHER` — an attempt that ends after its endpoint left the set counts
   * there, and never brings the departed endpoint's series back.
   */
  #endpointLabel(svc: string, endpoint: string): string {
    if (svc === OTHER) return OTHER;
    const st = this.#serviceState(svc);
    if (st.live !== undefined && !st.live.has(endpoint)) return OTHER;
    return st.endpoints.bound(endpoint);
  }

  /**
   * An endpoint set of `svc`. One resolver update reaches every destination of the service (its
   * own and its routing subsets, each with its part of the set) in one go, under one version: the
   * endpoints reported for a version add up, and those of an earlier version that none reports go
   * once the update has reached them all (a microtask later, or before the next new series).
   */
  #noteEndpointSet(svc: string, st: ServiceState, set: EndpointSetLike): void {
    const version = `${set.source}\u0000${set.version}`;
    if (st.live === undefined || st.liveVersion !== version) {
      st.live = new Set();
      st.liveVersion = version;
      this.#departures.add(svc);
      if (!this.#departuresScheduled) {
        this.#departuresScheduled = true;
        queueMicrotask(() => this.#dropDepartedEndpoints());
      }
    }
    for (const e of set.endpoints) st.live.add(e.id);
  }

  /**
   * Drop the `mesh_attempts_total` series of endpoints no longer in their service's set and free
   * their slots under the endpoints cap; forget the cached handles of departed endpoints and of
   * those folded into `_OTHER` (a freed slot may now hold them).
   */
  #dropDepartedEndpoints(): void {
    this.#departuresScheduled = false;
    for (const svc of this.#departures) {
      const st = this.#state.get(svc);
      const live = st?.live;
      if (st === undefined || live === undefined) continue;
      for (const ep of [...st.endpoints.values()]) {
        if (live.has(ep)) continue;
        st.endpoints.delete(ep);
        for (const outcome of ATTEMPT_OUTCOMES)
          this.#m.attempts.remove({ service: svc, endpoint: ep, outcome });
      }
      const cached = this.#attemptSeries.get(svc);
      if (cached !== undefined) for (const ep of cached.keys()) if (!st.endpoints.has(ep)) cached.delete(ep);
    }
    this.#departures.clear();
  }

  #reason(svc: string, reason: string): string {
    return svc === OTHER ? OTHER : this.#serviceState(svc).reasons.bound(reason);
  }

  /** `mesh_endpoints` of one service: its endpoints counted by state ({@link EndpointStates}). */
  #updateEndpoints(svc: string, st: ServiceState): void {
    const counts = st.states.counts();
    for (const s of ENDPOINT_STATES) this.#m.endpoints.set({ service: svc, state: s }, counts[s]);
  }

  #collectStaleness(): void {
    const now = this.#clock.now();
    for (const [svc, st] of this.#state) {
      if (!st.states.known) continue;
      this.#m.staleness.set(
        { service: svc },
        st.staleSince === undefined ? 0 : Math.max(0, (now - st.staleSince) / 1000),
      );
    }
  }
}
