import { Issues } from '@proxyless/core';
import { VirtualClock } from '@proxyless/core/testing';
import { describe, expect, it } from 'vitest';
import { createCircuitBreakerFilter } from './breaker.js';
import { parseResiliencePatch, resolveResilienceConfig } from './config.js';
import { createDeadlineFilter, createPerTryTimeoutFilter } from './deadline.js';
import { createFaultInjectionFilter } from './fault.js';
import { createHedgeFilter } from './hedge.js';
import { createConcurrencyLimitFilter, createRateLimitFilter } from './limits.js';
import { createRetryFilter } from './retry.js';

/** The error a factory throws, as `{ code, issues: [field, value] }`. */
function refusal(fn: () => unknown): unknown {
  try {
    fn();
    return 'accepted';
  } catch (e) {
    const err = e as { code?: string; details?: { issues?: { field: string; value: unknown }[] } };
    return { code: err.code, issues: err.details?.issues?.map((i) => [i.field, i.value]) };
  }
}

describe('a policy factory used alone checks its settings as the config does (probe29)', () => {
  it.each([
    [
      'a negative rate (spun the CPU on the second call)',
      () => createRateLimitFilter({ rps: -5, burst: 1 }),
      [['rps', -5]],
    ],
    ['a zero rate', () => createRateLimitFilter({ rps: 0 }), [['rps', 0]]],
    ['a fractional burst', () => createRateLimitFilter({ rps: 10, burst: 1.5 }), [['burst', 1.5]]],
    ['a concurrency limit of 0', () => createConcurrencyLimitFilter({ max: 0 }), [['max', 0]]],
    [
      'a negative queue and a NaN queue timeout',
      () => createConcurrencyLimitFilter({ max: 2, queue: -1, queueTimeoutMs: Number.NaN }),
      [
        ['queue', -1],
        ['queueTimeoutMs', Number.NaN],
      ],
    ],
    [
      'an unknown retry condition',
      () => createRetryFilter({ retryOn: ['teapot' as never] }),
      [['retryOn', ['teapot']]],
    ],
    ['a fractional retry count', () => createRetryFilter({ maxRetries: 1.5 }), [['maxRetries', 1.5]]],
    ['a negative retry count', () => createRetryFilter({ maxRetries: -1 }), [['maxRetries', -1]]],
    // These ran with no timeout at all: a call that hangs never settled (probe43 3).
    [
      'a timeout as a duration string',
      () => createDeadlineFilter({ timeoutMs: '1s' as never }),
      [['timeoutMs', '1s']],
    ],
    ['a negative timeout', () => createDeadlineFilter({ timeoutMs: -100 }), [['timeoutMs', -100]]],
    [
      'a NaN per-try timeout',
      () => createPerTryTimeoutFilter({ perTryTimeoutMs: Number.NaN }),
      [['perTryTimeoutMs', Number.NaN]],
    ],
    [
      'a negative per-try timeout',
      () => createPerTryTimeoutFilter({ perTryTimeoutMs: -5 }),
      [['perTryTimeoutMs', -5]],
    ],
  ] as const)('%s is refused, naming the field and value', (_name, make, issues) => {
    expect(refusal(make)).toEqual({ code: 'MESH_CONFIG_INVALID', issues });
  });

  it('new settings given to a live filter are checked too; the old ones stay', () => {
    const rate = createRateLimitFilter({ rps: 5 });
    expect(refusal(() => rate.reconfigure({ rps: -1 }))).toEqual({
      code: 'MESH_CONFIG_INVALID',
      issues: [['rps', -1]],
    });
    const limit = createConcurrencyLimitFilter({ max: 2 });
    expect(refusal(() => limit.reconfigure({ max: 0 }))).toMatchObject({ code: 'MESH_CONFIG_INVALID' });
  });

  it('valid settings are taken as they are', () => {
    expect(refusal(() => createRateLimitFilter({ rps: 0.5 }))).toBe('accepted');
    expect(refusal(() => createConcurrencyLimitFilter({ max: 1, queue: 0, queueTimeoutMs: 0 }))).toBe(
      'accepted',
    );
    expect(refusal(() => createRetryFilter({ maxRetries: 0, retryOn: [] }))).toBe('accepted');
    expect(refusal(() => createDeadlineFilter({ timeoutMs: 0 }))).toBe('accepted');
    expect(refusal(() => createPerTryTimeoutFilter({ perTryTimeoutMs: 250 }))).toBe('accepted');
  });
});

