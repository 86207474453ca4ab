import { VirtualClock } from '@proxyless/core/testing';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RetryBudget } from './budget.js';
import { DEFAULT_RETRY } from './config.js';
import { backoffDelay } from './retry.js';

describe('retry budget (properties)', () => {
  it('never grants more than ratio × requests + reserve within one window', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 0, max: 20 }),
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 50 })), { maxLength: 300 }),
        async (ratio, minPerSecond, ops) => {
          const clock = new VirtualClock();
          const windowMs = 10_000;
          const budget = new RetryBudget({ ratio, minPerSecond, windowMs }, clock);
          let requests = 0;
          let granted = 0;
          let elapsed = 0;
          for (const [isRequest, step] of ops) {
            // Stay inside the first bucket's lifetime so nothing slides out of the window.
            if (elapsed + step < windowMs / 10) {
              elapsed += step;
              await clock.advance(step);
            }
            if (isRequest) {
              budget.recordRequest();
              requests++;
            } else if (budget.tryWithdraw()) {
              granted++;
            }
          }
          expect(granted).toBeLessThanOrEqual(ratio * requests + (minPerSecond * windowMs) / 1000 + 1e-9);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('forgets requests and retries once they leave the window', async () => {
    const clock = new VirtualClock();
    const budget = new RetryBudget({ ratio: 0.5, minPerSecond: 0, windowMs: 1000 }, clock);
    for (let i = 0; i < 10; i++) budget.recordRequest();
    for (let i = 0; i < 5; i++) expect(budget.tryWithdraw()).toBe(true);
    expect(budget.tryWithdraw()).toBe(false);
    await clock.advance(1000);
    expect(budget.snapshot()).toEqual({ requests: 0, retries: 0 });
    expect(budget.tryWithdraw()).toBe(false);
  });
});

describe('backoff (properties)', () => {
  it('is always within [0, min(max, base·2^(n-1)))', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 1, max: 10 }),
        fc.double({ min: 0, max: 0.999999, noNaN: true }),
        (baseMs, extra, n, r) => {
          const config = { ...DEFAULT_RETRY, backoff: { baseMs, maxMs: baseMs + extra } };
          const d = backoffDelay(config, n, () => r);
          expect(d).toBeGreaterThanOrEqual(0);
          expect(d).toBeLessThanOrEqual(Math.min(baseMs + extra, baseMs * 2 ** (n - 1)));
        },
      ),
    );
  });
});

describe('retry budget refund', () => {
  it('gives back a retry that was never sent, from a later bucket too, and never goes below 0', async () => {
    const clock = new VirtualClock();
    const budget = new RetryBudget({ ratio: 0, minPerSecond: 0.1, windowMs: 10_000 }, clock);
    expect(budget.tryWithdraw()).toBe(true);
    expect(budget.tryWithdraw()).toBe(false);
    await clock.advance(2500); // the retry sits in an older bucket now
    budget.refund();
    expect(budget.snapshot().retries).toBe(0);
    expect(budget.tryWithdraw()).toBe(true);
    budget.refund();
    budget.refund();
    expect(budget.snapshot().retries).toBe(0);
  });
});
