import { VirtualClock } from '@proxyless/core/testing';
import { describe, expect, it } from 'vitest';
import { allResolved, createEventRing, describeEvent, serviceView } from './views.js';

describe('createEventRing', () => {
  it('keeps the most recent events, oldest first, in words', async () => {
    const clock = new VirtualClock();
    const ring = createEventRing(3, clock);
    ring.push({ type: 'config_applied', version: 1 });
    for (let i = 0; i < 3; i++) {
      await clock.advance(1000);
      ring.push({
        type: 'balancer',
        service: 'payments',
        event: { type: 'eject', endpoint: `10.0.0.${i}:80`, reason: 'consecutive_5xx', durationMs: 30_000 },
      });
    }
    const list = ring.list();
    expect(list.map((e) => e.detail)).toEqual([
      'eject 10.0.0.0:80 (consecutive_5xx, 30000 ms)',
      'eject 10.0.0.1:80 (consecutive_5xx, 30000 ms)',
      'eject 10.0.0.2:80 (consecutive_5xx, 30000 ms)',
    ]);
    expect(list[0]).toMatchObject({ type: 'eject', service: 'payments' });
    expect(Date.parse(list[2]!.time) - Date.parse(list[0]!.time)).toBe(2000);
  });

  it('describes every kind of event', () => {
    const ring = createEventRing(10, new VirtualClock());
    ring.push({ type: 'config_rejected', error: { code: 'MESH_CONFIG_INVALID', message: 'bad' } });
    ring.push({
      type: 'resolver_error',
      service: 's',
      error: { code: 'MESH_REGISTRY_UNAVAILABLE', message: 'down' },
    });
    ring.push({
      type: 'endpoints_changed',
      service: 's',
      set: { version: 3, source: 'consul', endpoints: [], updatedAt: 0, stale: true },
    });
    ring.push({ type: 'circuit_breaker', service: 's', state: 'half-open' });
    ring.push({
      type: 'balancer',
      service: 's',
      event: { type: 'health_check', endpoint: 'e:1', healthy: false },
    });
    ring.push({ type: 'service_removed', service: 's' });
    expect(ring.list().map((e) => e.detail)).toEqual([
      'MESH_CONFIG_INVALID: bad',
      'MESH_REGISTRY_UNAVAILABLE: down',
      '0 endpoints from consul (v3), stale',
      'circuit half-open',
      'health_check e:1 (unhealthy)',
      'destination removed',
    ]);
  });
});

