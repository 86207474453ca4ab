import { createEndpoint, createEndpointSet, Issues, noopLogger, seededRandom } from '@proxyless/core';
import { VirtualClock } from '@proxyless/core/testing';
import { describe, expect, it } from 'vitest';
import type { EffectiveConfig } from './config/effective.js';
import type { ServiceOptions } from './config/schema.js';
import { envConfigSource, optionsConfigSource } from './config/source.js';
import { ConfigStore } from './config/store.js';
import { buildPolicy, buildRoutePolicy } from './policy.js';

function configOf(api: ServiceOptions): EffectiveConfig {
  const issues = new Issues();
  const services = { api } as unknown as Record<string, Record<string, unknown>>;
  const store = new ConfigStore(
    optionsConfigSource({ services }).current(),
    envConfigSource({}).current(),
    issues,
  );
  issues.throwIfAny('test');
  return store.effective('api');
}

const deps = (clock: VirtualClock) => ({ clock, random: seededRandom(7), logger: noopLogger });

const base: ServiceOptions = {
  retry: { maxRetries: 2 },
  circuitBreaker: { volumeThreshold: 5 },
  loadBalancer: { policy: 'peak_ewma' },
  outlierDetection: { consecutive5xx: 3 },
};

const set = createEndpointSet({
  service: 'api',
  version: 1,
  endpoints: [
    createEndpoint({ address: '10.0.0.1', port: 80 }),
    createEndpoint({ address: '10.0.0.2', port: 80 }),
  ],
  source: 'static',
  updatedAt: 0,
});

describe('buildPolicy over the policy in force: diff before build (#10)', () => {
  it('an unchanged config builds nothing: same balancer, same stages, no timer armed', () => {
    const clock = new VirtualClock();
    const first = buildPolicy('api', configOf(base), deps(clock));
    expect(first.rebuilt).toEqual(expect.arrayContaining(['balancer', 'retry', 'circuitBreaker']));
    const timers = clock.pendingTimers;
    const again = buildPolicy('api', configOf(base), deps(clock), first);
    expect(again.rebuilt).toEqual([]);
    expect(again.balancer).toBe(first.balancer);
    expect(again.filters).toEqual(first.filters);
    expect(clock.pendingTimers).toBe(timers);
    first.retire(again);
    expect(clock.pendingTimers).toBe(timers);
    again.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('a retry change keeps the balancer with its endpoints, counts and ejections', () => {
    const clock = new VirtualClock();
    const first = buildPolicy('api', configOf(base), deps(clock));
    first.balancer.update(set);
    // Three failures eject the first endpoint (consecutive5xx: 3).
    const bad = set.endpoints[0] as (typeof set.endpoints)[number];
    for (let i = 0; i < 3; i++) {
      first.balancer.onAttemptStart(bad);
      first.balancer.onAttemptEnd(bad, { status: 503, latencyMs: 5 });
    }
    const before = first.balancer.stats();
    expect(before.endpoints.find((e) => e.id === bad.id)?.ejected).toBe(true);
    const next = buildPolicy('api', configOf({ ...base, retry: { maxRetries: 4 } }), deps(clock), first);
    expect(next.rebuilt).toEqual(['retry']);
    expect(next.balancer).toBe(first.balancer);
    expect(next.balancer.stats()).toEqual(before);
    first.retire(next);
    expect(next.balancer.stats()).toEqual(before); // not closed by the retirement
    next.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('a load-balancer change builds only the balancer; every stage is kept', () => {
    const clock = new VirtualClock();
    const first = buildPolicy('api', configOf(base), deps(clock));
    const next = buildPolicy(
      'api',
      configOf({ ...base, loadBalancer: { policy: 'round_robin' } }),
      deps(clock),
      first,
    );
    expect(next.rebuilt).toEqual(['balancer']);
    expect(next.balancer).not.toBe(first.balancer);
    expect(next.filters).toEqual(first.filters);
    next.filters.forEach((f, i) => {
      expect(f).toBe(first.filters[i]);
    });
    first.retire(next);
    next.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('maxConnections changes the policy key but builds no stage', () => {
    const clock = new VirtualClock();
    const first = buildPolicy('api', configOf(base), deps(clock));
    const next = buildPolicy(
      'api',
      configOf({ ...base, circuitBreaker: { volumeThreshold: 5, maxConnections: 10 } }),
      deps(clock),
      first,
    );
    expect(next.rebuilt).toEqual([]);
    expect(next.key).not.toBe(first.key);
    expect(next.maxConnections).toBe(10);
    first.retire(next);
    next.close();
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('buildRoutePolicy: a route’s settings over a destination’s policy', () => {
  it('builds the route’s deadline and retry; shares the breaker, limits and budget', () => {
    const clock = new VirtualClock();
    const withLimits: ServiceOptions = { ...base, concurrencyLimit: { max: 10 }, hedge: { delay: 50 } };
    const policy = buildPolicy('api', configOf(withLimits), deps(clock));
    const timers = clock.pendingTimers;
    const route = buildRoutePolicy(
      'api',
      configOf({ ...withLimits, timeout: 2000, retry: { maxRetries: 4 } }),
      deps(clock),
      policy,
    );
    expect(route.roles).toEqual(policy.roles);
    const stage = (p: { roles: readonly string[]; filters: readonly unknown[] }, role: string) =>
      p.filters[p.roles.indexOf(role)];
    for (const role of ['concurrencyLimit', 'hedge', 'circuitBreaker', 'perTryTimeout'])
      expect(stage(route, role), role).toBe(stage(policy, role));
    for (const role of ['deadline', 'retry']) expect(stage(route, role), role).not.toBe(stage(policy, role));
    // Nothing armed for the route, nothing of the destination's released with it.
    expect(clock.pendingTimers).toBe(timers);
    route.close();
    expect(clock.pendingTimers).toBe(timers);
    expect(policy.circuitBreakerState()).toBe('closed');
    policy.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('refuses a route config that differs in more than its timeout and retry settings', () => {
    const clock = new VirtualClock();
    const policy = buildPolicy('api', configOf(base), deps(clock));
    expect(() =>
      buildRoutePolicy(
        'api',
        configOf({ ...base, circuitBreaker: { volumeThreshold: 9 } }),
        deps(clock),
        policy,
      ),
    ).toThrow(/sets more than its timeout and retry settings/);
    policy.close();
  });
});