describe("settings in the config document's shape given to a factory or a hand-written patch (probe31 types 3)", () => {
  // From JavaScript nothing stops `base: '100ms'` reaching a factory that reads `baseMs`: the
  // backoff was NaN and every retry went at once; `resetTimeout` stayed 30 s. Now named.
  const deps = { clock: new VirtualClock(), service: 'api' };
  it.each([
    [
      'backoff base and max as durations',
      () => createRetryFilter({ backoff: { base: '100ms', max: '1s' } } as never),
      [
        ['backoff.base', 'base'],
        ['backoff.max', 'max'],
      ],
    ],
    [
      'a backoff that is no number of ms',
      () => createRetryFilter({ backoff: { baseMs: '100', maxMs: 1000 } } as never),
      [['backoff.baseMs', '100']],
    ],
    [
      'a breaker reset timeout as a duration',
      () => createCircuitBreakerFilter({ resetTimeout: '10s' } as never, deps),
      [['resetTimeout', 'resetTimeout']],
    ],
    [
      'a hedge delay as a duration',
      () => createHedgeFilter({ delay: '50ms' } as never),
      [['delay', 'delay']],
    ],
    [
      'a misspelt concurrency queue',
      () => createConcurrencyLimitFilter({ max: 2, queu: 1 } as never),
      [['queu', 'queu']],
    ],
    [
      'a misspelt fault',
      () => createFaultInjectionFilter({ abort: { percentage: 5, status: 503 } } as never),
      [['abort.percentage', 'percentage']],
    ],
    [
      'a hand-written patch to resolveResilienceConfig',
      () => resolveResilienceConfig({ circuitBreaker: { resetTimeout: '10s', volumeThreshold: 5 } } as never),
      [['circuitBreaker.resetTimeout', 'resetTimeout']],
    ],
    [
      'the second of several patches',
      () => resolveResilienceConfig({ timeoutMs: 100 }, { retry: { maxRetrys: 1 } } as never),
      [['patches[1].retry.maxRetrys', 'maxRetrys']],
    ],
  ] as const)('%s is refused, naming the key', (_name, make, issues) => {
    expect(refusal(make)).toEqual({ code: 'MESH_CONFIG_INVALID', issues });
  });

  it('patches in the parsed shape, and what the parser made, are taken as they are', () => {
    expect(refusal(() => createRetryFilter({ backoff: { baseMs: 100, maxMs: 1000 } }))).toBe('accepted');
    expect(
      refusal(() => resolveResilienceConfig({ timeoutMs: 100, circuitBreaker: { resetTimeoutMs: 10_000 } })),
    ).toBe('accepted');
    const parsed = parseResiliencePatch({ retry: { backoff: { base: '10ms' } } }, 'policy', new Issues());
    expect(refusal(() => resolveResilienceConfig(parsed!))).toBe('accepted');
  });
});

describe('hedge and circuit breaker settings given directly are checked as the sections are', () => {
  const clock = new VirtualClock();
  it('createHedgeFilter refuses maxHedges outside 1..5, a non-number, a negative delay', () => {
    expect(refusal(() => createHedgeFilter({ maxHedges: 99, delayMs: 1 }))).toEqual({
      code: 'MESH_CONFIG_INVALID',
      issues: [['maxHedges', 99]],
    });
    expect(refusal(() => createHedgeFilter({ maxHedges: 'x' as never }))).toMatchObject({
      issues: [['maxHedges', 'x']],
    });
    expect(refusal(() => createHedgeFilter({ delayMs: -5 }))).toMatchObject({ issues: [['delayMs', -5]] });
    expect(refusal(() => createHedgeFilter({ percentile: 100 }))).toMatchObject({
      issues: [['percentile', 100]],
    });
    expect(refusal(() => createHedgeFilter({ maxHedges: 2, delayMs: 20 }))).toBe('accepted');
  });

  it('the circuit breaker refuses a volumeThreshold of 0, a negative resetTimeoutMs, a percentage above 100', () => {
    const make = (c: object) => () => createCircuitBreakerFilter(c as never, { clock, service: 'api' });
    expect(refusal(make({ volumeThreshold: 0 }))).toEqual({
      code: 'MESH_CONFIG_INVALID',
      issues: [['volumeThreshold', 0]],
    });
    expect(refusal(make({ volumeThreshold: 'x' }))).toMatchObject({ issues: [['volumeThreshold', 'x']] });
    expect(refusal(make({ resetTimeoutMs: -1, errorThresholdPercentage: 500 }))).toMatchObject({
      issues: [
        ['errorThresholdPercentage', 500],
        ['resetTimeoutMs', -1],
      ],
    });
  });

  it('runPolicy with a hand-written patch gets the same refusal (it was run as written)', async () => {
    const { runPolicy } = await import('./testing.js');
    await expect(runPolicy({ timeoutMs: 1000, hedge: { maxHedges: 99, delayMs: 1 } }, [200])).rejects.toThrow(
      /maxHedges: expected an integer 1\.\.5, got 99/,
    );
    await expect(runPolicy({ circuitBreaker: { volumeThreshold: 0 } }, [200])).rejects.toThrow(
      /volumeThreshold: expected an integer ≥ 1, got 0/,
    );
  });
});
