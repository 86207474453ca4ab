import { createEndpoint, createEndpointSet, type Endpoint, type Logger, noopLogger } from '@proxyless/core';
import { seededRandom, testContext, testEndpoints, VirtualClock } from '@proxyless/core/testing';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type BalancerEvent, createBalancer } from './balancer.js';
import { type BalancerPatch, LOAD_BALANCER_POLICIES, resolveBalancerConfig } from './config.js';

function setOf(endpoints: readonly Endpoint[], version = 1) {
  return createEndpointSet({ service: 'api', version, endpoints, source: 'static', updatedAt: 0 });
}

function recordingLogger(): Logger & { lines: { level: string; message: string }[] } {
  const lines: { level: string; message: string }[] = [];
  const at = (level: string) => (message: string) => {
    lines.push({ level, message });
  };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

function make(patch: BalancerPatch, endpoints: readonly Endpoint[], seed = 3) {
  const clock = new VirtualClock();
  const logger = recordingLogger();
  const b = createBalancer(resolveBalancerConfig(patch), {
    service: 'api',
    clock,
    random: seededRandom(seed),
    logger,
  });
  const events: BalancerEvent[] = [];
  b.onEvent((e) => events.push(e));
  b.update(setOf(endpoints));
  return { b, clock, events, logger };
}

const ctx = testContext();

function fail(b: ReturnType<typeof make>['b'], e: Endpoint, n: number, status = 503) {
  for (let i = 0; i < n; i++) {
    b.onAttemptStart(e);
    b.onAttemptEnd(e, { status, latencyMs: 1 });
  }
}
function succeed(b: ReturnType<typeof make>['b'], e: Endpoint, n: number) {
  for (let i = 0; i < n; i++) {
    b.onAttemptStart(e);
    b.onAttemptEnd(e, { status: 200, latencyMs: 1 });
  }
}

describe('outlier detection: consecutive failures', () => {
  it('ejects after 5 consecutive 5xx and readmits after the base ejection time', async () => {
    const eps = testEndpoints(10);
    const { b, clock, events } = make({ outlierDetection: { baseEjectionTime: 200 } }, eps);
    fail(b, eps[0]!, 4);
    expect(b.stats().endpoints[0]!.ejected).toBe(false);
    fail(b, eps[0]!, 1);
    expect(b.stats().endpoints[0]).toMatchObject({ ejected: true, ejections: 1, requests: 5, failures: 5 });
    expect(events).toContainEqual(
      expect.objectContaining({
        type: 'eject',
        endpoint: eps[0]!.id,
        reason: 'consecutive_5xx',
        durationMs: 200,
      }),
    );
    for (let i = 0; i < 200; i++) expect(b.pick(ctx)).not.toBe(eps[0]);
    await clock.advance(199);
    expect(b.stats().endpoints[0]!.ejected).toBe(true);
    await clock.advance(1);
    expect(b.stats().endpoints[0]!.ejected).toBe(false);
    expect(events.at(-1)).toEqual({ type: 'readmit', service: 'api', endpoint: eps[0]!.id });
    const picked = new Set(Array.from({ length: 20 }, () => b.pick(ctx).id));
    expect(picked.has(eps[0]!.id)).toBe(true);
  });

  it('a success resets the consecutive count', () => {
    const eps = testEndpoints(10);
    const { b } = make({}, eps);
    for (let i = 0; i < 10; i++) {
      fail(b, eps[0]!, 4);
      succeed(b, eps[0]!, 1);
    }
    expect(b.stats().endpoints[0]!.ejected).toBe(false);
  });

  it('ejects on consecutive gateway failures and on connect/reset/timeout failures', () => {
    const eps = testEndpoints(10);
    const { b, events } = make(
      { outlierDetection: { consecutive5xx: 0, consecutiveGatewayFailure: 3 } },
      eps,
    );
    fail(b, eps[0]!, 2, 502);
    fail(b, eps[0]!, 1, 500);
    fail(b, eps[0]!, 2, 504);
    expect(b.stats().endpoints[0]!.ejected).toBe(false);
    fail(b, eps[0]!, 1, 503);
    expect(events.at(-1)).toMatchObject({ type: 'eject', reason: 'consecutive_gateway_failure' });

    const l = make(
      {
        outlierDetection: {
          consecutive5xx: 0,
          consecutiveGatewayFailure: 0,
          consecutiveLocalOriginFailure: 2,
        },
      },
      eps,
    );
    for (const failure of ['connect', 'timeout'] as const) {
      l.b.onAttemptStart(eps[1]!);
      l.b.onAttemptEnd(eps[1]!, { failure, latencyMs: 5 });
    }
    expect(l.events.at(-1)).toMatchObject({
      type: 'eject',
      endpoint: eps[1]!.id,
      reason: 'consecutive_local_origin_failure',
    });
  });

  it('cancelled attempts count for nothing', () => {
    const eps = testEndpoints(10);
    const { b } = make({}, eps);
    for (let i = 0; i < 20; i++) {
      b.onAttemptStart(eps[0]!);
      b.onAttemptEnd(eps[0]!, { failure: 'cancelled', latencyMs: 1 });
    }
    expect(b.stats().endpoints[0]).toMatchObject({ ejected: false, requests: 0, failures: 0, inflight: 0 });
  });

  it('ejection time grows with each ejection, is capped, and the multiplier decays while healthy', async () => {
    const eps = testEndpoints(10);
    const { b, clock, events } = make(
      { outlierDetection: { baseEjectionTime: 1000, maxEjectionTime: 2500, interval: 10_000 } },
      eps,
    );
    const durations = (): number[] => events.flatMap((e) => (e.type === 'eject' ? [e.durationMs] : []));
    fail(b, eps[0]!, 5);
    await clock.advance(1000);
    fail(b, eps[0]!, 5);
    await clock.advance(2000);
    fail(b, eps[0]!, 5);
    expect(durations()).toEqual([1000, 2000, 2500]);
    await clock.advance(2500);
    // Three healthy sweeps bring the multiplier back down to 0.
    await clock.advance(40_000);
    fail(b, eps[0]!, 5);
    expect(durations().at(-1)).toBe(1000);
  });

  it('a flapping endpoint, failing again as soon as it is readmitted, stays out longer each time', async () => {
    // Defaults: base 30 s, sweep every 10 s: each readmission falls on a sweep.
    const eps = testEndpoints(5);
    const { b, clock, events } = make({ outlierDetection: { maxEjectionPercent: 100 } }, eps);
    const durations = (): number[] => events.flatMap((e) => (e.type === 'eject' ? [e.durationMs] : []));
    for (let i = 0; i < 4; i++) {
      fail(b, eps[0]!, 5);
      await clock.advance(durations().at(-1)!);
    }
    expect(durations()).toEqual([30_000, 60_000, 90_000, 120_000]);
    b.close();
  });

  it('the success-rate detector ejects a flapping endpoint for longer each time (as Envoy)', async () => {
    const eps = testEndpoints(5);
    const { b, clock, events } = make({ outlierDetection: { maxEjectionPercent: 100 } }, eps);
    // Endpoint 0 fails every other request (never five in a row), the others none; a round of
    // requests every 100 ms for 400 s.
    for (let step = 0; step < 4000; step++) {
      for (const [i, e] of eps.entries()) {
        if (b.stats().endpoints[i]!.ejected) continue;
        b.onAttemptStart(e);
        b.onAttemptEnd(e, { status: i === 0 && step % 2 === 0 ? 500 : 200, latencyMs: 1 });
      }
      await clock.advance(100);
    }
    const ejections = events.flatMap((e) => (e.type === 'eject' ? [[e.reason, e.durationMs]] : []));
    expect(ejections.slice(0, 3)).toEqual([
      ['success_rate', 30_000],
      ['success_rate', 60_000],
      ['success_rate', 90_000],
    ]);
    b.close();
  });

  it('the multiplier decays only for a whole sweep interval spent admitted', async () => {
    const eps = testEndpoints(5);
    const { b, clock, events } = make(
      { outlierDetection: { baseEjectionTime: 1000, interval: 10_000, maxEjectionPercent: 100 } },
      eps,
    );
    const durations = (): number[] => events.flatMap((e) => (e.type === 'eject' ? [e.durationMs] : []));
    succeed(b, eps[1]!, 1); // the sweep runs at 10 s, 20 s, …
    await clock.advance(8000);
    fail(b, eps[0]!, 5); // ejected at 8 s for 1 s, readmitted at 9 s
    await clock.advance(1500); // 9.5 s
    // The sweep at 10 s comes 1 s after the readmission: no decay.
    await clock.advance(1000); // 10.5 s
    fail(b, eps[0]!, 5);
    expect(durations()).toEqual([1000, 2000]);
    // Readmitted at 12.5 s: the sweep at 20 s comes too soon; those at 30 s and 40 s each find a
    // whole clean interval since.
    await clock.advance(20_000); // 30.5 s
    fail(b, eps[0]!, 5);
    expect(durations().at(-1)).toBe(2000);
    await clock.advance(2000); // readmitted at 32.5 s
    await clock.advance(40_000); // sweeps at 50 s and 60 s decay it twice
    expect(b.stats().endpoints[0]!.ejected).toBe(false);
    fail(b, eps[0]!, 5);
    expect(durations().at(-1)).toBe(1000);
    b.close();
  });

  it('the multiplier stops growing once the ejection time is capped (as Envoy)', async () => {
    const eps = testEndpoints(5);
    const { b, clock, events } = make(
      {
        outlierDetection: {
          baseEjectionTime: 1000,
          maxEjectionTime: 2500,
          interval: 10_000,
          maxEjectionPercent: 100,
        },
      },
      eps,
    );
    const durations = (): number[] => events.flatMap((e) => (e.type === 'eject' ? [e.durationMs] : []));
    for (let i = 0; i < 8; i++) {
      fail(b, eps[0]!, 5);
      await clock.advance(durations().at(-1)!);
    }
    expect(durations()).toEqual([1000, 2000, 2500, 2500, 2500, 2500, 2500, 2500]);
    // The multiplier stopped at 4 (base × 4 ≥ max + base): four whole clean intervals bring it to
    // 0, not eight.
    await clock.advance(45_000);
    fail(b, eps[0]!, 5);
    expect(durations().at(-1)).toBe(1000);
    b.close();
  });

  it('never ejects more than maxEjectionPercent, but always allows one', () => {
    const eps = testEndpoints(3);
    const { b } = make({ outlierDetection: { maxEjectionPercent: 10 } }, eps);
    fail(b, eps[0]!, 5);
    fail(b, eps[1]!, 5);
    expect(b.stats().endpoints.map((e) => e.ejected)).toEqual([true, false, false]);

    const twenty = testEndpoints(20);
    const t = make({ outlierDetection: { maxEjectionPercent: 10 } }, twenty);
    for (const e of twenty.slice(0, 5)) fail(t.b, e, 5);
    expect(t.b.stats().endpoints.filter((e) => e.ejected)).toHaveLength(2);
  });

  it('holds no timer while idle: the sweep starts with traffic and stops when there is nothing to sweep', async () => {
    const eps = testEndpoints(3);
    const { b, clock } = make({}, eps);
    expect(clock.pendingTimers).toBe(0);
    succeed(b, eps[0]!, 1);
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(10_000);
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(10_000);
    expect(clock.pendingTimers).toBe(0);
  });

  it('does nothing when disabled', () => {
    const eps = testEndpoints(3);
    const { b, clock } = make({ outlierDetection: { enabled: false } }, eps);
    fail(b, eps[0]!, 50);
    expect(b.stats().endpoints[0]!.ejected).toBe(false);
    expect(clock.pendingTimers).toBe(0);
  });

  it('enforcing 0 detects but never ejects', () => {
    const eps = testEndpoints(10);
    const { b } = make(
      {
        outlierDetection: {
          enforcingConsecutive5xx: 0,
          consecutiveGatewayFailure: 0,
          consecutiveLocalOriginFailure: 0,
        },
      },
      eps,
    );
    fail(b, eps[0]!, 50);
    expect(b.stats().endpoints[0]!.ejected).toBe(false);
  });
});

describe('outlier detection: interval detectors', () => {
  it('success rate: ejects an endpoint far below the mean', async () => {
    const eps = testEndpoints(6);
    const { b, clock, events } = make(
      { outlierDetection: { consecutive5xx: 0, consecutiveGatewayFailure: 0, maxEjectionPercent: 50 } },
      eps,
    );
    for (let i = 0; i < 100; i++) {
      for (const [j, e] of eps.entries()) {
        // Endpoint 0 fails every other request; the others are fine.
        if (j === 0 && i % 2 === 0) fail(b, e, 1, 500);
        else succeed(b, e, 1);
      }
    }
    await clock.advance(10_000);
    expect(events.filter((e) => e.type === 'eject')).toEqual([
      expect.objectContaining({ endpoint: eps[0]!.id, reason: 'success_rate' }),
    ]);
  });

  it('success rate: needs minimumHosts endpoints with requestVolume', async () => {
    const eps = testEndpoints(6);
    const { b, clock } = make({ outlierDetection: { consecutive5xx: 0, consecutiveGatewayFailure: 0 } }, eps);
    for (let i = 0; i < 99; i++) {
      for (const [j, e] of eps.entries()) {
        if (j === 0 && i % 2 === 0) fail(b, e, 1, 500);
        else succeed(b, e, 1);
      }
    }
    await clock.advance(10_000);
    expect(b.stats().endpoints[0]!.ejected).toBe(false);
  });

  it('failure percentage: ejects at ≥ threshold when enforcing', async () => {
    const eps = testEndpoints(5);
    const { b, clock, events } = make(
      {
        outlierDetection: {
          consecutive5xx: 0,
          consecutiveGatewayFailure: 0,
          failurePercentage: { enforcing: 100 },
          successRate: { enforcing: 0 },
        },
      },
      eps,
    );
    for (let i = 0; i < 50; i++) {
      for (const [j, e] of eps.entries()) {
        if (j === 2 && i % 10 !== 0) fail(b, e, 1, 500);
        else succeed(b, e, 1);
      }
    }
    await clock.advance(10_000);
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'eject', endpoint: eps[2]!.id, reason: 'failure_percentage' }),
    );
  });

  it('failure percentage needs minimumHosts endpoints with requestVolume requests (Envoy)', async () => {
    const eps = testEndpoints(5);
    const { b, clock } = make(
      {
        outlierDetection: {
          consecutive5xx: 0,
          consecutiveGatewayFailure: 0,
          failurePercentage: { enforcing: 100, minimumHosts: 3, requestVolume: 50 },
          successRate: { enforcing: 0 },
        },
      },
      eps,
    );
    // Only two endpoints have the volume: five endpoints exist, but two are not enough.
    for (let i = 0; i < 60; i++) {
      fail(b, eps[0]!, 1, 500);
      succeed(b, eps[1]!, 1);
    }
    await clock.advance(10_000);
    expect(b.stats().endpoints.some((e) => e.ejected)).toBe(false);
    // With a third endpoint at volume, the failing one goes.
    for (let i = 0; i < 60; i++) {
      fail(b, eps[0]!, 1, 500);
      succeed(b, eps[1]!, 1);
      succeed(b, eps[2]!, 1);
    }
    await clock.advance(10_000);
    expect(
      b
        .stats()
        .endpoints.filter((e) => e.ejected)
        .map((e) => e.id),
    ).toEqual([eps[0]!.id]);
  });

  it('failure percentage is off by default (enforcing 0, as in Envoy)', async () => {
    const eps = testEndpoints(5);
    const { b, clock } = make(
      {
        outlierDetection: { consecutive5xx: 0, consecutiveGatewayFailure: 0, successRate: { enforcing: 0 } },
      },
      eps,
    );
    for (let i = 0; i < 60; i++) for (const e of eps) fail(b, e, 1, 500);
    await clock.advance(10_000);
    expect(b.stats().endpoints.some((e) => e.ejected)).toBe(false);
  });
});

