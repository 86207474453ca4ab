import { type Clock, systemClock, wallClockMs } from '@proxyless/core';
import type { BreakerState, EndpointSetLike, TelemetryEvent } from './events.js';

/** One endpoint as the admin server shows it (`/clusters`, the page). */
export interface EndpointView {
  readonly id: string;
  readonly address: string;
  readonly port: number;
  readonly health: 'passing' | 'warning' | 'critical';
  /** Ejected by outlier detection. */
  readonly ejected: boolean;
  /** Its last connect failed (connectivity `TRANSIENT_FAILURE`): not picked, even in panic. */
  readonly unreachable?: true;
  readonly weight?: number;
  readonly zone?: string;
  /** Priority level, when not 0 (a backup: takes calls as lower levels lose healthy endpoints). */
  readonly priority?: number;
  readonly inFlight?: number;
  /** Latency EWMA, ms. */
  readonly ewmaMs?: number;
  readonly requests?: number;
  readonly failures?: number;
  /** Open connections in the endpoint's pool. */
  readonly connections?: number;
}

/** One destination service as the admin server shows it. */
export interface ServiceView {
  readonly name: string;
  /** Which resolver the endpoints came from (`static`, `consul`, …). */
  readonly source?: string;
  /** The endpoint set's version. */
  readonly version?: number;
  /** Has resolved at least once (readiness). */
  readonly resolved: boolean;
  /** Serving the last known good set because the registry cannot be reached. */
  readonly stale: boolean;
  readonly staleForMs?: number;
  /** Load-balancing policy (`round_robin`, `peak_ewma`, …). */
  readonly policy?: string;
  readonly panic?: boolean;
  /** Each priority level's share of calls (percent), when the endpoints have more than one priority. */
  readonly priorities?: readonly { readonly priority: number; readonly load: number }[];
  readonly circuitBreaker?: BreakerState;
  readonly endpoints: readonly EndpointView[];
  /**
   * For a service with a routing chain: the destination of each routing target its routes and
   * splits lead to (built so far), by target ID. A routed call goes through these, not through the
   * service's own destination, so their endpoints carry the service's traffic (Envoy lists each
   * target as a cluster of its own).
   */
  readonly targets?: readonly TargetView[];
}

/** A routing target's destination (a service, or a subset of it), as `/clusters` lists it under the routed service. */
export interface TargetView extends Omit<ServiceView, 'targets'> {
  /** The target ID (`v2.web.default.default.dc1`). */
  readonly name: string;
  /** The service whose endpoints the target takes. */
  readonly service: string;
  /** The service-resolver subset, when the target is one (`v2`). */
  readonly subset?: string;
}

/** One recent event, as `/events` and the page list them. */
export interface EventView {
  /** ISO 8601 wall-clock time. */
  readonly time: string;
  readonly type: string;
  readonly service?: string;
  /** One line in words (`eject 10.0.0.7:8080 (consecutive_5xx, 30000 ms)`). */
  readonly detail: string;
}

/** A bounded history of events (grpc-js channelz keeps ~32 per channel; ours is configurable). */
export interface EventRing {
  /** Record a mesh event. */
  push(event: TelemetryEvent): void;
  /** Oldest first. */
  list(): EventView[];
  readonly capacity: number;
}

/**
 * A ring buffer of the most recent mesh events for `/events` and the admin page.
 *
 * @example
 * const ring = createEventRing(256);
 * mesh.onEvent((e) => ring.push(e));
 */
export function createEventRing(capacity = 256, clock: Clock = systemClock): EventRing {
  const items: EventView[] = new Array(capacity);
  let next = 0;
  let size = 0;
  // Event times come from the clock; shown as wall time, offset once.
  const offset = wallClockMs() - clock.now();
  return {
    capacity,
    push(event) {
      items[next] = describeEvent(event, new Date(offset + clock.now()).toISOString());
      next = (next + 1) % capacity;
      if (size < capacity) size++;
    },
    list() {
      const out: EventView[] = [];
      for (let i = 0; i < size; i++) out.push(items[(next - size + i + capacity) % capacity]!);
      return out;
    },
  };
}

/** A mesh event in words. */
export function describeEvent(event: TelemetryEvent, time: string): EventView {
  switch (event.type) {
    case 'config_warning':
      return {
        time,
        type: event.type,
        ...(event.service !== undefined ? { service: event.service } : {}),
        detail: `${event.issue.field}: ${event.issue.message ?? event.issue.expected ?? ''}`,
      };
    case 'config_applied':
      return {
        time,
        type: event.type,
        detail: `config version ${event.version}${event.source ? ` (${event.source})` : ''}`,
      };
    case 'config_rejected':
    case 'config_source_error':
      return {
        time,
        type: event.type,
        ...(event.service !== undefined ? { service: event.service } : {}),
        detail: `${event.source ? `${event.source}: ` : ''}${event.error.code ?? 'error'}: ${event.error.message ?? ''}`,
      };
    case 'admin_failed':
      return {
        time,
        type: event.type,
        detail: `${event.error.code ?? 'error'}: ${event.error.message ?? ''}`,
      };
    case 'resolver_error':
      return {
        time,
        type: event.type,
        service: event.service,
        detail: `${event.error.code ?? 'error'}: ${event.error.message ?? ''}`,
      };
    case 'endpoints_changed':
      return {
        time,
        type: event.type,
        service: event.service,
        detail: `${event.target ? `target ${event.target}: ` : ''}${event.set.endpoints.length} endpoints from ${event.set.source} (v${event.set.version})${event.set.stale ? ', stale' : ''}`,
      };
    case 'balancer': {
      const e = event.event;
      const parts = [e.type];
      if (e.endpoint !== undefined) parts.push(e.endpoint);
      // A connectivity change says from which state to which, and why it failed.
      if (e.to !== undefined) parts.push(e.from !== undefined ? `${e.from} → ${e.to}` : `→ ${e.to}`);
      const extra = [e.reason, e.error, e.durationMs !== undefined ? `${e.durationMs} ms` : undefined].filter(
        Boolean,
      );
      if (e.healthy !== undefined) extra.push(e.healthy ? 'healthy' : 'unhealthy');
      if (extra.length > 0) parts.push(`(${extra.join(', ')})`);
      const on = event.target !== undefined ? `target ${event.target}: ` : '';
      return { time, type: e.type, service: event.service, detail: on + parts.join(' ') };
    }
    case 'circuit_breaker':
      return {
        time,
        type: event.type,
        service: event.service,
        detail: `${event.target !== undefined ? `target ${event.target}: ` : ''}circuit ${event.state}`,
      };
    case 'service_removed':
      return { time, type: event.type, service: event.service, detail: 'destination removed' };
  }
}

