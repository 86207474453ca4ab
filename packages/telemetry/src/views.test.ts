import { VirtualClock } from '@proxyless/core/testing';
import { describe, expect, it } from 'vitest';
import { createEventRing } from './views.js';

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
