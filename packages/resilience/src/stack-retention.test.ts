import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { noopLogger, seededRandom } from '@proxyless/core';
import { VirtualClock } from '@proxyless/core/testing';
import { describe, expect, it } from 'vitest';
import { DestinationBreaker } from './breaker.js';
import { type ResiliencePatch, resolveResilienceConfig } from './config.js';
import { createPolicyStack, type PolicyStack } from './stack.js';

/** A full garbage collection (the flag is set for this process if the runner did not). */
function exposeGc(): () => void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return g;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/**
 * `versions` reloads of one destination's stack, each retiring the one before, as a destination
 * does on every config version. Returns weak references to the filter of `role` each retired
 * version had, and the stack in force (kept by the caller, as the destination keeps it).
 */
function reloads(
  versions: number,
  patch: (i: number) => ResiliencePatch,
  role: string,
): { retired: Array<WeakRef<object>>; current: PolicyStack } {
  const deps = { service: 'api', clock: new VirtualClock(), random: seededRandom(1), logger: noopLogger };
  let current = createPolicyStack(resolveResilienceConfig(patch(0)), deps);
  const retired: Array<WeakRef<object>> = [];
  for (let i = 1; i <= versions; i++) {
    const next = createPolicyStack(resolveResilienceConfig(patch(i)), deps, current);
    const filter = current.filters[current.roles.indexOf(role as never)];
    if (filter !== undefined && !next.filters.includes(filter)) retired.push(new WeakRef(filter));
    current.retire(next);
    current = next;
  }
  return { retired, current };
}

async function collected(refs: ReadonlyArray<WeakRef<object>>): Promise<number> {
  const gc = exposeGc();
  // A WeakRef's target lives at least until the end of the job that made or read it.
  await new Promise((resolve) => setImmediate(resolve));
  gc();
  gc();
  return refs.filter((r) => r.deref() === undefined).length;
}

describe('a retired stack is not kept alive by the stacks after it (probe6 lifecycle defect 1)', () => {
  // Each part of a stack outlived the call that built it (a later stack takes it over), and its
  // `close` was a closure of that call: it kept the call's scope — the previous stack's parts, whose
  // closures kept theirs — so every config version stayed on the heap (4.5–10 KB each).
  it('a new timeout every version: the retired deadline stages are collected', async () => {
    const { retired, current } = reloads(40, (i) => ({ timeoutMs: 1000 + i }), 'deadline');
    expect(retired).toHaveLength(40);
    expect(await collected(retired)).toBe(40);
    current.close();
  });

  it('a new breaker every version (with the deadline taken over from the first): the retired breakers are collected', async () => {
    const { retired, current } = reloads(
      40,
      (i) => ({ circuitBreaker: { errorThresholdPercentage: 10 + i } }),
      'circuitBreaker',
    );
    expect(retired).toHaveLength(40);
    expect(await collected(retired)).toBe(40);
    current.close();
  });
});

describe('a replaced breaker still held keeps only the breaker in force alive', () => {
  // A replaced breaker pointed at the one that replaced it, and that one at the next: a call (or
  // its response) kept from before a reload kept every breaker built since alive.
  it('40 replacements with the first breaker held: the 39 between are collected, and it admits through the last', async () => {
    const clock = new VirtualClock();
    const deps = { clock, service: 'api' };
    const first = new DestinationBreaker({ errorThresholdPercentage: 10 }, deps);
    const between: Array<WeakRef<DestinationBreaker>> = [];
    let current = first;
    for (let i = 1; i <= 40; i++) {
      const next = new DestinationBreaker(
        { errorThresholdPercentage: 10 + i },
        { ...deps, previous: current },
      );
      current.retire(next);
      if (current !== first) between.push(new WeakRef(current));
      current = next;
    }
    expect(between).toHaveLength(39);
    expect(await collected(between)).toBe(39);
    // The first breaker's outcomes count in the one in force.
    current.open();
    const before = current.stats.fires;
    first.record('normal', 503, undefined);
    expect(current.stats.fires).toBe(before + 1);
    current.close();
  });
});
