import { createEndpointSet, type Endpoint, noopLogger } from '@proxyless/core';
import { seededRandom, testContext, testEndpoints, VirtualClock } from '@proxyless/core/testing';
import { describe, expect, it } from 'vitest';
import { type BalancerEvent, createBalancer } from './balancer.js';
import { type BalancerPatch, resolveBalancerConfig } from './config.js';
import type { HealthProbe } from './health-check.js';

function setOf(endpoints: readonly Endpoint[], version = 1) {
  return createEndpointSet({ service: 'api', version, endpoints, source: 'static', updatedAt: 0 });
}

/** A probe whose answer per endpoint the test sets; counts calls and records aborts. */
function scriptedProbe() {
  const answers = new Map<string, boolean | 'hang' | 'throw'>();
  const calls: string[] = [];
  let aborted = 0;
  const probe: HealthProbe = (endpoint, path, signal) => {
    calls.push(`${endpoint.id}${path}`);
    const a = answers.get(endpoint.id) ?? true;
    if (a === 'throw') return Promise.reject(new Error('refused'));
    if (a === 'hang')
      return new Promise((_, reject) => {
        signal.addEventListener('abort', () => {
          aborted++;
          reject(new Error('aborted'));
        });
      });
    return Promise.resolve(a);
  };
  return { probe, answers, calls, aborts: () => aborted };
}

function make(patch: BalancerPatch, endpoints: readonly Endpoint[]) {
  const clock = new VirtualClock();
  const p = scriptedProbe();
  const b = createBalancer(resolveBalancerConfig({ outlierDetection: { enabled: false }, ...patch }), {
    service: 'api',
    clock,
    random: seededRandom(5),
    logger: noopLogger,
    probe: p.probe,
  });
  const events: BalancerEvent[] = [];
  b.onEvent((e) => events.push(e));
  b.update(setOf(endpoints));
  return { b, clock, events, ...p };
}

const hc = { path: '/healthz', interval: 1000, timeout: 200, healthyThreshold: 2, unhealthyThreshold: 3 };

describe('active health checks', () => {
  it('probes each endpoint at once and then every interval', async () => {
    const eps = testEndpoints(2);
    const { calls, clock, b } = make({ healthCheck: hc }, eps);
    await clock.advance(0);
    expect(calls).toEqual([`${eps[0]!.id}/healthz`, `${eps[1]!.id}/healthz`]);
    await clock.advance(1000);
    expect(calls).toHaveLength(4);
    await clock.advance(3000);
    expect(calls).toHaveLength(10);
    b.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('marks unhealthy after unhealthyThreshold failures and healthy after healthyThreshold passes', async () => {
    const eps = testEndpoints(3);
    const { answers, clock, b, events } = make({ healthCheck: hc }, eps);
    answers.set(eps[0]!.id, false);
    await clock.advance(0);
    await clock.advance(1000);
    expect(b.stats().endpoints[0]!.checkHealthy).toBe(true);
    await clock.advance(1000);
    expect(b.stats().endpoints[0]!.checkHealthy).toBe(false);
    expect(events).toEqual([{ type: 'health_check', service: 'api', endpoint: eps[0]!.id, healthy: false }]);
    for (let i = 0; i < 50; i++) expect(b.pick(testContext())).not.toBe(eps[0]);
    answers.set(eps[0]!.id, true);
    await clock.advance(1000);
    expect(b.stats().endpoints[0]!.checkHealthy).toBe(false);
    await clock.advance(1000);
    expect(b.stats().endpoints[0]!.checkHealthy).toBe(true);
    expect(events.at(-1)).toMatchObject({ healthy: true });
    b.close();
  });

  it('counts timeouts and rejections as failures and aborts hung probes', async () => {
    const eps = testEndpoints(2);
    const { answers, clock, b, aborts } = make({ healthCheck: { ...hc, unhealthyThreshold: 2 } }, eps);
    answers.set(eps[0]!.id, 'hang');
    answers.set(eps[1]!.id, 'throw');
    await clock.advance(0);
    await clock.advance(200);
    expect(aborts()).toBe(1);
    // The next probe starts at 1200 and times out at 1400.
    await clock.advance(1200);
    expect(aborts()).toBe(2);
    expect(b.stats().endpoints.map((e) => e.checkHealthy)).toEqual([false, false]);
    // Both unusable: panic mode still answers.
    expect(b.stats().panic).toBe(true);
    b.close();
  });

  it('adds jitter to the interval', async () => {
    const eps = testEndpoints(1);
    const { calls, clock, b } = make({ healthCheck: { ...hc, jitter: 500 } }, eps);
    await clock.advance(0);
    await clock.advance(999);
    expect(calls).toHaveLength(1);
    await clock.advance(501);
    expect(calls).toHaveLength(2);
    b.close();
  });

  it('stops probing removed endpoints and starts on added ones', async () => {
    const eps = testEndpoints(3);
    const { calls, clock, b } = make({ healthCheck: hc }, eps.slice(0, 2));
    await clock.advance(0);
    b.update(setOf([eps[1]!, eps[2]!], 2));
    await clock.advance(1000);
    expect(calls.filter((c) => c.startsWith(eps[2]!.id)).length).toBeGreaterThanOrEqual(1);
    expect(calls.filter((c) => c.startsWith(eps[1]!.id))).toHaveLength(2);
    expect(calls.filter((c) => c.startsWith(eps[0]!.id))).toHaveLength(1);
    b.close();
  });

  it('runs no probes without healthCheck config', async () => {
    const { calls, clock } = make({}, testEndpoints(2));
    await clock.advance(60_000);
    expect(calls).toEqual([]);
  });
});
