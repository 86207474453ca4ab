import { Issues, noopLogger, seededRandom } from '@proxyless/core';
import { testContext, testEndpoints, VirtualClock } from '@proxyless/core/testing';
import { describe, expect, it } from 'vitest';
import { createBalancer } from './balancer.js';
import { parseBalancerPatch, resolveBalancerConfig } from './config.js';

/** Picks of a least_request balancer over `n` endpoints, all but the first busy with 5 calls. */
function picksOfIdle(n: number, choiceCount: number): number {
  const issues = new Issues();
  const patch = parseBalancerPatch({ loadBalancer: { policy: 'least_request', choiceCount } }, 'x', issues);
  issues.throwIfAny('bad');
  const clock = new VirtualClock();
  const b = createBalancer(resolveBalancerConfig(patch ?? {}), {
    service: 'api',
    clock,
    random: seededRandom(3),
    logger: noopLogger,
  });
  const eps = testEndpoints(n);
  b.update({ endpoints: eps } as never);
  // Busy on open connections (READY): an endpoint still connecting would be passed over anyway.
  for (const e of eps.slice(1)) {
    b.onConnected(e);
    for (let i = 0; i < 5; i++) b.onAttemptStart(e);
  }
  let idle = 0;
  for (let i = 0; i < 3000; i++) if (b.pick(testContext({ clock })).id === eps[0]!.id) idle++;
  b.close();
  return idle;
}

describe('least_request draws choiceCount distinct candidates (probe8 defect 2)', () => {
  // Each draw after the second avoided only the first candidate, so the 2nd and 3rd could be the
  // same endpoint: with 3 of 3 endpoints drawn, 1 pick in 6 still went to a busy one.
  it('choiceCount = endpoints: the idle endpoint wins every pick', () => {
    expect(picksOfIdle(3, 3)).toBe(3000);
    expect(picksOfIdle(4, 5)).toBe(3000);
  });

  it('choiceCount 3 of 5: the idle endpoint wins whenever drawn (3 in 5 picks)', () => {
    const share = picksOfIdle(5, 3) / 3000;
    expect(share).toBeGreaterThan(0.57);
    expect(share).toBeLessThan(0.63);
  });
});
