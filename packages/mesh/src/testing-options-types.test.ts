// runPolicy takes a policy typed with the mesh's own option types (pnpm typecheck covers test
// files): the object a service passes to createMesh is the one its unit test runs (probe31 types 1).
import type { PolicyOptions, ServiceOptions } from 'proxyless';
import { runPolicy } from 'proxyless/testing';
import { describe, expect, it } from 'vitest';

describe('runPolicy with the option types of createMesh', () => {
  it('takes a ServiceOptions, a PolicyOptions and readonly (`as const`) arrays', async () => {
    const payments: ServiceOptions = { retry: { maxRetries: 2, retryOn: ['5xx'] } };
    const defaults: PolicyOptions = { timeout: '2s', retry: { retryOn: ['connect-failure'] } };
    const RETRY_ON = ['connect-failure', '5xx'] as const;
    const literal = { hedge: false, retry: { maxRetries: 1, retryOn: RETRY_ON } } as const;
    expect((await runPolicy(payments, ['503', '503', 200])).attempts.map((a) => a.outcome)).toEqual([
      503, 503, 200,
    ]);
    expect((await runPolicy(defaults, [200])).attempts).toHaveLength(1);
    expect((await runPolicy(literal, ['503', 200])).attempts.map((a) => a.outcome)).toEqual([503, 200]);
  });
});
