import { createEndpointSet, type Endpoint, MeshError, noopLogger, type Random } from '@proxyless/core';
import { testContext, testEndpoints, VirtualClock } from '@proxyless/core/testing';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type BalancerEvent, createBalancer } from './balancer.js';
import { type BalancerPatch, LOAD_BALANCER_POLICIES, resolveBalancerConfig } from './config.js';
import { type ConnectivitySettings, type ConnectProbe, GRPC_CONNECT_BACKOFF } from './connectivity.js';
import { pickWhenReady } from './wait-for-ready.js';

/** A random source that always answers `v`: 0.5 means "no jitter". */
const constant = (v: number): Random => ({ next: () => v });

/** A reconnect probe scripted per call: `'ok'`, `'fail'` or `'hang'` (until aborted). */
function scriptedProbe(clock: VirtualClock, script: (n: number) => 'ok' | 'fail' | 'hang') {
  const calls: { at: number; endpoint: string }[] = [];
  const probe: ConnectProbe = (endpoint, signal) => {
    const step = script(calls.length);
    calls.push({ at: clock.now(), endpoint: endpoint.id });
    if (step === 'ok') return Promise.resolve();
    if (step === 'fail') {
      return Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    }
    return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
  };
  return { probe, calls };
}

function make(
  options: {
    patch?: BalancerPatch;
    settings?: ConnectivitySettings;
    endpoints?: readonly Endpoint[];
    random?: Random;
    script?: (n: number) => 'ok' | 'fail' | 'hang';
    /**
     * The reconnect pacing: gRPC's (`GRPC_CONNECT_BACKOFF` given in code: the tests of the
     * algorithm) unless `config`, the config's (`loadBalancer.connectBackoff` or its defaults).
     */
    pacing?: 'grpc' | 'config';
  } = {},
) {
  const clock = new VirtualClock();
  const eps = options.endpoints ?? testEndpoints(3);
  const { probe, calls } = scriptedProbe(clock, options.script ?? (() => 'hang'));
  const b = createBalancer(
    {
      ...resolveBalancerConfig(options.patch ?? {}),
      ...(options.pacing === 'config' ? {} : { connectBackoff: GRPC_CONNECT_BACKOFF }),
      ...options.settings,
    },
    {
      service: 'api',
      clock,
      random: options.random ?? constant(0.5),
      logger: noopLogger,
      connectProbe: probe,
    },
  );
  const events: BalancerEvent[] = [];
  b.onEvent((e) => events.push(e));
  b.update(createEndpointSet({ service: 'api', version: 1, endpoints: eps, source: 'static', updatedAt: 0 }));
  return { b, clock, eps, events, calls };
}

/** Gaps between consecutive probe starts. */
const gaps = (calls: readonly { at: number }[], t0 = 0): number[] =>
  calls.map((c, i) => c.at - (i === 0 ? t0 : calls[i - 1]!.at));

const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
const ctx = testContext();

