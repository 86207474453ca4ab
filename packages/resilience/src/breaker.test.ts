import { type Clock, MeshError } from '@proxyless/core';
import { scriptedUpstream, testContext, VirtualClock } from '@proxyless/core/testing';
import { describe, expect, it } from 'vitest';
import { createCircuitBreakerFilter, DestinationBreaker } from './breaker.js';
import { withPolicies } from './stack.js';

const CONFIG = {
  volumeThreshold: 10,
  errorThresholdPercentage: 50,
  rollingWindowMs: 10_000,
  resetTimeoutMs: 5_000,
};

async function calls(
  breaker: DestinationBreaker,
  clock: VirtualClock,
  script: Parameters<typeof scriptedUpstream>[0],
  n: number,
) {
  const upstream = scriptedUpstream(script);
  const call = withPolicies([breaker.filter()], upstream);
  const out: Array<number | string> = [];
  for (let i = 0; i < n; i++) {
    try {
      const r = await call(testContext({ clock }));
      out.push(r.status);
    } catch (e) {
      out.push(MeshError.is(e) ? e.code : 'error');
    }
  }
  return { out, upstream };
}

describe('circuit breaker', () => {
  it('opens when the error rate passes the threshold after the volume threshold', async () => {
    const clock = new VirtualClock();
    const breaker = new DestinationBreaker(CONFIG, { clock, service: 'api' });
    const { out, upstream } = await calls(breaker, clock, ['503'], 12);
    // Nine failures are under the volume threshold; the tenth opens it.
    expect(out.slice(0, 10)).toEqual(Array(10).fill(503));
    expect(out.slice(10)).toEqual(['MESH_CIRCUIT_OPEN', 'MESH_CIRCUIT_OPEN']);
    expect(upstream.calls).toHaveLength(10);
    expect(breaker.state).toBe('open');
    breaker.close();
  });

  it('checks the rule on a success too: 11 failures then 9 successes (55 % of 20) open it at the 20th (probe31 envoy 2)', async () => {
    const clock = new VirtualClock();
    const breaker = new DestinationBreaker({ ...CONFIG, volumeThreshold: 20 }, { clock, service: 'api' });
    const { out, upstream } = await calls(
      breaker,
      clock,
      [...Array(11).fill('503'), ...Array(10).fill(200)],
      21,
    );
    expect(out.slice(0, 20)).toEqual([...Array(11).fill(503), ...Array(9).fill(200)]);
    expect(breaker.state).toBe('open');
    expect(out[20]).toBe('MESH_CIRCUIT_OPEN');
    expect(upstream.calls).toHaveLength(20);
    breaker.close();
  });

  it('a success after the failures left the window opens nothing (the rule sees the window as it is)', async () => {
    const clock = new VirtualClock();
    const breaker = new DestinationBreaker({ ...CONFIG, volumeThreshold: 20 }, { clock, service: 'api' });
    await calls(breaker, clock, ['503'], 11);
    await clock.advance(CONFIG.rollingWindowMs);
    const { out } = await calls(breaker, clock, [200], 20);
    expect(out).toEqual(Array(20).fill(200));
    expect(breaker.state).toBe('closed');
    breaker.close();
  });

  it('names the destination in MESH_CIRCUIT_OPEN', async () => {
    const clock = new VirtualClock();
    const breaker = new DestinationBreaker(CONFIG, { clock, service: 'payments' });
    breaker.open();
    const p = withPolicies([breaker.filter()], scriptedUpstream([200]))(testContext({ clock }));
    await expect(p).rejects.toSatisfy(
      (e: unknown) =>
        MeshError.is(e, 'MESH_CIRCUIT_OPEN') &&
        e.details.service === 'payments' &&
        /payments/.test(e.message),
    );
    breaker.close();
  });

  it('stays closed below the error threshold', async () => {
    const clock = new VirtualClock();
    const breaker = new DestinationBreaker(CONFIG, { clock, service: 'api' });
    const { out } = await calls(breaker, clock, [200, '503', 200, 200], 40);
    expect(out).not.toContain('MESH_CIRCUIT_OPEN');
    expect(breaker.state).toBe('closed');
    breaker.close();
  });

  it('open → half-open after resetTimeout on the clock → closed after a good trial', async () => {
    const clock = new VirtualClock();
    const breaker = new DestinationBreaker(CONFIG, { clock, service: 'api' });
    await calls(breaker, clock, ['503'], 10);
    expect(breaker.state).toBe('open');
    await clock.advance(4_999);
    expect(breaker.state).toBe('open');
    await clock.advance(1);
    expect(breaker.state).toBe('half-open');
    const { out, upstream } = await calls(breaker, clock, [200], 3);
    expect(out).toEqual([200, 200, 200]);
    expect(upstream.calls).toHaveLength(3);
    expect(breaker.state).toBe('closed');
    expect(breaker.transitions.map((t) => [t.at, t.state])).toEqual([
      [0, 'open'],
      [5000, 'half-open'],
      [5000, 'closed'],
    ]);
    // The window started afresh: one failure does not re-open it.
    await calls(breaker, clock, ['503'], 1);
    expect(breaker.state).toBe('closed');
    breaker.close();
  });

  it('half-open → open again when the trial fails, and only halfOpenMaxCalls trials run', async () => {
    const clock = new VirtualClock();
    const breaker = new DestinationBreaker({ ...CONFIG, halfOpenMaxCalls: 1 }, { clock, service: 'api' });
    breaker.open();
    await clock.advance(5_000);
    expect(breaker.state).toBe('half-open');
    const slow = scriptedUpstream([{ status: 503, delayMs: 10 }]);
    const call = withPolicies([breaker.filter()], slow);
    const trial = call(testContext({ clock }));
    const second = call(testContext({ clock }));
    await expect(second).rejects.toMatchObject({
      code: 'MESH_CIRCUIT_OPEN',
      details: { reason: 'half_open_busy' },
    });
    await clock.advance(10);
    expect((await trial).status).toBe(503);
    expect(breaker.state).toBe('open');
    expect(breaker.openedAt).toBe(5_010);
    // An open breaker says when it half-opens.
    await clock.advance(1_500);
    await expect(call(testContext({ clock }))).rejects.toMatchObject({
      code: 'MESH_CIRCUIT_OPEN',
      details: { reason: 'open', openedAt: 5_010, retryAfterMs: 3_500 },
    });
    await clock.advance(3_500);
    expect(breaker.state).toBe('half-open');
    breaker.close();
  });

  it('half-opens at the first attempt after resetTimeout even when its timer has not run (a starved event loop)', async () => {
    // A caller that loops on calls failing fast (MESH_CIRCUIT_OPEN settles in microtasks) keeps
    // the event loop from ever reaching its timers: the breaker must not wait for its reset timer
    // to let the trial through, or it stays open for as long as the loop runs.
    let now = 0;
    const timers: Array<() => void> = [];
    const starved: Clock = {
      now: () => now,
      setTimer: (_ms, fn) => {
        timers.push(fn);
        return { cancel() {} };
      },
      sleep: () => new Promise(() => {}),
    };
    const states: string[] = [];
    const breaker = new DestinationBreaker(CONFIG, {
      clock: starved,
      service: 'api',
      onStateChange: (s) => states.push(s),
    });
    breaker.open();
    expect(timers).toHaveLength(1);
    const call = withPolicies([breaker.filter()], scriptedUpstream([200, 200]));
    now = 4_999;
    await expect(call(testContext({ clock: starved }))).rejects.toMatchObject({
      code: 'MESH_CIRCUIT_OPEN',
      details: { reason: 'open', retryAfterMs: 1 },
    });
    now = 5_000;
    expect((await call(testContext({ clock: starved }))).status).toBe(200);
    expect(breaker.state).toBe('closed');
    expect(states).toEqual(['open', 'half-open', 'closed']);
    expect(breaker.transitions.map((t) => [t.at, t.state])).toEqual([
      [0, 'open'],
      [5_000, 'half-open'],
      [5_000, 'closed'],
    ]);
    // The timer, if it runs late after all, changes nothing.
    for (const fn of timers) fn();
    expect(breaker.state).toBe('closed');
    expect(states).toHaveLength(3);
    breaker.close();
  });

  it('lets another trial through once a trial has had no outcome for resetTimeout (one hung trial cannot hold it shut)', async () => {
    // Polly's rule (PermitHalfOpenCircuitTest): one trial per break duration. Without it a trial
    // sent to an endpoint that never answers held the only half-open slot until undici's 300 s
    // headersTimeout, and every call to the destination, healthy endpoints included, was refused.
    const clock = new VirtualClock();
    const breaker = new DestinationBreaker({ ...CONFIG, halfOpenMaxCalls: 1 }, { clock, service: 'api' });
    breaker.open();
    await clock.advance(5_000);
    expect(breaker.state).toBe('half-open');
    const call = withPolicies(
      [breaker.filter()],
      scriptedUpstream([{ status: 503, delayMs: 600_000 }, 200, 200]),
    );
    const hung = call(testContext({ clock }));
    await clock.advance(4_999);
    await expect(call(testContext({ clock }))).rejects.toMatchObject({
      code: 'MESH_CIRCUIT_OPEN',
      details: { reason: 'half_open_busy', retryAfterMs: 1 },
    });
    await clock.advance(1);
    expect((await call(testContext({ clock }))).status).toBe(200);
    expect(breaker.state).toBe('closed');
    // The hung trial's late 503 is an attempt of a breaker that has closed since: counted, not a trial verdict.
    await clock.advance(600_000);
    expect((await hung).status).toBe(503);
    expect(breaker.state).toBe('closed');
    expect(breaker.transitions.map((t) => [t.at, t.state])).toEqual([
      [0, 'open'],
      [5_000, 'half-open'],
      [10_000, 'closed'],
    ]);
    breaker.close();
  });

  it('says retryAfterMs in whole milliseconds, rounded up, on a clock that reads fractions', async () => {
    // The real clock reads fractions (performance.now()): it said 499.00541599999997.
    const clock = new VirtualClock(0.25);
    const breaker = new DestinationBreaker(CONFIG, { clock, service: 'api' });
    breaker.open();
    await clock.advance(1_000.5);
    const call = withPolicies([breaker.filter()], scriptedUpstream([{ status: 200 }]));
    await expect(call(testContext({ clock }))).rejects.toMatchObject({
      code: 'MESH_CIRCUIT_OPEN',
      details: { reason: 'open', retryAfterMs: 4_000 },
    });
    breaker.close();
  });

  it('forgets failures that leave the rolling window', async () => {
    const clock = new VirtualClock();
    const breaker = new DestinationBreaker(CONFIG, { clock, service: 'api' });
    await calls(breaker, clock, ['503'], 9);
    await clock.advance(11_000);
    expect(breaker.stats.fires).toBe(0);
    await calls(breaker, clock, ['503'], 9);
    expect(breaker.state).toBe('closed');
    breaker.close();
  });

  it('counts transport errors as failures and caller aborts as successes', async () => {
    const clock = new VirtualClock();
    const breaker = new DestinationBreaker({ ...CONFIG, volumeThreshold: 2 }, { clock, service: 'api' });
    const aborted = async () => {
      throw new MeshError('MESH_ABORTED', 'caller');
    };
    const call = withPolicies([breaker.filter()], aborted);
    for (let i = 0; i < 4; i++) await call(testContext({ clock })).catch(() => undefined);
    expect(breaker.state).toBe('closed');
    await calls(breaker, clock, ['connect-error', 'reset'], 4);
    expect(breaker.state).toBe('closed'); // 4 of 8 = 50%, not above the threshold
    await calls(breaker, clock, ['reset'], 1);
    expect(breaker.state).toBe('open');
    breaker.close();
  });

  it('rejects beyond maxRequests concurrent calls', async () => {
    const clock = new VirtualClock();
    const f = createCircuitBreakerFilter({ maxRequests: 2 }, { clock, service: 'api' });
    const call = withPolicies([f], scriptedUpstream([{ status: 200, delayMs: 10 }]));
    const a = call(testContext({ clock }));
    const b = call(testContext({ clock }));
    await expect(call(testContext({ clock }))).rejects.toMatchObject({
      code: 'MESH_CIRCUIT_OPEN',
      details: { reason: 'maxRequests' },
    });
    expect(f.breaker.active).toBe(2);
    await clock.advance(10);
    await Promise.all([a, b]);
    expect(f.breaker.active).toBe(0);
    f.breaker.close();
  });

  it('close() stops its timers', async () => {
    const clock = new VirtualClock();
    const breaker = new DestinationBreaker(CONFIG, { clock, service: 'api' });
    // Closed, it arms none (its window rotates lazily); open, it holds its reset timer.
    expect(clock.pendingTimers).toBe(0);
    breaker.open();
    expect(clock.pendingTimers).toBe(1);
    breaker.close();
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('circuit breaker after close()', () => {
  it('lets attempts pass straight through', async () => {
    const clock = new VirtualClock();
    const breaker = new DestinationBreaker(CONFIG, { clock, service: 'api' });
    breaker.open();
    breaker.close();
    const r = await withPolicies([breaker.filter()], scriptedUpstream([200]))(testContext({ clock }));
    expect(r.status).toBe(200);
  });
});
