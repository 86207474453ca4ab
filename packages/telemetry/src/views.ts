import { type Clock, systemClock, wallClockMs } from '@proxyless/core';
import type { BreakerState, TelemetryEvent } from './events.js';

/** One endpoint as the admin server shows it (`/clusters`, the page). */
export interface EndpointView {
  readonly id: string;
  readonly address: string;
  readonly port: number;
  readonly health: 'passing' | 'warning' | 'critical';
  /** Ejected by outlier detection. */
  readonly ejected: boolean;
  readonly weight?: number;
  readonly zone?: string;
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
  readonly circuitBreaker?: BreakerState;
  readonly endpoints: readonly EndpointView[];
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
    case 'config_applied':
      return { time, type: event.type, detail: `config version ${event.version}` };
    case 'config_rejected':
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
        detail: `${event.set.endpoints.length} endpoints from ${event.set.source} (v${event.set.version})${event.set.stale ? ', stale' : ''}`,
      };
    case 'balancer': {
      const e = event.event;
      const parts = [e.type];
      if (e.endpoint !== undefined) parts.push(e.endpoint);
      const extra = [e.reason, e.durationMs !== undefined ? `${e.durationMs} ms` : undefined].filter(Boolean);
      if (e.healthy !== undefined) extra.push(e.healthy ? 'healthy' : 'unhealthy');
      if (extra.length > 0) parts.push(`(${extra.join(', ')})`);
      return { time, type: e.type, service: event.service, detail: parts.join(' ') };
    }
    case 'circuit_breaker':
      return { time, type: event.type, service: event.service, detail: `circuit ${event.state}` };
    case 'service_removed':
      return { time, type: event.type, service: event.service, detail: 'destination removed' };
  }
}
