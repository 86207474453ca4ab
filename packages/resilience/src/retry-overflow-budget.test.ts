import { Issues, noopLogger, seededRandom } from '@proxyless/core';
import { recordingObserver, scriptedUpstream, testContext, VirtualClock } from '@proxyless/core/testing';
import { describe, expect, it } from 'vitest';
import { parseResiliencePatch, resolveResilienceConfig } from './config.js';
import { createPolicyStack, withPolicies } from './stack.js';

describe('a retry refused by circuitBreaker.maxRetries gives its budget unit back (probe8 defect 1)', () => {
  // It was withdrawn before the gate refused the retry and never returned: with a budget of 3
  // retries per window, three refused retries left none, and the fourth call (and a later hedge)
  // gave up as budget_exhausted though no retry had ever been sent.
  it('four overflowing calls all give up as retry_overflow; the budget is untouched', async () => {
    const clock = new VirtualClock();
    const issues = new Issues();
    const patch = parseResiliencePatch(
      {
        retry: {
          maxRetries: 1,
          retryOn: ['5xx'],
          budget: { ratio: 0, minPerSecond: 0.3, window: '10s' },
          backoff: { base: '1ms' },
        },
        circuitBreaker: { maxRetries: 0, volumeThreshold: 1000 },
      },
      'services.api',
      issues,
    );
    issues.throwIfAny('bad policy');
    const config = resolveResilienceConfig(patch ?? {});
    const stack = createPolicyStack(config, {
      service: 'api',
      clock,
      random: seededRandom(1),
      logger: noopLogger,
    });
    const call = withPolicies(stack.filters, scriptedUpstream([503]));
    const reasons: string[] = [];
    for (let i = 0; i < 4; i++) {
      const observer = recordingObserver();
      const done = call(testContext({ clock, observer }));
      await clock.advance(100);
      expect((await done).status).toBe(503);
      for (const e of observer.events)
        if (e.type === 'give_up') reasons.push(String(e.reason).split(' ')[0] as string);
    }
    expect(reasons).toEqual(['retry_overflow', 'retry_overflow', 'retry_overflow', 'retry_overflow']);
    stack.close();
  });
});