describe('serviceView', () => {
  const set = {
    version: 4,
    source: 'consul',
    updatedAt: 1000,
    stale: true,
    staleSince: 2000,
    endpoints: [{ id: 'a', address: '10.0.0.1', port: 80, health: 'passing' as const }],
  };

  it('marks an endpoint unreachable from a failed connect until a connection succeeds, a reconnect attempt included', () => {
    const endpoint = (connectivity: string, reachable: boolean) => ({
      id: 'a',
      address: '10.0.0.1',
      port: 80,
      health: 'passing' as const,
      checkHealthy: true,
      connectivity,
      reachable,
      ejected: false,
    });
    const view = (connectivity: string, reachable: boolean) =>
      serviceView('payments', {
        set,
        now: 0,
        stats: { policy: 'round_robin', panic: false, endpoints: [endpoint(connectivity, reachable)] },
      }).endpoints[0];
    expect(view('TRANSIENT_FAILURE', false)?.unreachable).toBe(true);
    // The reconnect attempt: CONNECTING, still out of picking.
    expect(view('CONNECTING', false)?.unreachable).toBe(true);
    expect(view('CONNECTING', true)?.unreachable).toBeUndefined();
    expect(view('READY', true)?.unreachable).toBeUndefined();
  });

  it('takes the balancer figures when there are some, with breaker, panic, staleness and pools', () => {
    const view = serviceView('payments', {
      set,
      now: 47_000,
      connections: (id) => (id === 'a' ? 3 : undefined),
      stats: {
        policy: 'peak_ewma',
        panic: false,
        circuitBreaker: 'open',
        endpoints: [
          {
            id: 'a',
            address: '10.0.0.1',
            port: 80,
            zone: undefined,
            weight: 1,
            health: 'passing',
            checkHealthy: true,
            inflight: 2,
            ewmaMs: 12.5,
            ejected: false,
            requests: 10,
            failures: 1,
          },
          {
            id: 'b',
            address: '10.0.0.2',
            port: 80,
            zone: 'z1',
            weight: 1,
            health: 'passing',
            checkHealthy: false,
            inflight: 0,
            ewmaMs: undefined,
            ejected: true,
            requests: 5,
            failures: 5,
          },
        ],
      },
    });
    expect(view).toEqual({
      name: 'payments',
      resolved: true,
      stale: true,
      staleForMs: 45_000,
      source: 'consul',
      version: 4,
      policy: 'peak_ewma',
      panic: false,
      circuitBreaker: 'open',
      endpoints: [
        {
          id: 'a',
          address: '10.0.0.1',
          port: 80,
          health: 'passing',
          ejected: false,
          weight: 1,
          inFlight: 2,
          ewmaMs: 12.5,
          requests: 10,
          failures: 1,
          connections: 3,
        },
        {
          id: 'b',
          address: '10.0.0.2',
          port: 80,
          health: 'critical',
          ejected: true,
          weight: 1,
          zone: 'z1',
          inFlight: 0,
          requests: 5,
          failures: 5,
        },
      ],
    });
  });

  it("shows each endpoint's priority level and the levels' shares of calls", () => {
    const ep = (id: string, priority: number) => ({
      id,
      address: '10.0.0.1',
      port: 80,
      priority,
      health: 'passing' as const,
      ejected: false,
    });
    const view = serviceView('payments', {
      set,
      now: 0,
      stats: {
        priorities: [
          { priority: 0, load: 70 },
          { priority: 1, load: 30 },
        ],
        endpoints: [ep('a', 0), ep('b', 1)],
      },
    });
    expect(view.priorities).toEqual([
      { priority: 0, load: 70 },
      { priority: 1, load: 30 },
    ]);
    expect(view.endpoints.map((e) => e.priority)).toEqual([undefined, 1]);
  });

  it('falls back to the endpoint set, and is not resolved before one arrives', () => {
    const fresh = serviceView('inventory', { set: { ...set, stale: false }, now: 0 });
    expect(fresh.endpoints).toEqual([
      { id: 'a', address: '10.0.0.1', port: 80, health: 'passing', ejected: false },
    ]);
    expect(fresh.staleForMs).toBeUndefined();
    const pending = serviceView('orders', { now: 0 });
    expect(pending).toEqual({ name: 'orders', resolved: false, stale: false, endpoints: [] });
    expect(allResolved([fresh])).toBe(true);
    expect(allResolved([fresh, pending])).toBe(false);
  });
});

describe('describeEvent', () => {
  // `/events` showed a connectivity event as "connectivity 127.0.0.1:8080": a failure and a
  // recovery looked the same (probe8 admin defect 4).
  it('says from which state to which a connectivity event went, and its error', () => {
    const view = (to: string, from: string, error?: string) =>
      describeEvent(
        {
          type: 'balancer',
          service: 'api',
          event: { type: 'connectivity', endpoint: '127.0.0.1:8080', from, to, ...(error ? { error } : {}) },
        },
        't',
      ).detail;
    expect(view('TRANSIENT_FAILURE', 'CONNECTING', 'ECONNREFUSED')).toBe(
      'connectivity 127.0.0.1:8080 CONNECTING → TRANSIENT_FAILURE (ECONNREFUSED)',
    );
    expect(view('READY', 'TRANSIENT_FAILURE')).toBe('connectivity 127.0.0.1:8080 TRANSIENT_FAILURE → READY');
  });
});