describe('panic mode', () => {
  it('balances over all endpoints below the panic threshold, says so, and leaves it', () => {
    const healthy = testEndpoints(4);
    const { b, events, logger } = make({}, healthy);
    const sick = healthy.map((e, i) => (i < 3 ? createEndpoint({ ...e, health: 'critical' }) : e));
    b.update(setOf(sick, 2));
    expect(b.stats()).toMatchObject({ panic: true, active: 4 });
    expect(events).toContainEqual({ type: 'panic_enter', service: 'api', usable: 1, total: 4 });
    expect(logger.lines).toContainEqual({ level: 'warn', message: expect.stringContaining('panic') });
    const picked = new Set(Array.from({ length: 40 }, () => b.pick(ctx).id));
    expect(picked.size).toBe(4);
    b.update(setOf(healthy, 3));
    expect(b.stats().panic).toBe(false);
    expect(events.at(-1)).toMatchObject({ type: 'panic_exit' });
  });

  it('exactly at the threshold is not panic', () => {
    const eps = testEndpoints(4).map((e, i) => (i < 2 ? createEndpoint({ ...e, health: 'critical' }) : e));
    const { b } = make({}, eps);
    expect(b.stats()).toMatchObject({ panic: false, active: 2 });
  });

  it('no picker returns an ejected or critical endpoint unless in panic (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...LOAD_BALANCER_POLICIES),
        fc.array(fc.record({ critical: fc.boolean(), failures: fc.integer({ min: 0, max: 7 }) }), {
          minLength: 1,
          maxLength: 12,
        }),
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 0, max: 100 }),
        (policy, specs, panicThreshold, maxEjectionPercent) => {
          const eps = testEndpoints(specs.length).map((e, i) =>
            specs[i]!.critical ? createEndpoint({ ...e, health: 'critical' }) : e,
          );
          const { b } = make(
            { loadBalancer: { policy, panicThreshold }, outlierDetection: { maxEjectionPercent } },
            eps,
          );
          for (const [i, s] of specs.entries()) fail(b, eps[i]!, s.failures);
          const stats = b.stats();
          const bad = new Set(
            stats.endpoints.filter((e) => e.ejected || e.health === 'critical').map((e) => e.id),
          );
          for (let i = 0; i < 30; i++) {
            const c = testContext({ attributes: new Map([['hashKey', `k${i}`]]) });
            let picked: Endpoint;
            try {
              picked = b.pick(c);
            } catch (error) {
              expect(error).toMatchObject({ code: 'MESH_NO_ENDPOINTS' });
              expect(stats.panic).toBe(false);
              expect(bad.size).toBe(eps.length);
              return;
            }
            if (!stats.panic) expect(bad.has(picked.id)).toBe(false);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('locality', () => {
  const eps = testEndpoints(6, { zone: (i) => (i < 3 ? 'a' : 'b') });

  it('keeps traffic in the local zone', () => {
    const { b, events } = make({ loadBalancer: { zone: 'a' } }, eps);
    expect(b.stats().locality).toBe('local');
    for (let i = 0; i < 50; i++) expect(b.pick(ctx).zone).toBe('a');
    // Starting in the zone restores nothing: no locality event for the first set.
    expect(events.filter((e) => e.type.startsWith('locality'))).toEqual([]);
  });

  it('a first set whose zone is short of usable endpoints starts spilled over, and says so', () => {
    const sick = eps.map((e, i) => (i === 0 ? createEndpoint({ ...e, health: 'critical' }) : e));
    const { b, events } = make({ loadBalancer: { zone: 'a' } }, sick);
    expect(b.stats().locality).toBe('all');
    expect(events.filter((e) => e.type.startsWith('locality'))).toEqual([
      { type: 'locality_spill', service: 'api', zone: 'a' },
    ]);
  });

  it('spills over when the healthy fraction in the zone falls below the threshold', () => {
    const { b, events } = make({ loadBalancer: { zone: 'a' } }, eps);
    // 2 of 3 healthy = 66.7% < 70%: spill over to every usable endpoint.
    const sick = eps.map((e, i) => (i === 0 ? createEndpoint({ ...e, health: 'critical' }) : e));
    b.update(setOf(sick, 2));
    expect(b.stats()).toMatchObject({ locality: 'all', active: 5 });
    expect(events).toContainEqual({ type: 'locality_spill', service: 'api', zone: 'a' });
    const zones = new Set(Array.from({ length: 60 }, () => b.pick(ctx).zone));
    expect(zones).toEqual(new Set(['a', 'b']));
    b.update(setOf(eps, 3));
    expect(b.stats().locality).toBe('local');
    expect(events.at(-1)).toEqual({ type: 'locality_restore', service: 'api', zone: 'a' });
  });

  it('a retry leaves the zone when every local endpoint is excluded', () => {
    const oneLocal = testEndpoints(4, { zone: (i) => (i === 0 ? 'a' : 'b') });
    const { b } = make({ loadBalancer: { zone: 'a', localityMinHealthyPercent: 50 } }, oneLocal);
    expect(b.pick(ctx)).toBe(oneLocal[0]);
    const retry = testContext({ excludeEndpoints: new Set([oneLocal[0]!.id]) });
    for (let i = 0; i < 20; i++) expect(b.pick(retry).zone).toBe('b');
  });

  it('a lower threshold keeps traffic local longer; an unknown zone uses everything', () => {
    const sick = eps.map((e, i) => (i === 0 ? createEndpoint({ ...e, health: 'critical' }) : e));
    expect(
      make({ loadBalancer: { zone: 'a', localityMinHealthyPercent: 50 } }, sick).b.stats().locality,
    ).toBe('local');
    expect(make({ loadBalancer: { zone: 'c' } }, eps).b.stats()).toMatchObject({
      locality: 'all',
      active: 6,
    });
  });
});

describe('weights with least_request and peak_ewma', () => {
  const weighted = testEndpoints(4).map((e, i) => createEndpoint({ ...e, weight: i + 1 }));
  /** Shares of `n` calls made one at a time (each ends before the next): nothing else in flight. */
  async function oneAtATime(policy: 'least_request' | 'peak_ewma', eps: readonly Endpoint[], n: number) {
    const { b, clock } = make({ loadBalancer: { policy } }, eps);
    // Every endpoint measured alike first (peak_ewma tries one never measured only once its
    // `defaultRtt` has decayed below the others' latency: tested in pickers.test.ts).
    for (const e of eps) {
      b.onAttemptStart(e);
      b.onAttemptEnd(e, { status: 200, latencyMs: 2 });
    }
    const hits = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const e = b.pick(ctx);
      hits.set(e.id, (hits.get(e.id) ?? 0) + 1);
      b.onAttemptStart(e);
      await clock.advance(2);
      b.onAttemptEnd(e, { status: 200, latencyMs: 2 });
    }
    return eps.map((e) => (hits.get(e.id) ?? 0) / n);
  }

  it('least_request gives each endpoint its weight’s share while nothing else is in flight (Envoy’s LEAST_REQUEST)', async () => {
    const shares = await oneAtATime('least_request', weighted, 4000);
    shares.forEach((share, i) => {
      expect(share).toBeGreaterThan((i + 1) / 10 - 0.02);
      expect(share).toBeLessThan((i + 1) / 10 + 0.02);
    });
  });

  it('peak_ewma gives every endpoint traffic in the order of the weights while nothing else is in flight', async () => {
    // Not exactly the weights' shares: an idle endpoint's estimate decays, so it wins more often.
    const shares = await oneAtATime('peak_ewma', weighted, 4000);
    expect(shares[0]).toBeGreaterThan(0.05);
    for (let i = 1; i < shares.length; i++) expect(shares[i]).toBeGreaterThan(shares[i - 1] as number);
  });

  it('least_request with weights still steers away from an endpoint with requests in flight', () => {
    const { b } = make({ loadBalancer: { policy: 'least_request' } }, weighted);
    // The heaviest endpoint holds 30 requests: weight 4 / 31 is below every other endpoint's.
    const heavy = weighted[3] as Endpoint;
    for (let i = 0; i < 30; i++) b.onAttemptStart(heavy);
    let toHeavy = 0;
    for (let i = 0; i < 1000; i++) if (b.pick(ctx) === heavy) toHeavy++;
    expect(toHeavy / 1000).toBeLessThan(0.1);
  });
});

describe('slow start', () => {
  it.each(['least_request', 'peak_ewma'] as const)(
    'ramps a new endpoint up gradually with %s at one call at a time (no step from nothing to its full share)',
    async (policy) => {
      const eps = testEndpoints(3);
      // (peak_ewma: a `defaultRtt` like the service's latency, so the new endpoint is tried at once.)
      const rtt = policy === 'peak_ewma' ? { defaultRtt: 1 } : {};
      const { b, clock } = make({ loadBalancer: { policy, ...rtt, slowStart: { window: 10_000 } } }, eps);
      const added = testEndpoints(4)[3] as Endpoint;
      b.update(setOf([...eps, added], 2));
      // Four quarters of the window, then one after it: 2,500 calls of 1 ms each.
      const shares: number[] = [];
      for (let q = 0; q < 5; q++) {
        let n = 0;
        for (let i = 0; i < 2500; i++) {
          const e = b.pick(ctx);
          if (e === added) n++;
          b.onAttemptStart(e);
          await clock.advance(1);
          b.onAttemptEnd(e, { status: 200, latencyMs: 1 });
        }
        shares.push(n / 2500);
      }
      expect(shares[0]).toBeGreaterThan(0.01);
      for (let q = 1; q < 5; q++) expect(shares[q]).toBeGreaterThan((shares[q - 1] as number) - 0.02);
      expect(shares[4]).toBeGreaterThan(0.18);
      expect(shares[0]).toBeLessThan((shares[4] as number) / 2);
    },
  );

  it('ramps a new endpoint up over the window (weighted_round_robin)', async () => {
    const eps = testEndpoints(2);
    const { b, clock } = make(
      {
        loadBalancer: {
          policy: 'weighted_round_robin',
          slowStart: { window: 10_000, aggression: 1, minWeightPercent: 10 },
        },
      },
      eps,
    );
    const added = testEndpoints(3)[2]!;
    b.update(setOf([...eps, added], 2));
    const share = (): number => {
      let n = 0;
      for (let i = 0; i < 2000; i++) if (b.pick(ctx) === added) n++;
      return n / 2000;
    };
    // Endpoints present at the first update are not ramped.
    expect(b.stats().endpoints[0]!.effectiveWeight).toBe(1);
    expect(b.stats().endpoints[2]!.effectiveWeight).toBeCloseTo(0.1);
    const early = share();
    await clock.advance(5000);
    expect(b.stats().endpoints[2]!.effectiveWeight).toBeCloseTo(0.5);
    const mid = share();
    await clock.advance(5000);
    b.update(setOf([...eps, added], 3));
    const late = share();
    expect(early).toBeLessThan(0.07);
    expect(mid).toBeGreaterThan(early);
    expect(late).toBeGreaterThan(0.3);
  });

  it('ramps an endpoint again when it comes back from a failed health check', async () => {
    const eps = testEndpoints(2);
    const healthy = new Map<string, boolean>(eps.map((e) => [e.id, true]));
    const clock = new VirtualClock();
    const b = createBalancer(
      resolveBalancerConfig({
        loadBalancer: { policy: 'weighted_round_robin', slowStart: { window: 10_000, minWeightPercent: 10 } },
        healthCheck: {
          path: '/healthz',
          interval: 1_000,
          timeout: 500,
          healthyThreshold: 1,
          unhealthyThreshold: 1,
        },
      }),
      {
        service: 'api',
        clock,
        random: seededRandom(3),
        logger: recordingLogger(),
        probe: async (endpoint) => healthy.get(endpoint.id) ?? false,
      },
    );
    b.update(setOf(eps));
    await clock.advance(20_000);
    const second = (): number => b.stats().endpoints[1]!.effectiveWeight;
    expect(second()).toBe(1);
    healthy.set(eps[1]!.id, false);
    await clock.advance(1_000);
    expect(b.stats().endpoints[1]!.checkHealthy).toBe(false);
    healthy.set(eps[1]!.id, true);
    await clock.advance(1_000);
    expect(b.stats().endpoints[1]!.checkHealthy).toBe(true);
    expect(second()).toBeLessThan(0.5);
    await clock.advance(10_000);
    expect(second()).toBe(1);
    b.close();
  });

  it('aggression shapes the curve', async () => {
    const eps = testEndpoints(1);
    const { b, clock } = make(
      { loadBalancer: { slowStart: { window: 10_000, aggression: 2, minWeightPercent: 0 } } },
      eps,
    );
    b.update(setOf(testEndpoints(2), 2));
    await clock.advance(2500);
    expect(b.stats().endpoints[1]!.effectiveWeight).toBeCloseTo(0.5);
  });
});

describe('updates and stats', () => {
  it('keeps per-endpoint state across updates and drops removed endpoints', () => {
    const eps = testEndpoints(3);
    const { b } = make({ loadBalancer: { policy: 'least_request' } }, eps);
    b.onAttemptStart(eps[0]!);
    succeed(b, eps[1]!, 3);
    b.update(setOf([eps[1]!, eps[0]!], 2));
    const s = b.stats();
    expect(s.endpoints.map((e) => e.id)).toEqual([eps[1]!.id, eps[0]!.id]);
    expect(s.endpoints[0]).toMatchObject({ requests: 3, failures: 0 });
    expect(s.endpoints[1]).toMatchObject({ inflight: 1 });
    // Attempts to endpoints no longer in the set are ignored safely.
    b.onAttemptStart(eps[2]!);
    b.onAttemptEnd(eps[2]!, { status: 500, latencyMs: 1 });
  });

  it('cancels timers on close and ignores updates afterwards', async () => {
    const eps = testEndpoints(10);
    const { b, clock } = make({ outlierDetection: { baseEjectionTime: 100 } }, eps);
    fail(b, eps[0]!, 5);
    b.close();
    b.close();
    expect(clock.pendingTimers).toBe(0);
    await clock.runAll();
    expect(b.stats().endpoints[0]!.ejected).toBe(true);
  });

  it('an event listener can unsubscribe, and a throwing listener is logged', () => {
    const eps = testEndpoints(10);
    const { b, logger } = make({}, eps);
    const seen: BalancerEvent[] = [];
    const off = b.onEvent((e) => seen.push(e));
    b.onEvent(() => {
      throw new Error('boom');
    });
    fail(b, eps[0]!, 5);
    off();
    fail(b, eps[1]!, 5);
    expect(seen.filter((e) => e.type === 'eject')).toHaveLength(1);
    expect(logger.lines).toContainEqual({ level: 'error', message: expect.stringContaining('listener') });
  });

  it('is usable through the noop logger', () => {
    const b = createBalancer(resolveBalancerConfig(), {
      service: 'x',
      clock: new VirtualClock(),
      random: seededRandom(1),
      logger: noopLogger,
    });
    b.update(setOf(testEndpoints(2)));
    expect(b.pick(ctx)).toBeDefined();
    b.close();
  });
});

describe('an endpoint removed and added again while attempts are in flight', () => {
  it('is a new endpoint: the old attempts end without touching its in-flight count or statistics', () => {
    const eps = testEndpoints(2);
    const { b } = make({ outlierDetection: { consecutive5xx: 2 } }, eps);
    const a = eps[0]!;
    const old = [1, 2, 3, 4, 5].map(() => b.onAttemptStart(a));
    b.update(setOf([eps[1]!]));
    b.update(setOf(eps));
    const fresh = [1, 2, 3].map(() => b.onAttemptStart(a));
    expect(b.stats().endpoints[0]).toMatchObject({ id: a.id, inflight: 3 });
    // The five old attempts end, two of them 5xx: none is the new endpoint's.
    for (const [i, token] of old.entries())
      b.onAttemptEnd(a, { status: i < 2 ? 503 : 200, latencyMs: 1 }, token);
    expect(b.stats().endpoints[0]).toMatchObject({
      id: a.id,
      inflight: 3,
      requests: 0,
      failures: 0,
      ejected: false,
    });
    for (const token of fresh) b.onAttemptEnd(a, { status: 200, latencyMs: 1 }, token);
    expect(b.stats().endpoints[0]).toMatchObject({ inflight: 0, requests: 3 });
  });
});

describe('maglev tableSize below the number of endpoints', () => {
  it('is logged once as a warning (some endpoints would get no traffic), and again only after it was fixed', () => {
    const { b, logger } = make({ loadBalancer: { policy: 'maglev', tableSize: 3 } }, testEndpoints(5));
    const warned = () =>
      logger.lines.filter((l) => l.level === 'warn' && l.message.includes('tableSize')).length;
    expect(warned()).toBe(1);
    b.update(setOf(testEndpoints(6), 2));
    expect(warned()).toBe(1);
    b.update(setOf(testEndpoints(2), 3));
    b.update(setOf(testEndpoints(4), 4));
    expect(warned()).toBe(2);
    const ok = make({ loadBalancer: { policy: 'maglev', tableSize: 7 } }, testEndpoints(5));
    expect(ok.logger.lines.filter((l) => l.message.includes('tableSize'))).toEqual([]);
  });
});

describe('an active health check that passes ends an ejection (Envoy’s successful_active_health_check_uneject_host)', () => {
  async function ejectedThenChecked(uneject: boolean | undefined) {
    const eps = testEndpoints(3);
    const clock = new VirtualClock();
    const b = createBalancer(
      resolveBalancerConfig({
        healthCheck: { path: '/healthz', interval: 5_000, timeout: 500, healthyThreshold: 1 },
        ...(uneject === undefined
          ? {}
          : { outlierDetection: { successfulActiveHealthCheckUnejectHost: uneject } }),
      }),
      {
        service: 'api',
        clock,
        random: seededRandom(3),
        logger: noopLogger,
        probe: async () => true, // the backend answers its health check (restarted, fine again)
      },
    );
    const events: BalancerEvent[] = [];
    b.onEvent((e) => events.push(e));
    b.update(setOf(eps));
    await clock.advance(1); // the first checks (at once for new endpoints) have passed
    // Its requests in flight were reset as it restarted: five consecutive failures eject it.
    for (let i = 0; i < 5; i++) {
      b.onAttemptStart(eps[0]!);
      b.onAttemptEnd(eps[0]!, { failure: 'reset', latencyMs: 1 });
    }
    expect(b.stats().endpoints[0]!.ejected).toBe(true);
    await clock.advance(5_000); // the next health check
    const ejected = b.stats().endpoints[0]!.ejected;
    b.close();
    return { ejected, events };
  }

  it('by default: readmitted at its next passing check, not after baseEjectionTime (30 s)', async () => {
    const { ejected, events } = await ejectedThenChecked(undefined);
    expect(ejected).toBe(false);
    expect(events.map((e) => e.type)).toEqual(['eject', 'readmit']);
  });

  it('successfulActiveHealthCheckUnejectHost: false keeps it out for its ejection time', async () => {
    const { ejected } = await ejectedThenChecked(false);
    expect(ejected).toBe(true);
  });
});
