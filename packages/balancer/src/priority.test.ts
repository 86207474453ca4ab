import { createEndpoint, createEndpointSet, type Endpoint, type Logger } from '@proxyless/core';
import { seededRandom, testContext, testEndpoints, VirtualClock } from '@proxyless/core/testing';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type BalancerEvent, createBalancer } from './balancer.js';
import { type BalancerPatch, resolveBalancerConfig } from './config.js';
import { priorityLoads } from './priority.js';
import { EndpointState } from './state.js';

/** `n` states of priority `p`, the first `usable` of them usable (the rest critical). */
function level(p: number, n: number, usable: number): EndpointState[] {
  return Array.from(
    { length: n },
    (_, i) =>
      new EndpointState(
        createEndpoint({
          address: `10.${p}.0.${i + 1}`,
          port: 80,
          priority: p,
          health: i < usable ? 'passing' : 'critical',
        }),
        0,
      ),
  );
}

const config = (panicThreshold = 50) =>
  resolveBalancerConfig({ loadBalancer: { panicThreshold } }).loadBalancer;
const loads = (levels: EndpointState[][], threshold?: number) =>
  priorityLoads(levels, config(threshold))?.map((l) => Math.round(l.load));

describe('priority levels: the load of each level (Envoy priority load, overprovisioning 1.4)', () => {
  // Envoy's documented table: P0's healthy share → the load of P0 and P1 (P1 fully healthy).
  it.each([
    [100, [100, 0]],
    [72, [100, 0]],
    [71, [99, 1]],
    [50, [70, 30]],
    [25, [35, 65]],
    [0, [0, 100]],
  ])('P0 %i %% healthy, P1 fully: loads %j', (healthy, expected) => {
    expect(loads([level(0, 100, healthy), level(1, 100, 100)])).toEqual(expected);
  });

  it('scales the loads up when the levels together fall short of 100 %', () => {
    // 20 % healthy each: 28 + 28 = 56 → 50 / 50.
    expect(loads([level(0, 10, 2), level(1, 10, 2)], 10)).toEqual([50, 50]);
  });

  it('is total panic (undefined) when every level is under the panic threshold', () => {
    expect(loads([level(0, 10, 2), level(1, 10, 2)])).toBeUndefined();
    expect(loads([level(0, 4, 0), level(1, 4, 0)])).toBeUndefined();
  });

  it('with a panic threshold of 0 and nothing usable, no level takes calls', () => {
    expect(loads([level(0, 4, 0), level(1, 4, 0)], 0)).toEqual([]);
  });

  it('puts a level in panic only while the levels together fall short of 100 %', () => {
    const full = priorityLoads([level(0, 10, 3), level(1, 10, 10)], config())!;
    expect(full.map((l) => l.panic)).toEqual([false, false]); // 42 + 100 ≥ 100
    // 28 + 70 = 98: P0 (20 % usable) is in panic, P1 (50 %) is not.
    const short = priorityLoads([level(0, 10, 2), level(1, 10, 5)], config())!;
    expect(short.map((l) => l.panic)).toEqual([true, false]);
    expect(short.map((l) => Math.round(l.load))).toEqual([29, 71]);
  });
});

