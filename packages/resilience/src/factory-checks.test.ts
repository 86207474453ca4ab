import { describe, expect, it } from 'vitest';
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
  });
});
