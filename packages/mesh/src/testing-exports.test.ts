import * as testing from 'proxyless/testing';
import {
  createDeadlineFilter,
  createRetryFilter,
  Issues,
  parseResiliencePatch,
  resolveResilienceConfig,
  scriptedUpstream,
  testContext,
  VirtualClock,
  withPolicies,
} from 'proxyless/testing';
import { describe, expect, it } from 'vitest';

describe('proxyless/testing: the single-policy filters of docs/policies.md "Using a policy alone"', () => {
  it('exports every factory the section names, and parseResiliencePatch', () => {
    for (const name of [
      'createDeadlineFilter',
      'createPerTryTimeoutFilter',
      'createRetryFilter',
      'createHedgeFilter',
      'createCircuitBreakerFilter',
      'DestinationBreaker',
      'createConcurrencyLimitFilter',
      'createRateLimitFilter',
      'createFaultInjectionFilter',
      'createPolicyStack',
      'resolveResilienceConfig',
      'parseResiliencePatch',
      'withPolicies',
      'Issues',
    ]) {
      expect(testing, name).toHaveProperty(name, expect.any(Function));
    }
  });

  it("runs the section's example: a deadline around retries, on virtual time", async () => {
    const issues = new Issues();
    const patch = parseResiliencePatch({ retry: { maxRetries: 3, retryOn: ['5xx'] } }, 'policy', issues);
    issues.throwIfAny('policy');
    const { retry } = resolveResilienceConfig(patch!);
    const clock = new VirtualClock();
    const call = withPolicies(
      [createDeadlineFilter({ timeoutMs: 1000 }), createRetryFilter(retry!)],
      scriptedUpstream(['503', 'hang']),
    );
    const done = call(testContext({ clock })).then(
      () => 'settled',
      (error: { code?: string }) => error.code,
    );
    await clock.advance(1000);
    expect(await done).toBe('MESH_TIMEOUT');
  });
});

describe('proxyless/testing runPolicy validates the whole entry as createMesh does', () => {
  it('rejects a bad balancer section, though one call does not use it', async () => {
    // Both fail to compile too (the balancer's sections are typed); checked at run time for JS.
    // @ts-expect-error a misspelt outlierDetection field
    await expect(testing.runPolicy({ outlierDetection: { bogus: 1 } }, [200])).rejects.toMatchObject({
      code: 'MESH_CONFIG_INVALID',
      message: expect.stringContaining('policy.outlierDetection'),
    });
    // @ts-expect-error not a load-balancer policy
    await expect(testing.runPolicy({ loadBalancer: { policy: 'nope' } }, [200])).rejects.toMatchObject({
      code: 'MESH_CONFIG_INVALID',
    });
    const rec = await testing.runPolicy({ outlierDetection: { consecutive5xx: 3 }, retry: false }, [200]);
    expect(rec.status).toBe(200);
  });

  it('rejects an unknown key of a hand-written patch, naming it', async () => {
    await expect(
      // @ts-expect-error: retyr is not a key of a ResiliencePatch (refused at run time too)
      testing.runPolicy({ timeoutMs: 1000, retyr: { maxRetries: 0 } }, [200]),
    ).rejects.toMatchObject({
      code: 'MESH_CONFIG_INVALID',
      message: expect.stringContaining('retyr'),
    });
  });
});
