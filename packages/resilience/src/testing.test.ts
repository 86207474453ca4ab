import { describe, expect, it } from 'vitest';
import { runPolicy } from './testing.js';

describe('runPolicy input', () => {
  it('takes the config-document shape and validates it like createMesh', async () => {
    const rec = await runPolicy(
      { timeout: '1s', retry: { maxRetries: 1, backoff: { base: '10ms', max: '10ms' } } },
      ['503', 200],
    );
    expect(rec.attempts.map((a) => a.outcome)).toEqual([503, 200]);
    await expect(runPolicy({ retry: { maxRetrys: 2 } }, [200])).rejects.toThrow(
      /policy\.retry\.maxRetrys[\s\S]*did you mean "maxRetries"/,
    );
  });
});
