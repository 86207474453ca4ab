// The breaker keeps time only on the injected clock, and only while it needs to: its rolling
// window arms no recurring timer (virtual time costs nothing when idle), and opening it arms no
// real timer of opossum's.
import { type Clock, noopLogger, seededRandom, type Timer } from '@proxyless/core';
import { scriptedUpstream, testContext, VirtualClock } from '@proxyless/core/testing';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DestinationBreaker } from './breaker.js';
import { resolveResilienceConfig } from './config.js';
import { createPolicyStack, withPolicies } from './stack.js';

const DAY = 24 * 60 * 60 * 1000;

/** `base`, counting the timer callbacks it runs. */
function counting(base: VirtualClock): Clock & { fired: number } {
  const clock = {
    fired: 0,
    now: () => base.now(),
    wallNow: () => base.wallNow(),
    setTimer(ms: number, fn: () => void): Timer {
      return base.setTimer(ms, () => {
        clock.fired++;
        fn();
      });
    },
    sleep: (ms: number, signal?: AbortSignal) => base.sleep(ms, signal),
  };
  return clock;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('breaker window on virtual time', () => {
  it('a default-policy stack left idle for 30 days after a failed call fires no timer', async () => {
    const base = new VirtualClock();
    const clock = counting(base);
    const stack = createPolicyStack(resolveResilienceConfig(), {
      service: 'api',
      clock,
      random: seededRandom(1),
      logger: noopLogger,
    });
    const call = withPolicies(stack.filters, scriptedUpstream(['503']));
    const p = call(testContext({ clock: base })).then(
      (r) => r.status,
      () => 'error',
    );
    // Let the retries' backoffs run out (they are on the call's clock, not the stack's).
    while (await base.next()) if (base.now() > 60_000) break;
    expect(await p).toBe(503);
    // Nothing is left to fire: the window arms no recurring timer.
    expect(base.pendingTimers).toBe(0);
    const before = clock.fired;
    await base.advance(30 * DAY);
    expect(clock.fired - before).toBe(0);
    expect(base.pendingTimers).toBe(0);
    expect(stack.circuitBreakerState()).toBe('closed');
    stack.close();
  });

  it('runAll() stops when the call is over (it ran a window timer until its limit)', async () => {
    const clock = new VirtualClock();
    const stack = createPolicyStack(resolveResilienceConfig({ retry: false }), {
      service: 'api',
      clock,
      random: seededRandom(1),
      logger: noopLogger,
    });
    const call = withPolicies(stack.filters, scriptedUpstream([{ status: 503, delayMs: 15 }]));
    const p = call(testContext({ clock })).then((r) => r.status);
    await clock.runAll();
    expect(await p).toBe(503);
    expect(clock.now()).toBe(15);
    stack.close();
  });

  it('still counts each outcome in its bucket and drops it a window later', async () => {
    const clock = new VirtualClock();
    const breaker = new DestinationBreaker(
      { volumeThreshold: 100, rollingWindowMs: 10_000 },
      { clock, service: 'api' },
    );
    const fail = (): void => {
      const kind = breaker.admit(testContext({ clock }));
      if (kind !== 'normal') throw new Error(`not admitted: ${String(kind)}`);
      breaker.settle(kind, 503, undefined);
    };
    const failuresAt = async (t: number): Promise<number> => {
      await clock.advance(t - clock.now());
      return breaker.stats.failures;
    };
    fail(); // t = 0: bucket [0, 1000)
    await clock.advance(4_500);
    fail(); // bucket [4000, 5000)
    expect(await failuresAt(9_999)).toBe(2);
    expect(await failuresAt(10_000)).toBe(1); // the first bucket left the window
    expect(await failuresAt(13_999)).toBe(1);
    expect(await failuresAt(14_000)).toBe(0); // so did the second one's
    fail();
    // Far beyond the window: everything is gone, however many buckets elapsed.
    expect(await failuresAt(14_000 + 10 * 60_000)).toBe(0);
    expect(breaker.stats.fires).toBe(0);
    breaker.close();
  });
});

describe('opening the breaker', () => {
  it("arms no real timer (opossum's reset timer) and reads no real clock as it opens", () => {
    const clock = new VirtualClock();
    const breaker = new DestinationBreaker(
      { volumeThreshold: 3, errorThresholdPercentage: 50, resetTimeoutMs: 1000 },
      { clock, service: 'api' },
    );
    const forced = new DestinationBreaker({}, { clock, service: 'api' });
    // Spied after construction: opossum's constructor reads Date.now() once (for its toJSON state).
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    const dateNow = vi.spyOn(Date, 'now');
    for (let i = 0; i < 3; i++) {
      const kind = breaker.admit(testContext({ clock }));
      if (kind !== 'normal') throw new Error(`not admitted: ${String(kind)}`);
      breaker.settle(kind, 503, undefined);
    }
    expect(breaker.state).toBe('open');
    forced.open();
    expect(forced.state).toBe('open');
    expect(setTimeoutSpy).not.toHaveBeenCalled();
    expect(dateNow).not.toHaveBeenCalled();
    // Its own reset timer is on the clock.
    expect(clock.pendingTimers).toBe(2);
    breaker.close();
    forced.close();
  });

  it('still goes open → half-open → closed on the clock', async () => {
    const clock = new VirtualClock();
    const breaker = new DestinationBreaker(
      { volumeThreshold: 1, resetTimeoutMs: 1000 },
      { clock, service: 'api' },
    );
    breaker.open();
    await clock.advance(999);
    expect(breaker.state).toBe('open');
    await clock.advance(1);
    expect(breaker.state).toBe('half-open');
    const kind = breaker.admit(testContext({ clock }));
    expect(kind).toBe('trial');
    breaker.settle('trial', 200, undefined);
    expect(breaker.state).toBe('closed');
    expect(breaker.transitions.map((t) => [t.at, t.state])).toEqual([
      [0, 'open'],
      [1000, 'half-open'],
      [1000, 'closed'],
    ]);
    expect(clock.pendingTimers).toBe(0);
    breaker.close();
  });
});
