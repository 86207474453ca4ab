import {
  type CallContext,
  createEndpoint,
  createEndpointSet,
  type Endpoint,
  MeshError,
  noopLogger,
} from '@proxyless/core';
import { seededRandom, testContext, testEndpoints, VirtualClock } from '@proxyless/core/testing';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createBalancer } from './balancer.js';
import {
  type BalancerPatch,
  LOAD_BALANCER_POLICIES,
  type LoadBalancerPolicy,
  resolveBalancerConfig,
} from './config.js';

function setOf(endpoints: readonly Endpoint[], version = 1) {
  return createEndpointSet({ service: 'api', version, endpoints, source: 'static', updatedAt: 0 });
}

function make(patch: BalancerPatch, endpoints: readonly Endpoint[], seed = 7) {
  const clock = new VirtualClock();
  const b = createBalancer(resolveBalancerConfig(patch), {
    service: 'api',
    clock,
    random: seededRandom(seed),
    logger: noopLogger,
  });
  b.update(setOf(endpoints));
  return { b, clock };
}

const ctx = testContext();
function ctxWithKey(key: string): CallContext {
  return testContext({ attributes: new Map([['hashKey', key]]) });
}

let seq = 0;
function counts(pick: () => Endpoint, n: number): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const e = pick();
    m.set(e.id, (m.get(e.id) ?? 0) + 1);
  }
  return m;
}

describe('every picker', () => {
  for (const policy of LOAD_BALANCER_POLICIES) {
    describe(policy, () => {
      it('throws MESH_NO_ENDPOINTS naming the service on an empty set', () => {
        const { b } = make({ loadBalancer: { policy } }, []);
        let error: unknown;
        try {
          b.pick(ctx);
        } catch (e) {
          error = e;
        }
        expect(MeshError.is(error, 'MESH_NO_ENDPOINTS')).toBe(true);
        expect((error as MeshError).message).toContain('"api"');
        expect((error as MeshError).details.service).toBe('api');
      });

      it('throws MESH_NO_ENDPOINTS before any update', () => {
        const b = createBalancer(resolveBalancerConfig({ loadBalancer: { policy } }), {
          service: 'api',
          clock: new VirtualClock(),
          random: seededRandom(1),
          logger: noopLogger,
        });
        expect(() => b.pick(ctx)).toThrowError(expect.objectContaining({ code: 'MESH_NO_ENDPOINTS' }));
      });

      it('works with one endpoint, even when it is excluded', () => {
        const [e] = testEndpoints(1);
        const { b } = make({ loadBalancer: { policy } }, [e!]);
        for (let i = 0; i < 20; i++) expect(b.pick(ctx)).toBe(e);
        expect(b.pick(testContext({ excludeEndpoints: new Set([e!.id]) }))).toBe(e);
      });

      it('avoids excluded endpoints when another is usable', () => {
        const eps = testEndpoints(3);
        const { b } = make({ loadBalancer: { policy } }, eps);
        const exclude = new Set([eps[0]!.id, eps[1]!.id]);
        for (let i = 0; i < 50; i++) {
          const c =
            i % 2 === 0
              ? testContext({ excludeEndpoints: exclude })
              : { ...ctxWithKey(`k${i}`), excludeEndpoints: exclude };
          expect(b.pick(c)).toBe(eps[2]);
        }
      });

      it('never picks a critical endpoint while others are healthy', () => {
        const eps = testEndpoints(4).map((e, i) =>
          i === 1 ? createEndpoint({ ...e, health: 'critical' }) : e,
        );
        const { b } = make({ loadBalancer: { policy } }, eps);
        for (let i = 0; i < 200; i++) expect(b.pick(ctxWithKey(`k${i}`)).id).not.toBe(eps[1]!.id);
      });

      it('uses warning endpoints', () => {
        const eps = testEndpoints(2).map((e) => createEndpoint({ ...e, health: 'warning' }));
        const { b } = make({ loadBalancer: { policy } }, eps);
        expect(eps).toContain(b.pick(ctxWithKey('x')));
      });

      it('throws MESH_NO_ENDPOINTS when nothing is usable and panic is off', () => {
        const eps = testEndpoints(2).map((e) => createEndpoint({ ...e, health: 'critical' }));
        const { b } = make({ loadBalancer: { policy, panicThreshold: 0 } }, eps);
        expect(() => b.pick(ctx)).toThrowError(/no usable endpoints/);
      });
    });
  }
});

