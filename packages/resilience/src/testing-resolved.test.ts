// runPolicy tells a resolved config from a patch by where it came from (resolveResilienceConfig),
// not by its keys: a patch may have exactly the keys a resolved config has.
import { Issues } from '@proxyless/core';
import { describe, expect, it, vi } from 'vitest';
import {
  DEFAULT_RESILIENCE_CONFIG,
  isResolvedConfig,
  parseResiliencePatch,
  type ResiliencePatch,
  resolveResilienceConfig,
} from './config.js';
import { runPolicy } from './testing.js';

const FOUR_SECTIONS = {
  timeout: '1s',
  retry: { maxRetries: 1 },
  hedge: { delay: '50ms' },
  faultInjection: { abort: { percent: 0 } },
} as const;

function parsed(doc: Record<string, unknown>): ResiliencePatch {
  const issues = new Issues();
  const patch = parseResiliencePatch(doc, 'svc', issues);
  issues.throwIfAny('test');
  return patch!;
}

describe('runPolicy with timeout, retry, hedge and faultInjection together', () => {
  it('runs the document shape (it crashed: taken for a resolved config, never resolved)', async () => {
    const rec = await runPolicy(FOUR_SECTIONS, ['503', 200]);
    expect(rec.attempts.map((a) => a.outcome)).toEqual([503, 200]);
    expect(rec.status).toBe(200);
  });

  it('resolves a parsed patch with those keys over the defaults', async () => {
    const rec = await runPolicy(parsed(FOUR_SECTIONS), ['503', 200]);
    expect(rec.status).toBe(200);
    // Defaults a patch leaves unset are applied: the backoff max follows the base (10×).
    const doc = {
      timeout: '10s',
      retry: { maxRetries: 4, backoff: { base: '100ms' } },
      hedge: false,
      faultInjection: false,
    } as const;
    const byPatch = await runPolicy(parsed(doc), ['503'], { seed: 3 });
    const byConfig = await runPolicy(resolveResilienceConfig(parsed(doc)), ['503'], { seed: 3 });
    expect(byPatch.attempts.map((a) => a.backoffMs)).toEqual(byConfig.attempts.map((a) => a.backoffMs));
    expect(byPatch.attempts).toHaveLength(5);
  });

  it('checks a hand-written patch with those keys for misspelt keys', async () => {
    await expect(
      runPolicy(
        // @ts-expect-error: maxRetrys is not a retry key
        { timeoutMs: 1000, retry: { maxRetrys: 1 }, hedge: false, faultInjection: false },
        ['503', 200],
      ),
    ).rejects.toMatchObject({ code: 'MESH_CONFIG_INVALID', message: expect.stringContaining('maxRetrys') });
  });

  it('uses a resolved config as it is', async () => {
    const config = resolveResilienceConfig({ timeoutMs: 500, retry: false });
    const rec = await runPolicy(config, ['hang']);
    expect([rec.error?.code, rec.endedAt]).toEqual(['MESH_TIMEOUT', 500]);
  });
});

describe('isResolvedConfig', () => {
  it('is true for what resolveResilienceConfig returns and the defaults, false for look-alikes', () => {
    const config = resolveResilienceConfig({ timeoutMs: 500 });
    expect(isResolvedConfig(config)).toBe(true);
    expect(isResolvedConfig(DEFAULT_RESILIENCE_CONFIG)).toBe(true);
    expect(isResolvedConfig({ ...config })).toBe(false);
    expect(isResolvedConfig(parsed(FOUR_SECTIONS))).toBe(false);
    expect(isResolvedConfig(undefined)).toBe(false);
  });
});

describe('across copies of this package (proxyless bundles one)', () => {
  it("a patch parsed and a config resolved by one copy are that to the other copy's runPolicy", async () => {
    vi.resetModules();
    const other = await import('./testing.js');
    const otherConfig = await import('./config.js');
    expect(other.runPolicy).not.toBe(runPolicy);
    const doc = {
      retry: { maxRetries: 2, backoff: { base: '10ms' } },
      circuitBreaker: { errorThresholdPercentage: 60 },
    };
    // Parsed here, run there (its fields are the parsed ones: `baseMs`, not `base`), and back.
    const there = await other.runPolicy(parsed(doc), ['503', '503', 200]);
    expect(there.attempts.map((a) => a.outcome)).toEqual([503, 503, 200]);
    const issues = new Issues();
    const patch = otherConfig.parseResiliencePatch(doc, 'svc', issues);
    const back = await runPolicy(patch!, ['503', '503', 200]);
    expect(back.attempts.map((a) => a.outcome)).toEqual([503, 503, 200]);
    expect(isResolvedConfig(otherConfig.resolveResilienceConfig({ timeoutMs: 500 }))).toBe(true);
  });
});