/** A balancer's per-endpoint figures as {@link serviceView} reads them (the balancer's `EndpointStats`). */
export interface EndpointStatsLike {
  readonly id: string;
  readonly address: string;
  readonly port: number;
  readonly zone?: string | undefined;
  readonly priority?: number;
  readonly weight?: number;
  readonly health: 'passing' | 'warning' | 'critical';
  /** Active health-check verdict; `false` shows the endpoint unhealthy. */
  readonly checkHealthy?: boolean;
  /** Connectivity state (`IDLE`, `CONNECTING`, `READY`, `TRANSIENT_FAILURE`). */
  readonly connectivity?: string;
  /** False from a failed connect until a connection succeeds (a reconnect attempt included). */
  readonly reachable?: boolean;
  readonly inflight?: number;
  readonly ewmaMs?: number | undefined;
  readonly ejected: boolean;
  readonly requests?: number;
  readonly failures?: number;
}

/** A balancer snapshot as {@link serviceView} reads it (the mesh's `ServiceStats`). */
export interface ServiceStatsLike {
  readonly policy?: string;
  readonly panic?: boolean;
  readonly priorities?: readonly { readonly priority: number; readonly load: number }[];
  readonly circuitBreaker?: BreakerState;
  readonly endpoints: readonly EndpointStatsLike[];
}

/** What the mesh knows about one service, for {@link serviceView}. */
export interface ServiceViewSource {
  readonly set?: EndpointSetLike | undefined;
  readonly stats?: ServiceStatsLike | undefined;
  /** Open connections of an endpoint's pool. */
  connections?(endpointId: string): number | undefined;
  /** Clock time now (for `staleForMs`). */
  readonly now: number;
}

/**
 * Build the admin view of a service from its endpoint set and balancer snapshot: the balancer's
 * figures when it has them, else the set's endpoints as the registry reported them.
 */
/**
 * Whether an endpoint is out of picking for a failed connect: from the failure until a connection
 * succeeds, through the reconnect attempts' `CONNECTING` (the balancer's `reachable`; older stats
 * without it: `TRANSIENT_FAILURE`).
 */
export function unreachable(e: { readonly connectivity?: string; readonly reachable?: boolean }): boolean {
  return e.reachable === false || e.connectivity === 'TRANSIENT_FAILURE';
}

export function serviceView(name: string, src: ServiceViewSource): ServiceView {
  const { set, stats } = src;
  const endpoints: EndpointView[] = stats
    ? stats.endpoints.map((e) => {
        const connections = src.connections?.(e.id);
        return {
          id: e.id,
          address: e.address,
          port: e.port,
          health: e.checkHealthy === false ? 'critical' : e.health,
          ejected: e.ejected,
          ...(unreachable(e) ? { unreachable: true as const } : {}),
          ...(e.weight !== undefined ? { weight: e.weight } : {}),
          ...(e.zone !== undefined ? { zone: e.zone } : {}),
          ...(e.priority !== undefined && e.priority !== 0 ? { priority: e.priority } : {}),
          ...(e.inflight !== undefined ? { inFlight: e.inflight } : {}),
          ...(e.ewmaMs !== undefined ? { ewmaMs: e.ewmaMs } : {}),
          ...(e.requests !== undefined ? { requests: e.requests } : {}),
          ...(e.failures !== undefined ? { failures: e.failures } : {}),
          ...(connections !== undefined ? { connections } : {}),
        };
      })
    : (set?.endpoints ?? []).map((e) => ({
        id: e.id,
        address: e.address,
        port: e.port,
        health: e.health ?? 'passing',
        ejected: false,
      }));
  const staleSince = set?.stale ? (set.staleSince ?? set.updatedAt) : undefined;
  return {
    name,
    resolved: set !== undefined,
    stale: set?.stale ?? false,
    endpoints,
    ...(set ? { source: set.source, version: set.version } : {}),
    ...(staleSince !== undefined ? { staleForMs: Math.max(0, src.now - staleSince) } : {}),
    ...(stats?.policy !== undefined ? { policy: stats.policy } : {}),
    ...(stats?.panic !== undefined ? { panic: stats.panic } : {}),
    ...(stats?.priorities !== undefined ? { priorities: stats.priorities } : {}),
    ...(stats?.circuitBreaker !== undefined ? { circuitBreaker: stats.circuitBreaker } : {}),
  };
}

/** `/readyz`: every configured service has resolved at least once. */
export function allResolved(services: readonly ServiceView[]): boolean {
  return services.every((s) => s.resolved);
}