describe('determinism', () => {
  it('the same seed gives the same picks', () => {
    for (const policy of LOAD_BALANCER_POLICIES) {
      const eps = testEndpoints(20);
      const a = make({ loadBalancer: { policy } }, eps, 11).b;
      const b = make({ loadBalancer: { policy } }, eps, 11).b;
      const seqA = Array.from({ length: 50 }, () => a.pick(ctx).id);
      const seqB = Array.from({ length: 50 }, () => b.pick(ctx).id);
      expect(seqA).toEqual(seqB);
    }
  });
});

describe('round_robin and random', () => {
  it('round_robin cycles evenly', () => {
    const eps = testEndpoints(4);
    const { b } = make({ loadBalancer: { policy: 'round_robin' } }, eps);
    const c = counts(() => b.pick(ctx), 400);
    for (const e of eps) expect(c.get(e.id)).toBe(100);
  });

  it("round_robin with weights that differ is weighted, as Envoy's ROUND_ROBIN (Consul Weights, SRV weights, =n)", () => {
    const eps = testEndpoints(2, { weight: (i) => (i === 0 ? 1 : 9) });
    const { b } = make({ loadBalancer: { policy: 'round_robin' } }, eps);
    const c = counts(() => b.pick(ctx), 1000);
    expect(c.get(eps[0]!.id)).toBe(100);
    expect(c.get(eps[1]!.id)).toBe(900);
    // A weight of 0 gets nothing, unless every weight is 0.
    const zero = testEndpoints(3, { weight: (i) => (i === 0 ? 0 : 2) });
    const z = make({ loadBalancer: { policy: 'round_robin' } }, zero).b;
    for (let i = 0; i < 50; i++) expect(z.pick(ctx).id).not.toBe(zero[0]!.id);
  });

  it('round_robin ramps a new endpoint under slow start (Envoy supports slow start for ROUND_ROBIN)', async () => {
    const { b, clock } = make(
      {
        loadBalancer: {
          policy: 'round_robin',
          slowStart: { window: 10_000, aggression: 1, minWeightPercent: 10 },
        },
      },
      testEndpoints(1),
    );
    b.update(setOf(testEndpoints(2), 2));
    await clock.advance(1000);
    const second = testEndpoints(2)[1]!.id;
    const early = (counts(() => b.pick(ctx), 1000).get(second) ?? 0) / 1000;
    await clock.advance(20_000);
    const late = (counts(() => b.pick(ctx), 1000).get(second) ?? 0) / 1000;
    expect(early).toBeLessThan(0.2);
    expect(late).toBeCloseTo(0.5, 1);
  });

  it('random spreads roughly evenly', () => {
    const eps = testEndpoints(4);
    const { b } = make({ loadBalancer: { policy: 'random' } }, eps);
    const c = counts(() => b.pick(ctx), 8000);
    for (const e of eps) expect(Math.abs((c.get(e.id) ?? 0) - 2000)).toBeLessThan(200);
  });
});

