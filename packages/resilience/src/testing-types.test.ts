// Type-level checks of runPolicy's input (pnpm typecheck covers test files).
import { describe, expect, expectTypeOf, it } from 'vitest';
import { type PolicyEntry, type PolicyInput, runPolicy } from './testing.js';

/** What a package that owns the balancer keys passes as `Others` (a stand-in for BalancerOptions). */
type Balancer = { loadBalancer?: { policy?: 'random' | 'round-robin' } | true };

describe('PolicyEntry', () => {
  it('types the keys other packages own as their owner says, so a typo there fails to compile', async () => {
    const ok: PolicyEntry<Balancer> = { loadBalancer: { policy: 'random' }, retry: { maxRetries: 1 } };
    // @ts-expect-error: plicy is not a loadBalancer field
    const typo: PolicyEntry<Balancer> = { loadBalancer: { plicy: 'random' } };
    // @ts-expect-error: not a policy of Balancer
    const badValue: PolicyEntry<Balancer> = { loadBalancer: { policy: 'fastest' } };
    void [typo, badValue];
    // Narrowed inputs are still inputs of runPolicy, which ignores those keys.
    expectTypeOf<PolicyInput<Balancer>>().toExtend<PolicyInput>();
    const rec = await runPolicy(ok, ['503', 200]);
    expect(rec.attempts.map((a) => a.outcome)).toEqual([503, 200]);
  });

  it('keeps them open (unknown) without Others: this package does not know their types', () => {
    expectTypeOf<PolicyEntry['loadBalancer']>().toBeUnknown();
  });
});