describe('connectivity state machine', () => {
  it('moves IDLE → CONNECTING on the first attempt and READY on a response', () => {
    const { b, eps, events } = make();
    expect(b.stats().endpoints.map((e) => e.connectivity)).toEqual(['IDLE', 'IDLE', 'IDLE']);
    b.onAttemptStart(eps[0]!);
    expect(b.stats().endpoints[0]!.connectivity).toBe('CONNECTING');
    b.onAttemptEnd(eps[0]!, { status: 200, latencyMs: 1 });
    expect(b.stats().endpoints[0]!.connectivity).toBe('READY');
    b.onDisconnected(eps[0]!);
    expect(b.stats().endpoints[0]!.connectivity).toBe('IDLE');
    // No event: nothing changed in picking. Before, each of these was one, so a server that
    // closes every connection made two events per request and flushed the admin's /events.
    expect(events.filter((e) => e.type === 'connectivity')).toEqual([]);
    for (let i = 0; i < 50; i++) {
      b.onAttemptStart(eps[0]!);
      b.onAttemptEnd(eps[0]!, { status: 200, latencyMs: 1 });
      b.onDisconnected(eps[0]!);
    }
    expect(events.filter((e) => e.type === 'connectivity')).toEqual([]);
  });

  it('is an event into and out of TRANSIENT_FAILURE, also for an endpoint that connects again', () => {
    const { b, eps, events } = make();
    b.onAttemptStart(eps[0]!);
    b.onAttemptEnd(eps[0]!, { status: 200, latencyMs: 1 });
    b.onConnectFailure(eps[0]!, refused);
    b.onConnected(eps[0]!);
    b.onDisconnected(eps[0]!);
    expect(events.map((e) => (e.type === 'connectivity' ? `${e.from}>${e.to} ${e.error}` : e.type))).toEqual([
      'READY>TRANSIENT_FAILURE ECONNREFUSED',
      'TRANSIENT_FAILURE>READY undefined',
    ]);
  });

  it('takes an endpoint out of picking at its first connect failure, for a reported or a recorded one', () => {
    for (const report of ['onConnectFailure', 'onAttemptEnd'] as const) {
      const { b, eps, events } = make();
      if (report === 'onConnectFailure') b.onConnectFailure(eps[1]!, refused);
      else {
        b.onAttemptStart(eps[1]!);
        b.onAttemptEnd(eps[1]!, { failure: 'connect', latencyMs: 1 });
      }
      expect(b.stats().endpoints[1]).toMatchObject({
        connectivity: 'TRANSIENT_FAILURE',
        reconnectInMs: 1000,
      });
      expect(b.stats().active).toBe(2);
      for (let i = 0; i < 100; i++) expect(b.pick(ctx).id).not.toBe(eps[1]!.id);
      expect(events.at(-1)).toMatchObject({
        type: 'connectivity',
        endpoint: eps[1]!.id,
        to: 'TRANSIENT_FAILURE',
      });
    }
  });

  it('reconnects with gRPC backoff: attempts 1 s, then 1.6 s, 2.56 s, 4.096 s apart (no jitter)', async () => {
    const { b, clock, eps, calls } = make({ script: () => 'fail' });
    await clock.advance(500);
    b.onConnectFailure(eps[0]!, refused);
    await clock.advance(999);
    expect(calls).toHaveLength(0);
    await clock.advance(1);
    expect(calls.map((c) => c.at)).toEqual([1500]);
    expect(b.stats().endpoints[0]).toMatchObject({ connectivity: 'TRANSIENT_FAILURE', reconnectInMs: 1600 });
    await clock.advance(1600 + 2560 + 4096);
    expect(gaps(calls, 500)).toEqual([1000, 1600, 2560, 4096]);
    expect(b.stats().endpoints[0]!.connectFailures).toBe(5);
  });

  it('caps the backoff at 120 s', async () => {
    const { b, clock, eps, calls } = make({ script: () => 'fail' });
    b.onConnectFailure(eps[0]!, refused);
    await clock.advance(1_000_000);
    const g = gaps(calls);
    // 1000 × 1.6^10 ≈ 109951 < 120000 < 1.6^11 × 1000: the 12th gap and later are capped.
    expect(g[10]).toBeCloseTo(1000 * 1.6 ** 10, 6);
    expect(g.slice(11)).toEqual(g.slice(11).map(() => 120_000));
    expect(g.length).toBeGreaterThan(14);
  });

  it('jitters every backoff after the first by ±20 %', async () => {
    for (const [r, factor] of [
      [0, 0.8],
      [1, 1.2],
      [0.75, 1.1],
    ] as const) {
      const { b, clock, eps, calls } = make({ script: () => 'fail', random: constant(r) });
      b.onConnectFailure(eps[0]!, refused);
      await clock.advance(1000 + 1600 * factor + 2560 * factor);
      const g = gaps(calls);
      expect(g[0]).toBe(1000);
      expect(g[1]).toBeCloseTo(1600 * factor, 9);
      expect(g[2]).toBeCloseTo(2560 * factor, 9);
    }
  });

  it('gives a probe at least 20 s, then starts the next one at once when its interval has passed', async () => {
    const { b, clock, eps, calls } = make({ script: (n) => (n === 0 ? 'hang' : 'ok') });
    b.onConnectFailure(eps[0]!, refused);
    await clock.advance(1000);
    expect(b.stats().endpoints[0]!.connectivity).toBe('CONNECTING');
    for (let i = 0; i < 50; i++) expect(b.pick(ctx).id).not.toBe(eps[0]!.id); // sticky failure
    await clock.advance(19_999);
    expect(calls).toHaveLength(1);
    await clock.advance(1);
    expect(calls.map((c) => c.at)).toEqual([1000, 21_000]);
    expect(b.stats().endpoints[0]).toMatchObject({ connectivity: 'READY', reconnectInMs: undefined });
    expect(clock.pendingTimers).toBe(0);
  });

  it('comes back when a probe succeeds, with events for each transition', async () => {
    const { b, clock, eps, events } = make({ script: (n) => (n < 2 ? 'fail' : 'ok') });
    b.onConnectFailure(eps[2]!, refused);
    await clock.advance(1000 + 1600 + 2560);
    expect(b.stats().endpoints[2]!.connectivity).toBe('READY');
    expect(b.stats().active).toBe(3);
    const seen = new Set(Array.from({ length: 30 }, () => b.pick(ctx).id));
    expect(seen.has(eps[2]!.id)).toBe(true);
    expect(
      events.flatMap((e) =>
        e.type === 'connectivity' ? [`${e.from}>${e.to}${e.error ? ` ${e.error}` : ''}`] : [],
      ),
    ).toEqual([
      'IDLE>TRANSIENT_FAILURE ECONNREFUSED',
      'TRANSIENT_FAILURE>CONNECTING',
      'CONNECTING>TRANSIENT_FAILURE ECONNREFUSED',
      'TRANSIENT_FAILURE>CONNECTING',
      'CONNECTING>TRANSIENT_FAILURE ECONNREFUSED',
      'TRANSIENT_FAILURE>CONNECTING',
      'CONNECTING>READY',
    ]);
  });

  it('a real connection brings it back at once and cancels the pending reconnect', async () => {
    const { b, clock, eps, calls } = make({ script: () => 'fail' });
    b.onConnectFailure(eps[0]!, refused);
    expect(clock.pendingTimers).toBe(1);
    b.onConnected(eps[0]!);
    expect(b.stats().endpoints[0]!.connectivity).toBe('READY');
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(10_000);
    expect(calls).toHaveLength(0);
    // The backoff starts over at the next failure.
    b.onConnectFailure(eps[0]!, refused);
    expect(b.stats().endpoints[0]!.reconnectInMs).toBe(1000);
  });

  it('more failures while failing (attempts in flight) do not restart the backoff', async () => {
    const { b, clock, eps } = make();
    b.onConnectFailure(eps[0]!, refused);
    await clock.advance(600);
    // Each a failed connect of its own (undici makes an error per connect).
    for (let i = 0; i < 10; i++) b.onConnectFailure(eps[0]!, new Error('connect ECONNREFUSED'));
    expect(b.stats().endpoints[0]).toMatchObject({ reconnectInMs: 400, connectFailures: 11 });
  });

  it('a response on an old connection does not end the failure: the probe decides', () => {
    const { b, eps } = make();
    b.onAttemptStart(eps[0]!);
    b.onConnectFailure(eps[0]!, refused);
    b.onAttemptEnd(eps[0]!, { status: 200, latencyMs: 3 });
    expect(b.stats().endpoints[0]!.connectivity).toBe('TRANSIENT_FAILURE');
  });

  it('stops probing an endpoint that left the set, and everything on close', async () => {
    const { b, clock, eps, calls } = make({ script: () => 'hang' });
    b.onConnectFailure(eps[0]!, refused);
    b.onConnectFailure(eps[1]!, refused);
    await clock.advance(1000);
    expect(calls).toHaveLength(2);
    b.update(
      createEndpointSet({
        service: 'api',
        version: 2,
        endpoints: eps.slice(1),
        source: 'static',
        updatedAt: 0,
      }),
    );
    b.close();
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('reconnect pacing by default and from the config', () => {
  it('by default tries again 100 ms after the failure, then at most 500 ms apart (Linkerd’s bounds)', async () => {
    const { b, clock, eps, calls } = make({ pacing: 'config', script: () => 'fail' });
    b.onConnectFailure(eps[0]!, refused);
    expect(b.stats().endpoints[0]!.reconnectInMs).toBe(100);
    await clock.advance(100 + 160 + 256 + 409.6 + 500 * 3);
    const g = gaps(calls);
    expect(g).toEqual([100, 160, 256, 409.6, 500, 500, 500].map((x) => expect.closeTo(x, 6)));
  });

  it('takes an endpoint back within 500 ms (+20 % jitter) of its return, however long it was away', async () => {
    for (const outage of [5_000, 20_000, 120_000, 600_000]) {
      let accepting = false;
      const { b, clock, eps, calls } = make({
        pacing: 'config',
        random: constant(1), // every wait +20 %: the longest
        script: () => (accepting ? 'ok' : 'fail'),
      });
      b.onConnectFailure(eps[0]!, refused);
      await clock.advance(outage);
      expect(b.stats().endpoints[0]!.connectivity).not.toBe('READY');
      accepting = true;
      const back = clock.now();
      while (b.stats().endpoints[0]!.connectivity !== 'READY') await clock.advance(10);
      expect(clock.now() - back).toBeLessThanOrEqual(600);
      // Bounded probing while it was away: one attempt per ≥ 500 ms after the first few.
      expect(calls.length).toBeLessThanOrEqual(outage / 500 + 5);
      b.close();
    }
  });

  it('with gRPC’s pacing the same endpoint waited out a backoff grown with the outage', async () => {
    let accepting = false;
    const { b, clock, eps } = make({ script: () => (accepting ? 'ok' : 'fail') });
    b.onConnectFailure(eps[0]!, refused);
    await clock.advance(20_000);
    accepting = true;
    const back = clock.now();
    while (b.stats().endpoints[0]!.connectivity !== 'READY') await clock.advance(10);
    // Attempts at 1, 2.6, 5.16, 9.26, 15.81, 26.3 s: 6.3 s after the return.
    expect(clock.now() - back).toBeGreaterThan(6_000);
  });

  it('loadBalancer.connectBackoff sets the pacing; code settings win field by field', async () => {
    const patch: BalancerPatch = {
      loadBalancer: { connectBackoff: { initialMs: 1000, maxMs: 2000, jitter: 0, multiplier: 2 } },
    };
    const fromConfig = make({ pacing: 'config', patch, script: () => 'fail' });
    fromConfig.b.onConnectFailure(fromConfig.eps[0]!, refused);
    await fromConfig.clock.advance(1000 + 2000 * 3);
    expect(gaps(fromConfig.calls)).toEqual([1000, 2000, 2000, 2000]);

    const both = make({
      pacing: 'config',
      patch,
      settings: { connectBackoff: { initialMs: 50 } },
      script: () => 'fail',
    });
    both.b.onConnectFailure(both.eps[0]!, refused);
    await both.clock.advance(50 + 100 + 200 + 400 + 800 + 1600 + 2000);
    expect(gaps(both.calls)).toEqual([50, 100, 200, 400, 800, 1600, 2000]);
  });

  it('gives a reconnect attempt 5 s to connect by default, and minConnectTimeout when set', async () => {
    for (const [patch, limit] of [
      [{}, 5000],
      [{ loadBalancer: { connectBackoff: { minConnectTimeoutMs: 1500 } } }, 1500],
    ] as const) {
      const { b, clock, eps, calls } = make({
        pacing: 'config',
        patch,
        script: (n) => (n === 0 ? 'hang' : 'ok'),
      });
      b.onConnectFailure(eps[0]!, refused);
      await clock.advance(100 + limit - 1);
      expect(calls).toHaveLength(1);
      await clock.advance(1);
      expect(calls.map((c) => c.at)).toEqual([100, 100 + limit]);
      expect(b.stats().endpoints[0]!.connectivity).toBe('READY');
    }
  });
});

describe('every endpoint failing', () => {
  it('fails fast with MESH_NO_HEALTHY_ENDPOINTS', () => {
    const { b, eps } = make();
    for (const e of eps) b.onConnectFailure(e, refused);
    expect(() => b.pick(ctx)).toThrow(expect.objectContaining({ code: 'MESH_NO_HEALTHY_ENDPOINTS' }));
  });

  it('waitForReady waits for the first endpoint to reconnect', async () => {
    const { b, clock, eps } = make({
      settings: { waitForReady: true },
      script: (n) => (n < 3 ? 'fail' : 'ok'),
    });
    for (const e of eps) b.onConnectFailure(e, refused);
    let picked: Endpoint | undefined;
    void pickWhenReady(b, ctx).then((e) => {
      picked = e;
    });
    await clock.advance(2599);
    expect(picked).toBeUndefined();
    await clock.advance(1);
    expect(picked?.id).toBe(eps[0]!.id);
  });

  it('waiting ends with the call deadline (its signal), and a call may opt out', async () => {
    const { b, clock, eps } = make({ settings: { waitForReady: true } });
    for (const e of eps) b.onConnectFailure(e, refused);
    const controller = new AbortController();
    const timeout = new MeshError('MESH_TIMEOUT', 'deadline', { details: { limit: 'overall' } });
    clock.setTimer(500, () => controller.abort(timeout));
    const waiting = pickWhenReady(b, { ...ctx, signal: controller.signal });
    const check = expect(waiting).rejects.toBe(timeout);
    await clock.advance(500);
    await check;
    const optOut = { ...ctx, attributes: new Map<string, unknown>([['waitForReady', false]]) };
    await expect(pickWhenReady(b, optOut)).rejects.toMatchObject({ code: 'MESH_NO_HEALTHY_ENDPOINTS' });
    const closing = b.whenReady();
    b.close();
    await expect(closing).rejects.toMatchObject({ code: 'MESH_CLOSED' });
  });

  it('a call may ask to wait when the service does not', async () => {
    const { b, clock, eps } = make({ script: () => 'ok' });
    for (const e of eps) b.onConnectFailure(e, refused);
    await expect(pickWhenReady(b, ctx)).rejects.toMatchObject({ code: 'MESH_NO_HEALTHY_ENDPOINTS' });
    const waiting = pickWhenReady(b, { ...ctx, attributes: new Map([['waitForReady', true]]) });
    await clock.advance(1000);
    await expect(waiting).resolves.toBeDefined();
  });

  it('leaves failing endpoints out of panic mode too', () => {
    const eps = testEndpoints(4);
    const { b } = make({ endpoints: eps, patch: { outlierDetection: { maxEjectionPercent: 100 } } });
    for (let i = 0; i < 5; i++) {
      b.onAttemptStart(eps[0]!);
      b.onAttemptEnd(eps[0]!, { status: 503, latencyMs: 1 });
    }
    b.onConnectFailure(eps[1]!, refused);
    b.onConnectFailure(eps[2]!, refused);
    // 1 usable of 2 reachable = 50 %: not panic; the ejected one stays out.
    expect(b.stats()).toMatchObject({ panic: false, active: 1 });
    b.onConnectFailure(eps[3]!, refused);
    // Only the ejected endpoint is reachable: panic mode uses it, never the failing ones.
    expect(b.stats()).toMatchObject({ panic: true, active: 1 });
    for (let i = 0; i < 20; i++) expect(b.pick(ctx).id).toBe(eps[0]!.id);
  });
});

describe('every policy skips TRANSIENT_FAILURE endpoints', () => {
  it.each(LOAD_BALANCER_POLICIES.flatMap((p) => [[p, true] as const, [p, false] as const]))(
    '%s (outlier detection %s)',
    (policy, od) => {
      const eps = testEndpoints(5);
      const { b } = make({
        endpoints: eps,
        patch: { loadBalancer: { policy, hashOn: { header: 'x-user' } }, outlierDetection: { enabled: od } },
      });
      b.onConnectFailure(eps[1]!, refused);
      b.onConnectFailure(eps[3]!, refused);
      const seen = new Set<string>();
      for (let i = 0; i < 500; i++) {
        const c = testContext({ request: { headers: { 'x-user': `u${i}` } } });
        seen.add(b.pick(c).id);
      }
      expect([...seen].sort()).toEqual([eps[0]!.id, eps[2]!.id, eps[4]!.id].sort());
    },
  );
});

describe('an endpoint whose first connection is still being set up (CONNECTING)', () => {
  const SPREADING = LOAD_BALANCER_POLICIES.filter((p) => p !== 'ring_hash' && p !== 'maglev');

  it.each(SPREADING)('%s: takes no other call while another endpoint can take it', (policy) => {
    const eps = testEndpoints(3);
    const { b } = make({
      endpoints: eps,
      random: { next: Math.random },
      patch: { loadBalancer: { policy } },
    });
    const others = new Map<string, number>();
    // A call is connecting eps[2] (a SYN nobody answers): the endpoint is CONNECTING until its
    // connect succeeds or fails.
    b.onAttemptStart(eps[2]!);
    expect(b.stats().endpoints[2]!.connectivity).toBe('CONNECTING');
    for (let i = 0; i < 300; i++) {
      const id = b.pick(ctx).id;
      others.set(id, (others.get(id) ?? 0) + 1);
    }
    expect(others.has(eps[2]!.id)).toBe(false);
    // The other two share the calls (no one of them gets all).
    expect(others.get(eps[0]!.id)).toBeGreaterThan(75);
    expect(others.get(eps[1]!.id)).toBeGreaterThan(75);
    // Connected and answered: it takes its share again.
    b.onConnected(eps[2]!);
    b.onAttemptEnd(eps[2]!, { status: 200, latencyMs: 1 });
    const seen = new Set(Array.from({ length: 300 }, () => b.pick(ctx).id));
    expect(seen.has(eps[2]!.id)).toBe(true);
  });

  it.each(SPREADING)('%s: when every endpoint is connecting, a pick still chooses one', (policy) => {
    const eps = testEndpoints(3);
    const { b } = make({ endpoints: eps, patch: { loadBalancer: { policy } } });
    for (const e of eps) b.onAttemptStart(e);
    const counts = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const id = b.pick(ctx).id;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    // Each of them, as the policy would spread the calls (not all on one).
    expect(counts.size).toBe(3);
    for (const c of counts.values()) expect(c).toBeGreaterThan(30);
  });

  it('one left connecting by a call that gave up (nothing in flight) is picked as usual', () => {
    const eps = testEndpoints(3);
    const { b } = make({ endpoints: eps });
    b.onAttemptStart(eps[2]!);
    b.onAttemptEnd(eps[2]!, { failure: 'cancelled', latencyMs: 1 });
    expect(b.stats().endpoints[2]).toMatchObject({ connectivity: 'CONNECTING', inflight: 0 });
    const seen = new Set(Array.from({ length: 30 }, () => b.pick(ctx).id));
    expect(seen.has(eps[2]!.id)).toBe(true);
  });

  it('one failed connect reported twice (by its attempt, then by its pool) counts once', () => {
    const eps = testEndpoints(3);
    const { b } = make({ endpoints: eps });
    b.onAttemptStart(eps[0]!);
    const error = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    b.onAttemptEnd(eps[0]!, { failure: 'connect', latencyMs: 1, error });
    b.onConnectFailure(eps[0]!, error);
    expect(b.stats().endpoints[0]).toMatchObject({ connectivity: 'TRANSIENT_FAILURE', connectFailures: 1 });
    b.onConnectFailure(eps[0]!, Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    expect(b.stats().endpoints[0]!.connectFailures).toBe(2);
  });

  it('a retry skips an excluded endpoint and a connecting one alike', () => {
    const eps = testEndpoints(3);
    const { b } = make({ endpoints: eps });
    b.onAttemptStart(eps[2]!);
    const retry = { ...ctx, excludeEndpoints: new Set([eps[0]!.id]) };
    for (let i = 0; i < 50; i++) expect(b.pick(retry).id).toBe(eps[1]!.id);
  });

  it.each(['ring_hash', 'maglev'] as const)(
    '%s: a key keeps its endpoint while that one connects',
    (policy) => {
      const eps = testEndpoints(3);
      const { b } = make({ endpoints: eps, patch: { loadBalancer: { policy } } });
      const keyed = (k: string) => testContext({ attributes: new Map([['hashKey', k]]) });
      const home = new Map(Array.from({ length: 50 }, (_, i) => [`k${i}`, b.pick(keyed(`k${i}`)).id]));
      for (const e of eps) b.onAttemptStart(e);
      b.onConnected(eps[0]!);
      for (const [k, id] of home) expect(b.pick(keyed(k)).id).toBe(id);
    },
  );
});

describe('property: a failing endpoint is never picked', () => {
  type Op = { kind: 'fail' | 'connected' | 'ok' | 'error503'; i: number } | { kind: 'advance'; ms: number };
  const op = (n: number): fc.Arbitrary<Op> =>
    fc.oneof(
      fc.record({ kind: fc.constantFrom('fail', 'connected', 'ok', 'error503'), i: fc.nat(n - 1) }),
      fc.record({ kind: fc.constant('advance'), ms: fc.integer({ min: 1, max: 5000 }) }),
    ) as fc.Arbitrary<Op>;

  it('holds for every policy, outlier detection on or off, through probes and reconnects', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...LOAD_BALANCER_POLICIES),
        fc.boolean(),
        fc
          .integer({ min: 1, max: 6 })
          .chain((n) =>
            fc.tuple(
              fc.constant(n),
              fc.array(op(n), { maxLength: 40 }),
              fc.array(fc.boolean(), { maxLength: 20 }),
            ),
          ),
        async (policy, od, [n, ops, probeResults]) => {
          const eps = testEndpoints(n);
          const { b, clock, events } = make({
            endpoints: eps,
            random: constant(0.37),
            script: (k) => ((probeResults[k] ?? true) ? 'ok' : 'fail'),
            patch: {
              loadBalancer: { policy, hashOn: { header: 'x-user' } },
              outlierDetection: { enabled: od, maxEjectionPercent: 100 },
            },
          });
          const failing = new Set<string>();
          let seen = 0;
          const check = (): void => {
            for (; seen < events.length; seen++) {
              const e = events[seen]!;
              if (e.type !== 'connectivity') continue;
              if (e.to === 'TRANSIENT_FAILURE') failing.add(e.endpoint);
              if (e.to === 'READY') failing.delete(e.endpoint);
            }
            for (let k = 0; k < 12; k++) {
              const c = testContext({ request: { headers: { 'x-user': `u${k}` } } });
              if (failing.size === n) {
                expect(() => b.pick(c)).toThrow(
                  expect.objectContaining({ code: 'MESH_NO_HEALTHY_ENDPOINTS' }),
                );
              } else expect(failing.has(b.pick(c).id)).toBe(false);
            }
          };
          for (const o of ops) {
            if (o.kind === 'advance') await clock.advance(o.ms);
            else {
              const e = eps[o.i]!;
              if (o.kind === 'fail') b.onConnectFailure(e, refused);
              else if (o.kind === 'connected') b.onConnected(e);
              else {
                b.onAttemptStart(e);
                b.onAttemptEnd(e, { status: o.kind === 'ok' ? 200 : 503, latencyMs: 2 });
              }
            }
            check();
          }
          b.close();
          expect(clock.pendingTimers).toBe(0);
        },
      ),
      { numRuns: 150, seed: 11 },
    );
  });
});