describe('weighted_round_robin', () => {
  it('converges to the weights (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 12 }),
        fc.integer(),
        (weights, seed) => {
          const eps = testEndpoints(weights.length, { weight: (i) => weights[i]! });
          const { b } = make({ loadBalancer: { policy: 'weighted_round_robin' } }, eps, seed);
          const total = weights.reduce((a, w) => a + w, 0);
          const rounds = 20;
          const c = counts(() => b.pick(ctx), total * rounds);
          eps.forEach((e, i) => {
            // EDF is exact up to one pick per endpoint from the random starting offsets.
            expect(Math.abs((c.get(e.id) ?? 0) - weights[i]! * rounds)).toBeLessThanOrEqual(1);
          });
        },
      ),
      { numRuns: 60 },
    );
  });

  it('interleaves instead of bursting (smooth)', () => {
    const eps = testEndpoints(3, { weight: (i) => (i === 0 ? 5 : 1) });
    const { b } = make({ loadBalancer: { policy: 'weighted_round_robin' } }, eps);
    for (let i = 0; i < 70; i++) b.pick(ctx);
    const seq = Array.from({ length: 70 }, () => b.pick(ctx).id);
    let run = 0;
    let maxRun = 0;
    for (let i = 0; i < seq.length; i++) {
      run = i > 0 && seq[i] === seq[i - 1] ? run + 1 : 1;
      maxRun = Math.max(maxRun, run);
    }
    expect(maxRun).toBeLessThanOrEqual(5);
  });

  it('skips weight 0 endpoints unless all are 0', () => {
    const eps = testEndpoints(3, { weight: (i) => (i === 0 ? 0 : 1) });
    const { b } = make({ loadBalancer: { policy: 'weighted_round_robin' } }, eps);
    for (let i = 0; i < 50; i++) expect(b.pick(ctx).id).not.toBe(eps[0]!.id);
    const zero = testEndpoints(2, { weight: () => 0 });
    const z = make({ loadBalancer: { policy: 'weighted_round_robin' } }, zero);
    const c = counts(() => z.b.pick(ctx), 100);
    expect(c.get(zero[0]!.id)).toBe(50);
  });
});

describe('least_request', () => {
  it('prefers endpoints with fewer requests in flight', () => {
    const eps = testEndpoints(3);
    const { b } = make({ loadBalancer: { policy: 'least_request' } }, eps);
    for (let i = 0; i < 10; i++) b.onAttemptStart(eps[0]!);
    const c = counts(() => b.pick(ctx), 300);
    expect(c.get(eps[0]!.id) ?? 0).toBe(0);
  });

  it('with choiceCount = n always picks the least loaded', () => {
    const eps = testEndpoints(4);
    const { b } = make({ loadBalancer: { policy: 'least_request', choiceCount: 50 } }, eps);
    b.onAttemptStart(eps[0]!);
    b.onAttemptStart(eps[1]!);
    b.onAttemptStart(eps[2]!);
    for (let i = 0; i < 20; i++) expect(b.pick(ctx)).toBe(eps[3]);
  });

  it('balances in-flight load when callers keep requests open', () => {
    const eps = testEndpoints(5);
    const { b } = make({ loadBalancer: { policy: 'least_request' } }, eps);
    for (let i = 0; i < 500; i++) b.onAttemptStart(b.pick(ctx));
    const inflight = b.stats().endpoints.map((e) => e.inflight);
    expect(Math.max(...inflight) - Math.min(...inflight)).toBeLessThanOrEqual(2);
  });
});

describe('peak_ewma', () => {
  it('sends far less to a slow endpoint', async () => {
    const eps = testEndpoints(3);
    const { b, clock } = make({ loadBalancer: { policy: 'peak_ewma' } }, eps);
    const latency = (e: Endpoint) => (e === eps[0] ? 100 : 10);
    for (const e of eps) {
      b.onAttemptStart(e);
      b.onAttemptEnd(e, { status: 200, latencyMs: latency(e) });
    }
    const c = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const e = b.pick(ctx);
      c.set(e.id, (c.get(e.id) ?? 0) + 1);
      b.onAttemptStart(e);
      b.onAttemptEnd(e, { status: 200, latencyMs: latency(e) });
      await clock.advance(1);
    }
    expect(c.get(eps[0]!.id) ?? 0).toBeLessThan(3000 * 0.1);
    expect(b.stats().endpoints[0]!.ewmaMs).toBeGreaterThan(20);
  });

  it('reacts to a latency spike at once (peak) and forgets it over the decay time', async () => {
    const eps = testEndpoints(1);
    const { b, clock } = make({ loadBalancer: { policy: 'peak_ewma', decayTime: 1000 } }, eps);
    b.onAttemptStart(eps[0]!);
    b.onAttemptEnd(eps[0]!, { status: 200, latencyMs: 10 });
    b.onAttemptStart(eps[0]!);
    b.onAttemptEnd(eps[0]!, { status: 200, latencyMs: 500 });
    expect(b.stats().endpoints[0]!.ewmaMs).toBe(500);
    await clock.advance(3000);
    expect(b.stats().endpoints[0]!.ewmaMs).toBeLessThan(500 * Math.exp(-2.9));
  });

  it('tries an endpoint never measured in time, at one call at a time (its defaultRtt decays, as Linkerd’s)', async () => {
    const eps = testEndpoints(4);
    const { b, clock } = make({ loadBalancer: { policy: 'peak_ewma' } }, eps);
    const added = testEndpoints(5)[4] as Endpoint;
    const c = new Map<string, number>();
    // 100 s of calls one after another, 5 ms each; a fifth endpoint joins after 10 s.
    for (let i = 0; i < 20_000; i++) {
      if (i === 2000) b.update(setOf([...eps, added], 2));
      const e = b.pick(ctx);
      c.set(e.id, (c.get(e.id) ?? 0) + 1);
      b.onAttemptStart(e);
      await clock.advance(5);
      b.onAttemptEnd(e, { status: 200, latencyMs: 5 });
    }
    for (const e of [...eps, added]) expect(c.get(e.id) ?? 0).toBeGreaterThan(500);
  });

  it('ignores cancelled attempts', () => {
    const eps = testEndpoints(1);
    const { b } = make({ loadBalancer: { policy: 'peak_ewma' } }, eps);
    b.onAttemptStart(eps[0]!);
    b.onAttemptEnd(eps[0]!, { failure: 'cancelled', latencyMs: 9999 });
    expect(b.stats().endpoints[0]).toMatchObject({ ewmaMs: undefined, requests: 0, inflight: 0 });
  });
});

