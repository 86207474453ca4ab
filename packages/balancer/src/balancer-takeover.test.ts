import { createEndpointSet, type Endpoint, noopLogger } from '@proxyless/core';
import { seededRandom, testContext, testEndpoints, VirtualClock } from '@proxyless/core/testing';
import { describe, expect, it } from 'vitest';
import { type BalancerEvent, createBalancer, type ObservableBalancer } from './balancer.js';
import { type BalancerPatch, resolveBalancerConfig } from './config.js';

/** A balancer built with `previous` (a config change) starts from what the previous one knew. */

const set = (endpoints: readonly Endpoint[]) =>
  createEndpointSet({ service: 'api', version: 1, endpoints, source: 'static', updatedAt: 0 });

function build(clock: VirtualClock, patch: BalancerPatch, previous?: ObservableBalancer) {
  const b = createBalancer(
    resolveBalancerConfig(patch),
    { service: 'api', clock, random: seededRandom(1), logger: noopLogger },
    previous,
  );
  const events: BalancerEvent[] = [];
  b.onEvent((e) => events.push(e));
  return { b, events };
}

function fail(b: ObservableBalancer, e: Endpoint, n: number): void {
  for (let i = 0; i < n; i++) {
    b.onAttemptStart(e);
    b.onAttemptEnd(e, { status: 503, latencyMs: 40 });
  }
}

const OD = { outlierDetection: { consecutive5xx: 2, baseEjectionTime: 1000, interval: 10_000 } };

describe('createBalancer(config, deps, previous)', () => {
  it('an ejection whose time ran out meanwhile ends at the next timer, with its readmit event', async () => {
    const clock = new VirtualClock();
    const eps = testEndpoints(4);
    const old = build(clock, OD).b;
    old.update(set(eps));
    fail(old, eps[0]!, 2);
    // The old balancer's readmission timer is due but has not fired when the new one is built.
    await clock.advance(999);
    const { b, events } = build(clock, { ...OD, loadBalancer: { policy: 'random' } }, old);
    old.close();
    b.update(set(eps));
    expect(b.stats().endpoints[0]).toMatchObject({ ejected: true, ejections: 1, requests: 2, failures: 2 });
    expect(b.stats().endpoints[0]?.ewmaMs).toBeGreaterThan(0);
    await clock.advance(1);
    expect(b.stats().endpoints[0]?.ejected).toBe(false);
    expect(events.filter((e) => e.type === 'readmit')).toEqual([
      { type: 'readmit', service: 'api', endpoint: eps[0]!.id },
    ]);
    // Calls in flight on the old balancer report there: the new one counts only its own.
    expect(b.stats().endpoints.every((e) => e.inflight === 0)).toBe(true);
    b.close();
  });

  it('counts the outcomes of attempts in flight across the change in the new one (probe31 sources 2)', () => {
    const clock = new VirtualClock();
    const eps = testEndpoints(4);
    const old = build(clock, OD).b;
    old.update(set(eps));
    // Two slow attempts to one endpoint are in flight when a config change rebuilds the balancer.
    const tokens = [old.onAttemptStart(eps[0]!), old.onAttemptStart(eps[0]!)];
    const { b, events } = build(clock, { ...OD, loadBalancer: { policy: 'random' } }, old);
    old.close();
    b.update(set(eps));
    for (const token of tokens) old.onAttemptEnd(eps[0]!, { status: 503, latencyMs: 500 }, token);
    // Their 503s reach the endpoint's counters where they live now: ejected at consecutive5xx 2.
    expect(b.stats().endpoints[0]).toMatchObject({ requests: 2, failures: 2, ejected: true, inflight: 0 });
    expect(b.stats().endpoints[0]?.ewmaMs).toBeGreaterThan(0);
    expect(events.filter((e) => e.type === 'eject').map((e) => 'endpoint' in e && e.endpoint)).toEqual([
      eps[0]!.id,
    ]);
    // A third balancer later: an attempt from the first still reports to the one in force.
    const third = build(clock, OD, b).b;
    b.close();
    third.update(set(eps));
    const t = old.onAttemptStart(eps[1]!);
    old.onAttemptEnd(eps[1]!, { status: 200, latencyMs: 5 }, t);
    expect(third.stats().endpoints[1]).toMatchObject({ requests: 1, failures: 0 });
    third.close();
  });

  it('with outlier detection off, the ejected are readmitted at the first update, once', async () => {
    const clock = new VirtualClock();
    const eps = testEndpoints(4);
    const old = build(clock, OD).b;
    old.update(set(eps));
    fail(old, eps[1]!, 2);
    const { b, events } = build(clock, { outlierDetection: { enabled: false } }, old);
    old.close();
    expect(events).toEqual([]);
    b.update(set(eps));
    b.update(set(eps));
    expect(b.stats().endpoints[1]).toMatchObject({ ejected: false, ejections: 1 });
    expect(events.filter((e) => e.type === 'readmit')).toEqual([
      { type: 'readmit', service: 'api', endpoint: eps[1]!.id },
    ]);
    // No timer of the old ejection is left to fire.
    await clock.advance(5_000);
    expect(events.filter((e) => e.type === 'readmit')).toHaveLength(1);
    b.close();
  });

  it('ring_hash: a rebuild for another section moves no key, after membership changed', () => {
    const clock = new VirtualClock();
    const eps = testEndpoints(8);
    const lb: BalancerPatch = { loadBalancer: { policy: 'ring_hash', hashOn: { header: 'x-k' } } };
    const old = build(clock, lb).b;
    old.update(set(eps.slice(0, 4)));
    // A ring built after the set changed, then rebuilt for another section: the same ring.
    old.update(set(eps.slice(0, 6)));
    const keys = Array.from({ length: 500 }, (_, i) => `k${i}`);
    const pick = (b: ObservableBalancer, k: string): string =>
      b.pick(testContext({ request: { method: 'GET', path: '/', headers: { 'x-k': k } } })).id;
    const before = keys.map((k) => pick(old, k));
    const rebuilt = build(clock, { ...lb, outlierDetection: { consecutive5xx: 3 } }, old).b;
    old.close();
    rebuilt.update(set(eps.slice(0, 6)));
    expect(keys.map((k) => pick(rebuilt, k))).toEqual(before);
    rebuilt.close();
  });
});
