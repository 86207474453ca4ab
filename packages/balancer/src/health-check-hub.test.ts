import { createEndpointSet, type Endpoint, noopLogger } from '@proxyless/core';
import { seededRandom, testEndpoints, VirtualClock } from '@proxyless/core/testing';
import { describe, expect, it } from 'vitest';
import { type BalancerEvent, createBalancer } from './balancer.js';
import { type BalancerPatch, resolveBalancerConfig } from './config.js';
import type { HealthProbe } from './health-check.js';
import { HealthCheckHub } from './health-check-hub.js';

const hc = { path: '/healthz', interval: 1000, timeout: 200, healthyThreshold: 1, unhealthyThreshold: 1 };

function setup() {
  const clock = new VirtualClock();
  const answers = new Map<string, boolean>();
  const calls: string[] = [];
  const probe: HealthProbe = (endpoint) => {
    calls.push(endpoint.id);
    return Promise.resolve(answers.get(endpoint.id) ?? true);
  };
  const hub = new HealthCheckHub({ clock, random: seededRandom(1), logger: noopLogger });
  const balancer = (endpoints: readonly Endpoint[], patch: BalancerPatch = {}) => {
    const b = createBalancer(
      resolveBalancerConfig({ outlierDetection: { enabled: false }, healthCheck: hc, ...patch }),
      { service: 'api', clock, random: seededRandom(2), logger: noopLogger, probe, healthChecks: hub },
    );
    const events: BalancerEvent[] = [];
    b.onEvent((e) => events.push(e));
    b.update(createEndpointSet({ service: 'api', version: 1, endpoints, source: 'static', updatedAt: 0 }));
    return { b, events };
  };
  return { clock, answers, calls, hub, balancer };
}

describe('HealthCheckHub: one checker per service and config, shared by its balancers', () => {
  it('probes an endpoint once per interval however many balancers use it', async () => {
    const { clock, calls, hub, balancer } = setup();
    const eps = testEndpoints(3);
    // The service's own destination (all endpoints) and a subset's (two of them).
    const all = balancer(eps);
    const subset = balancer(eps.slice(0, 2));
    await clock.advance(0);
    expect([...calls].sort()).toEqual(eps.map((e) => e.id).sort());
    await clock.advance(3000);
    // 3 endpoints × (1 + 3 intervals); two checkers of their own made 20.
    expect(calls).toHaveLength(12);
    expect(hub.size).toBe(1);
    all.b.close();
    subset.b.close();
    expect(hub.size).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('tells every balancer over an endpoint when its verdict flips, and a late one reads it', async () => {
    const { clock, answers, balancer } = setup();
    const eps = testEndpoints(2);
    const a = balancer(eps);
    const b = balancer(eps.slice(0, 1));
    answers.set(eps[0]!.id, false);
    await clock.advance(0);
    for (const x of [a, b]) {
      expect(x.events.filter((e) => e.type === 'health_check')).toEqual([
        { type: 'health_check', service: 'api', endpoint: eps[0]!.id, healthy: false },
      ]);
      expect(x.b.stats().endpoints[0]!.checkHealthy).toBe(false);
    }
    // A balancer built later (a routing target, or a rebuild for another loadBalancer policy)
    // starts from the verdict, not from "healthy".
    const late = balancer(eps, { loadBalancer: { policy: 'random' } });
    expect(late.b.stats().endpoints.map((e) => e.checkHealthy)).toEqual([false, true]);
    for (const x of [a, b, late]) x.b.close();
  });

  it('stops probing an endpoint when the last balancer that tracks it drops it', async () => {
    const { clock, calls, balancer } = setup();
    const eps = testEndpoints(2);
    const a = balancer(eps);
    const b = balancer(eps.slice(0, 1));
    await clock.advance(0);
    a.b.update(
      createEndpointSet({
        service: 'api',
        version: 2,
        endpoints: eps.slice(0, 1),
        source: 'static',
        updatedAt: 0,
      }),
    );
    calls.length = 0;
    await clock.advance(1000);
    expect(calls).toEqual([eps[0]!.id]);
    a.b.close();
    calls.length = 0;
    await clock.advance(1000);
    // Still probed for the other balancer.
    expect(calls).toEqual([eps[0]!.id]);
    b.b.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('a checker for changed settings starts from the verdicts of the one it replaces', async () => {
    const { clock, answers, balancer, hub } = setup();
    const eps = testEndpoints(3);
    answers.set(eps[0]!.id, false);
    const before = balancer(eps);
    await clock.advance(0);
    expect(before.b.stats().endpoints.map((e) => e.checkHealthy)).toEqual([false, true, true]);
    // A config change (only `jitter`): the destination builds a new balancer, then retires the old.
    const after = balancer(eps, { healthCheck: { ...hc, jitter: 1 } });
    before.b.close();
    expect(hub.size).toBe(1);
    // Before: every endpoint healthy again until `unhealthyThreshold` probes failed.
    expect(after.b.stats().endpoints.map((e) => e.checkHealthy)).toEqual([false, true, true]);
    answers.set(eps[0]!.id, true);
    await clock.advance(1001);
    expect(after.b.stats().endpoints.map((e) => e.checkHealthy)).toEqual([true, true, true]);
    after.b.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('keeps separate checkers for different health-check settings', async () => {
    const { clock, calls, hub, balancer } = setup();
    const eps = testEndpoints(1);
    const a = balancer(eps);
    const b = balancer(eps, { healthCheck: { ...hc, path: '/ready' } });
    await clock.advance(0);
    expect(hub.size).toBe(2);
    expect(calls).toHaveLength(2);
    a.b.close();
    b.b.close();
  });
});