/** Share of keys that change endpoint when one balancer moves from `before` to `after`. */
function keysMoved(policy: LoadBalancerPolicy, before: Endpoint[], after: Endpoint[], keys: number): number {
  const { b } = make({ loadBalancer: { policy } }, before);
  const ctxs = Array.from({ length: keys }, (_, k) => ctxWithKey(`user-${k}`));
  const first = ctxs.map((c) => b.pick(c).id);
  b.update(setOf(after, 2));
  let moved = 0;
  ctxs.forEach((c, k) => {
    if (b.pick(c).id !== first[k]) moved++;
  });
  return moved;
}

describe('ring_hash and maglev', () => {
  for (const policy of ['ring_hash', 'maglev'] as const) {
    describe(policy, () => {
      it('is sticky: the same key goes to the same endpoint', () => {
        const { b } = make({ loadBalancer: { policy } }, testEndpoints(10));
        for (let k = 0; k < 100; k++) {
          const first = b.pick(ctxWithKey(`k${k}`));
          expect(b.pick(ctxWithKey(`k${k}`))).toBe(first);
        }
      });

      it('spreads keys roughly evenly', () => {
        const eps = testEndpoints(5);
        const { b } = make({ loadBalancer: { policy } }, eps);
        const c = counts(() => b.pick(ctxWithKey(`key-${seq++}`)), 10_000);
        for (const e of eps) {
          const share = (c.get(e.id) ?? 0) / 10_000;
          expect(share).toBeGreaterThan(0.12);
          expect(share).toBeLessThan(0.3);
        }
      });

      // maglev moves about 1/n of the keys. ring_hash, sized as Envoy's (about minRingSize points
      // in all, from the current endpoints alone), moves the keys of the endpoint that came or
      // went and those of the points the others give up or gain: about 2/n.
      const share = policy === 'maglev' ? 1 : 2;
      it(`moves about ${share}/n keys when one endpoint is added or removed (property)`, () => {
        fc.assert(
          fc.property(fc.integer({ min: 3, max: 12 }), fc.boolean(), (n, add) => {
            const all = testEndpoints(n + 1);
            const base = all.slice(0, n);
            const keys = 2000;
            const moved = add ? keysMoved(policy, base, all, keys) : keysMoved(policy, all, base, keys);
            const ideal = (share * keys) / (n + 1);
            expect(moved).toBeLessThan(ideal * 1.4 + 30);
            expect(moved).toBeGreaterThan(ideal * 0.6 - 30);
          }),
          { numRuns: 15 },
        );
      });

      it('builds the same table from the same endpoints, whatever sets came before (every client agrees)', () => {
        const all = testEndpoints(9);
        const keys = Array.from({ length: 2000 }, (_, k) => ctxWithKey(`user-${k}`));
        // One client started with the nine endpoints; others saw the set grow, shrink, or lose and
        // regain endpoints first (weights too), as replicas of a fleet do.
        const fresh = make({ loadBalancer: { policy } }, all).b;
        const histories: Endpoint[][][] = [
          [all.slice(0, 4), all.slice(0, 6)],
          [all.slice(0, 2)],
          [[...all, ...testEndpoints(20).slice(9)]],
          [all.slice(3), all.map((e) => createEndpoint({ ...e, weight: 5 }))],
        ];
        for (const history of histories) {
          const { b } = make({ loadBalancer: { policy } }, history[0] as Endpoint[]);
          history.slice(1).forEach((eps, i) => {
            b.update(setOf(eps, i + 2));
          });
          b.update(setOf(all, history.length + 1));
          const differ = keys.filter((c) => b.pick(c).id !== fresh.pick(c).id).length;
          expect(differ).toBe(0);
        }
      });

      it('builds the same table from the same endpoints in any order (a registry lists them in varying orders)', () => {
        const all = testEndpoints(20).map((e, i) => createEndpoint({ ...e, weight: 1 + (i % 3) }));
        const keys = Array.from({ length: 5000 }, (_, k) => ctxWithKey(`user-${k}`));
        const fresh = make({ loadBalancer: { policy } }, all).b;
        const rotated = [...all.slice(7), ...all.slice(0, 7)];
        for (const order of [[...all].reverse(), rotated]) {
          const { b } = make({ loadBalancer: { policy } }, order);
          expect(keys.filter((c) => b.pick(c).id !== fresh.pick(c).id).length).toBe(0);
        }
      });

      it('hashes on a header, a cookie or the source, and picks randomly without a key', () => {
        const eps = testEndpoints(8);
        const h = make({ loadBalancer: { policy, hashOn: { header: 'x-user' } } }, eps).b;
        const withHeader = (v: string) => testContext({ request: { headers: { 'x-user': v } } });
        expect(h.pick(withHeader('alice'))).toBe(h.pick(withHeader('alice')));
        expect(h.pick(withHeader('alice'))).toBe(h.pick(ctxWithKey('alice')));

        const ck = make({ loadBalancer: { policy, hashOn: { cookie: 'sid' } } }, eps).b;
        const withCookie = (v: string) => testContext({ request: { headers: { cookie: v } } });
        expect(ck.pick(withCookie('a=1; sid=abc; b=2'))).toBe(ck.pick(ctxWithKey('abc')));
        expect(ck.pick(withCookie('sid="abc"'))).toBe(ck.pick(ctxWithKey('abc')));

        const src = make({ loadBalancer: { policy, hashOn: 'source' } }, eps).b;
        const fwd = testContext({ request: { headers: { 'x-forwarded-for': ' 10.1.1.1 , 10.0.0.1' } } });
        expect(src.pick(fwd)).toBe(src.pick(ctxWithKey('10.1.1.1')));
        const attr = testContext({ attributes: new Map([['sourceAddress', '10.1.1.1']]) });
        expect(src.pick(attr)).toBe(src.pick(ctxWithKey('10.1.1.1')));

        const none = counts(() => h.pick(ctx), 800);
        expect(none.size).toBeGreaterThan(4);
      });

      it('accepts numeric hash keys', () => {
        const { b } = make({ loadBalancer: { policy } }, testEndpoints(8));
        const num = (k: number) => testContext({ attributes: new Map<string, unknown>([['hashKey', k]]) });
        const seen = new Set<string>();
        for (let k = 0; k < 200; k++) {
          expect(b.pick(num(k))).toBe(b.pick(num(k)));
          seen.add(b.pick(num(k)).id);
          // A number is the key its decimal string is, whoever gave it (caller or filter).
          expect(b.pick(num(k))).toBe(b.pick(ctxWithKey(String(k))));
        }
        expect(seen.size).toBeGreaterThan(4);
      });

      it('honours weights', () => {
        const eps = testEndpoints(2, { weight: (i) => (i === 0 ? 3 : 1) });
        const { b } = make({ loadBalancer: { policy } }, eps);
        const c = counts(() => b.pick(ctxWithKey(`key-${seq++}`)), 8000);
        const share = (c.get(eps[0]!.id) ?? 0) / 8000;
        expect(share).toBeGreaterThan(0.65);
        expect(share).toBeLessThan(0.85);
      });
    });
  }
});