describe('priority levels: properties', () => {
  it('the loads add up to 100, each level in order takes at most its health, and a level with nothing usable takes nothing unless in panic', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ n: fc.integer({ min: 1, max: 12 }), u: fc.integer({ min: 0, max: 12 }) }), {
          minLength: 2,
          maxLength: 5,
        }),
        fc.integer({ min: 0, max: 100 }),
        (spec, threshold) => {
          const levels = spec.map((l, i) => level(i, l.n, Math.min(l.u, l.n)));
          const out = priorityLoads(levels, config(threshold));
          const usable = spec.reduce((a, l) => a + Math.min(l.u, l.n), 0);
          if (out === undefined) {
            // Total panic: every level under the threshold, the levels together short of 100 %.
            expect(threshold).toBeGreaterThan(0);
            return;
          }
          if (usable === 0) {
            expect(threshold === 0 ? out : undefined).toEqual([]);
            return;
          }
          const sum = out.reduce((a, l) => a + l.load, 0);
          expect(sum).toBeCloseTo(100, 6);
          for (const [i, l] of out.entries()) {
            expect(l.load).toBeGreaterThanOrEqual(0);
            const n = spec[i]!.n;
            const u = Math.min(spec[i]!.u, n);
            if (u === 0) expect(l.load).toBe(0);
            // A level whose overprovisioned health is full takes every call left to it.
            if (u * 140 >= n * 100) {
              const left = 100 - out.slice(0, i).reduce((a, x) => a + x.load, 0);
              expect(l.load).toBeCloseTo(left, 6);
            }
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

function recordingLogger(): Logger & { lines: { level: string; message: string }[] } {
  const lines: { level: string; message: string }[] = [];
  const at = (lvl: string) => (message: string) => {
    lines.push({ level: lvl, message });
  };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

function make(patch: BalancerPatch, endpoints: readonly Endpoint[], seed = 7) {
  const logger = recordingLogger();
  const b = createBalancer(resolveBalancerConfig(patch), {
    service: 'api',
    clock: new VirtualClock(),
    random: seededRandom(seed),
    logger,
  });
  const events: BalancerEvent[] = [];
  b.onEvent((e) => events.push(e));
  let version = 1;
  const update = (eps: readonly Endpoint[]) =>
    b.update(
      createEndpointSet({ service: 'api', version: version++, endpoints: eps, source: 'dns', updatedAt: 0 }),
    );
  update(endpoints);
  return { b, events, logger, update };
}

/** Three endpoints of priority 10 (`10.0.0.1–3`) and two of priority 20 (`10.0.0.4–5`). */
const primaryAndBackup = testEndpoints(5, { priority: (i) => (i < 3 ? 10 : 20) });
const critical = (eps: readonly Endpoint[], ids: readonly string[]) =>
  eps.map((e) => (ids.includes(e.id) ? createEndpoint({ ...e, health: 'critical' }) : e));
const ctx = testContext();

function share(b: ReturnType<typeof make>['b'], n: number): Map<number, number> {
  const by = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const p = b.pick(ctx).priority ?? 0;
    by.set(p, (by.get(p) ?? 0) + 1);
  }
  return by;
}

describe('priority levels in the balancer', () => {
  it('sends every call to the lowest priority number while it is healthy', () => {
    const { b } = make({}, primaryAndBackup);
    expect(share(b, 300)).toEqual(new Map([[10, 300]]));
    expect(b.stats().priorities).toEqual([
      { priority: 10, load: 100 },
      { priority: 20, load: 0 },
    ]);
    expect(b.stats().active).toBe(3);
  });

  it('fails over to the next level when the first has no usable endpoint, and back, with events', () => {
    const { b, events, logger, update } = make({}, primaryAndBackup);
    update(critical(primaryAndBackup, ['10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.3:8080']));
    expect(share(b, 200)).toEqual(new Map([[20, 200]]));
    expect(b.stats().panic).toBe(false);
    expect(events).toContainEqual({
      type: 'priority_load',
      service: 'api',
      priorities: [
        { priority: 10, load: 0 },
        { priority: 20, load: 100 },
      ],
    });
    expect(logger.lines).toContainEqual({
      level: 'warn',
      message: 'balancer: spilling over to higher priority levels',
    });
    update(primaryAndBackup);
    expect(share(b, 100)).toEqual(new Map([[10, 100]]));
    expect(events.at(-1)).toMatchObject({ type: 'priority_load', priorities: [{ load: 100 }, { load: 0 }] });
  });

  it('a first set that starts on the backup level says so; one that starts on the first does not', () => {
    const down = critical(primaryAndBackup, ['10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.3:8080']);
    expect(make({}, down).events.filter((e) => e.type === 'priority_load')).toEqual([
      {
        type: 'priority_load',
        service: 'api',
        priorities: [
          { priority: 10, load: 0 },
          { priority: 20, load: 100 },
        ],
      },
    ]);
    expect(make({}, primaryAndBackup).events.filter((e) => e.type === 'priority_load')).toEqual([]);
  });

  it('shares calls by the levels’ health: 1 of 3 usable in the first level → 47 % / 53 %', () => {
    const { b, update } = make({}, primaryAndBackup);
    update(critical(primaryAndBackup, ['10.0.0.1:8080', '10.0.0.2:8080']));
    expect(b.stats().priorities).toEqual([
      { priority: 10, load: 47 },
      { priority: 20, load: 53 },
    ]);
    const n = 4000;
    const by = share(b, n);
    expect(Math.abs((by.get(10) ?? 0) / n - 0.467)).toBeLessThan(0.03);
    // The first level in panic would send calls to its critical endpoints: it is not (47 + 100 ≥ 100).
    const picked = new Set(Array.from({ length: 300 }, () => b.pick(ctx).id));
    expect(picked.has('10.0.0.1:8080')).toBe(false);
    expect(picked.has('10.0.0.3:8080')).toBe(true);
  });

  it('a retry that excludes the only usable endpoint of its level goes to another level', () => {
    const { b, update } = make({}, primaryAndBackup);
    update(critical(primaryAndBackup, ['10.0.0.1:8080', '10.0.0.2:8080']));
    const retry = testContext({ excludeEndpoints: new Set(['10.0.0.3:8080']) });
    for (let i = 0; i < 50; i++) expect(b.pick(retry).priority).toBe(20);
  });

  it('total panic (every level short of usable endpoints) balances over every reachable endpoint', () => {
    const { b, update } = make({}, primaryAndBackup);
    update(
      critical(
        primaryAndBackup,
        primaryAndBackup.map((e) => e.id),
      ),
    );
    expect(b.stats().panic).toBe(true);
    const picked = new Set(Array.from({ length: 300 }, () => b.pick(ctx).id));
    expect(picked.size).toBe(5);
  });

  it('ring_hash keeps a key on one level while the shares hold', () => {
    const { b, update } = make({ loadBalancer: { policy: 'ring_hash' } }, primaryAndBackup);
    update(critical(primaryAndBackup, ['10.0.0.1:8080', '10.0.0.2:8080']));
    for (const key of ['a', 'b', 'c', 'user-42', 'user-43']) {
      const keyed = testContext({ attributes: new Map([['hashKey', key]]) });
      const first = b.pick(keyed).id;
      for (let i = 0; i < 20; i++) expect(b.pick(keyed).id).toBe(first);
    }
  });

  it('endpoints all of one priority: no levels in stats, picking as before', () => {
    const { b } = make({}, testEndpoints(3, { priority: () => 5 }));
    expect(b.stats().priorities).toBeUndefined();
    expect(new Set(Array.from({ length: 60 }, () => b.pick(ctx).id)).size).toBe(3);
  });
});
