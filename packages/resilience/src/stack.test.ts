import type { Interceptor } from '@proxyless/core';
import { noopLogger, seededRandom } from '@proxyless/core';
import { scriptedUpstream, testContext, VirtualClock } from '@proxyless/core/testing';
import { describe, expect, it } from 'vitest';
import { resolveResilienceConfig } from './config.js';
import { createPolicyStack, POLICY_ROLES, withPolicies } from './stack.js';
import { runPolicy } from './testing.js';

const deps = (clock: VirtualClock) => ({
  service: 'api',
  clock,
  random: seededRandom(1),
  logger: noopLogger,
});

describe('createPolicyStack', () => {
  it('builds deadline, retry, breaker and per-try filters by default', () => {
    const clock = new VirtualClock();
    const stack = createPolicyStack(resolveResilienceConfig(), deps(clock));
    expect(stack.filters).toHaveLength(4);
    stack.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('adds every configured policy', () => {
    const clock = new VirtualClock();
    const stack = createPolicyStack(
      resolveResilienceConfig({
        hedge: {},
        concurrencyLimit: { max: 1 },
        rateLimit: { rps: 1 },
        faultInjection: { header: 'x-f' },
      }),
      deps(clock),
    );
    expect(stack.filters).toHaveLength(8);
    // Every stage on: the filters follow the one written order, role by role.
    expect(stack.roles).toEqual([...POLICY_ROLES]);
    stack.close();
  });

  it('the default stack retries a 503 on another endpoint and answers', async () => {
    const rec = await runPolicy({}, [
      { status: 503, endpoint: 'a:80' },
      { status: 200, endpoint: 'b:80' },
    ]);
    expect(rec.status).toBe(200);
    expect(rec.attempts.map((a) => [a.attempt, a.endpoint, a.outcome, a.retriedBecause])).toEqual([
      [1, 'a:80', 503, 'gateway-error'],
      [2, 'b:80', 200, undefined],
    ]);
  });

  it('per-try timeout + retry + overall timeout: exact timings', async () => {
    const rec = await runPolicy(
      { timeoutMs: 250, perTryTimeoutMs: 100, retry: { maxRetries: 5, backoff: { baseMs: 0, maxMs: 0 } } },
      ['hang'],
    );
    expect(rec.attempts.map((a) => [a.startedAt, a.outcome])).toEqual([
      [0, 'MESH_TIMEOUT'],
      [100, 'MESH_TIMEOUT'],
      [200, 'MESH_TIMEOUT'], // cut by the overall timeout
    ]);
    expect(rec.attempts.at(-1)?.endedAt).toBe(250);
    expect(rec.error?.code).toBe('MESH_TIMEOUT');
    expect(rec.error?.details.limit).toBe('overall');
    expect(rec.endedAt).toBe(250);
  });

  it('a 503 storm opens the breaker: later attempts fail fast with MESH_CIRCUIT_OPEN', async () => {
    const clock = new VirtualClock();
    const config = resolveResilienceConfig({
      retry: { maxRetries: 2, backoff: { baseMs: 0, maxMs: 0 }, budget: { ratio: 0.2, minPerSecond: 0 } },
      circuitBreaker: { volumeThreshold: 10, resetTimeoutMs: 1000 },
    });
    const stack = createPolicyStack(config, deps(clock));
    const upstream = scriptedUpstream(['503']);
    const call = withPolicies(stack.filters, upstream);
    const codes: Array<number | string> = [];
    for (let i = 0; i < 30; i++) {
      const p = call(testContext({ clock })).then(
        (r) => r.status,
        (e: { code: string }) => e.code,
      );
      await clock.advance(0);
      codes.push(await p);
    }
    // Ten requests reach the destination, a few retries within budget, then the breaker is open.
    expect(upstream.calls.length).toBeLessThanOrEqual(12);
    expect(codes.slice(-5)).toEqual(Array(5).fill('MESH_CIRCUIT_OPEN'));
    stack.close();
  });

  it('close() releases every timer', async () => {
    const clock = new VirtualClock();
    const stack = createPolicyStack(resolveResilienceConfig({ rateLimit: { rps: 5 } }), deps(clock));
    const p = withPolicies(stack.filters, scriptedUpstream([200]))(testContext({ clock }));
    await clock.advance(0);
    await p;
    stack.close();
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('createPolicyStack over a previous stack: diff before build (#10)', () => {
  const base = {
    retry: { maxRetries: 2, backoff: { baseMs: 0, maxMs: 0 } },
    hedge: {},
    concurrencyLimit: { max: 4, queue: 8 },
    circuitBreaker: { volumeThreshold: 10, resetTimeoutMs: 1000 },
  };

  /** Open a stack's breaker with a 503 storm. */
  async function storm(stack: ReturnType<typeof createPolicyStack>, clock: VirtualClock): Promise<void> {
    const call = withPolicies(stack.filters, scriptedUpstream(['503']));
    for (let i = 0; i < 20; i++) {
      const p = call(testContext({ clock })).catch(() => undefined);
      await clock.advance(0);
      await p;
    }
  }

  it('the same config builds nothing and arms no timer: every stage is the same instance', () => {
    const clock = new VirtualClock();
    const first = createPolicyStack(resolveResilienceConfig(base), deps(clock));
    expect(first.rebuilt).toEqual(expect.arrayContaining(['deadline', 'retry', 'hedge', 'circuitBreaker']));
    const timers = clock.pendingTimers;
    const again = createPolicyStack(resolveResilienceConfig(base), deps(clock), first);
    expect(again.rebuilt).toEqual([]);
    expect(again.filters).toHaveLength(first.filters.length);
    again.filters.forEach((f, i) => {
      expect(f).toBe(first.filters[i]);
    });
    expect(clock.pendingTimers).toBe(timers);
    first.retire(again);
    expect(clock.pendingTimers).toBe(timers); // nothing released: all taken over
    again.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('a retry change rebuilds only the retry stage; the open breaker and the limit stay', async () => {
    const clock = new VirtualClock();
    // No hedge here: its timers belong to the calls of the storm, not to the stack.
    const noHedge = { ...base, hedge: false as const };
    const first = createPolicyStack(resolveResilienceConfig(noHedge), deps(clock));
    await storm(first, clock);
    expect(first.circuitBreakerState()).toBe('open');
    const next = createPolicyStack(
      resolveResilienceConfig({ ...noHedge, retry: { ...base.retry, maxRetries: 3 } }),
      deps(clock),
      first,
    );
    expect(next.rebuilt).toEqual(['retry']);
    expect(next.circuitBreakerState()).toBe('open');
    next.roles.forEach((role, i) => {
      if (role === 'retry') expect(next.filters[i]).not.toBe(first.filters[i]);
      else expect(next.filters[i]).toBe(first.filters[i]);
    });
    first.retire(next);
    // The breaker was not released: still open, and it fails calls fast.
    const r = await withPolicies(
      next.filters,
      scriptedUpstream([200]),
    )(testContext({ clock })).catch((e: { code: string }) => e.code);
    expect(r).toBe('MESH_CIRCUIT_OPEN');
    next.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('settings owned by another stage rebuild that stage only', () => {
    const clock = new VirtualClock();
    const first = createPolicyStack(resolveResilienceConfig(base), deps(clock));
    // circuitBreaker.maxRetries is the retry gate's: the breaker keeps its state.
    const gate = createPolicyStack(
      resolveResilienceConfig({ ...base, circuitBreaker: { ...base.circuitBreaker, maxRetries: 3 } }),
      deps(clock),
      first,
    );
    // Changed in place: retries in flight keep their places, the retry stage keeps its gate.
    expect(gate.rebuilt).toEqual(['retryGate']);
    // The budget is shared by retry and hedge: both are built over the new one.
    const budget = createPolicyStack(
      resolveResilienceConfig({ ...base, retry: { ...base.retry, budget: { ratio: 0.5 } } }),
      deps(clock),
      first,
    );
    expect(budget.rebuilt).toEqual(['budget', 'retry', 'hedge']);
    // maxPendingRequests bounds the concurrency limit's queue.
    const pending = createPolicyStack(
      resolveResilienceConfig({ ...base, circuitBreaker: { ...base.circuitBreaker, maxPendingRequests: 1 } }),
      deps(clock),
      first,
    );
    expect(pending.rebuilt).toEqual(['concurrencyLimit']);
    for (const s of [gate, budget, pending]) first.retire(s);
    for (const s of [gate, budget, pending]) s.close();
    first.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('a breaker change replaces the breaker; retire releases the old one', async () => {
    const clock = new VirtualClock();
    const first = createPolicyStack(resolveResilienceConfig(base), deps(clock));
    // Open, so the old breaker holds a timer (its reset timer; its window arms none).
    await storm(first, clock);
    expect(first.circuitBreakerState()).toBe('open');
    const next = createPolicyStack(
      resolveResilienceConfig({ ...base, circuitBreaker: { ...base.circuitBreaker, resetTimeoutMs: 5000 } }),
      deps(clock),
      first,
    );
    expect(next.rebuilt).toEqual(['circuitBreaker']);
    const before = clock.pendingTimers;
    first.retire(next);
    expect(clock.pendingTimers).toBe(before - 1); // the old breaker's reset timer
    next.close();
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('runPolicy', () => {
  it('records a non-idempotent POST that is not replayed', async () => {
    const rec = await runPolicy({}, ['reset', 200], { request: { method: 'POST', body: '{"a":1}' } });
    expect(rec.attempts).toHaveLength(1);
    expect(rec.error?.code).toBe('MESH_UPSTREAM_RESET');
    expect(rec.stoppedBecause).toBe('not_idempotent (reset)');
  });

  it('throws when the call never settles', async () => {
    const never: Interceptor = () => (_opts, _handler) => true;
    await expect(runPolicy({ timeoutMs: 0 }, [200], { filters: [never] })).rejects.toMatchObject({
      code: 'MESH_INTERNAL',
    });
  });
});
