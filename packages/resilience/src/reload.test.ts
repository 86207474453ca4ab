import { MeshError, noopLogger, seededRandom } from '@proxyless/core';
import { scriptedUpstream, testContext, VirtualClock } from '@proxyless/core/testing';
import { describe, expect, it } from 'vitest';
import { type ResiliencePatch, resolveResilienceConfig } from './config.js';
import { createPolicyStack, type PolicyStack, withPolicies } from './stack.js';

const deps = (clock: VirtualClock) => ({
  service: 'api',
  clock,
  random: seededRandom(1),
  logger: noopLogger,
});

/** What a call ended with: its status, or its error code (and reason, when it has one). */
function outcome(p: Promise<{ status: number }>): Promise<string> {
  return p.then(
    (r) => String(r.status),
    (e: unknown) =>
      MeshError.is(e) ? `${e.code}${e.details.reason ? `:${String(e.details.reason)}` : ''}` : 'error',
  );
}

/** A reload: the next stack over `current`, which is retired. */
function reload(current: PolicyStack, patch: ResiliencePatch, clock: VirtualClock): PolicyStack {
  const next = createPolicyStack(resolveResilienceConfig(patch), deps(clock), current);
  current.retire(next);
  return next;
}

describe('a reload keeps the live counters of the limits (probe3 defect 1)', () => {
  it('a concurrencyLimit change counts the calls in flight and re-evaluates the queue', async () => {
    const clock = new VirtualClock();
    const upstream = scriptedUpstream([{ status: 200, delayMs: 100 }]);
    const base = { retry: false, concurrencyLimit: { max: 2, queue: 10, queueTimeoutMs: 1000 } } as const;
    let stack = createPolicyStack(resolveResilienceConfig(base), deps(clock));
    const calls: Array<Promise<string>> = [];
    const start = (n: number): void => {
      const call = withPolicies(stack.filters, upstream);
      for (let i = 0; i < n; i++) calls.push(outcome(call(testContext({ clock }))));
    };
    start(4); // 2 in flight, 2 queued
    await clock.advance(0);
    expect(upstream.calls).toHaveLength(2);

    // Only the queue timeout changes, twice: still 2 in flight, whatever stack admitted them.
    for (const queueTimeoutMs of [2000, 3000]) {
      stack = reload(
        stack,
        { ...base, concurrencyLimit: { ...base.concurrencyLimit, queueTimeoutMs } },
        clock,
      );
      expect(stack.rebuilt).toEqual(['concurrencyLimit']);
      start(1);
      await clock.advance(0);
      expect(upstream.calls).toHaveLength(2);
    }

    // The queue shrinks to 1: the latest waiters fail at once (queue_full), the first one stays.
    stack = reload(stack, { ...base, concurrencyLimit: { max: 2, queue: 1, queueTimeoutMs: 3000 } }, clock);
    await clock.advance(0);
    expect(await Promise.all(calls.slice(3))).toEqual([
      'MESH_CONCURRENCY_LIMIT:queue_full',
      'MESH_CONCURRENCY_LIMIT:queue_full',
      'MESH_CONCURRENCY_LIMIT:queue_full',
    ]);

    // A higher max serves the queued call at once.
    stack = reload(stack, { ...base, concurrencyLimit: { max: 4, queue: 1, queueTimeoutMs: 3000 } }, clock);
    await clock.advance(0);
    expect(upstream.calls).toHaveLength(3);
    expect(upstream.calls.map((c) => c.at)).toEqual([0, 0, 0]);

    // A lower max: the calls in flight finish, and no new one gets in until they are below it.
    stack = reload(stack, { ...base, concurrencyLimit: { max: 1, queue: 5, queueTimeoutMs: 3000 } }, clock);
    start(2);
    await clock.advance(0);
    expect(upstream.calls).toHaveLength(3);
    await clock.advance(100); // the 3 in flight end; the first waiter is served
    expect(upstream.calls).toHaveLength(4);

    // The limit is turned off: reported, and the queued call is served at once.
    stack = reload(stack, { retry: false }, clock);
    expect(stack.rebuilt).toEqual(['concurrencyLimit']);
    await clock.advance(0);
    expect(upstream.calls).toHaveLength(5);
    await clock.advance(100);
    expect(await Promise.all(calls)).toEqual([
      '200',
      '200',
      '200',
      'MESH_CONCURRENCY_LIMIT:queue_full',
      'MESH_CONCURRENCY_LIMIT:queue_full',
      'MESH_CONCURRENCY_LIMIT:queue_full',
      '200',
      '200',
    ]);
    stack.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('a queued call keeps the queue timeout it was queued with', async () => {
    const clock = new VirtualClock();
    const upstream = scriptedUpstream([{ status: 200, delayMs: 1000 }]);
    let stack = createPolicyStack(
      resolveResilienceConfig({ retry: false, concurrencyLimit: { max: 1, queue: 1, queueTimeoutMs: 50 } }),
      deps(clock),
    );
    const call = withPolicies(stack.filters, upstream);
    const first = outcome(call(testContext({ clock })));
    const queued = outcome(call(testContext({ clock })));
    stack = reload(
      stack,
      { retry: false, concurrencyLimit: { max: 1, queue: 1, queueTimeoutMs: 500 } },
      clock,
    );
    await clock.advance(50);
    expect(await queued).toBe('MESH_CONCURRENCY_LIMIT:queue_timeout');
    await clock.advance(950);
    expect(await first).toBe('200');
    stack.close();
  });

  it('a circuitBreaker change counts the attempts in flight against maxRequests', async () => {
    const clock = new VirtualClock();
    const upstream = scriptedUpstream([{ status: 200, delayMs: 100 }]);
    const cb = { maxRequests: 2, volumeThreshold: 10 };
    let stack = createPolicyStack(resolveResilienceConfig({ retry: false, circuitBreaker: cb }), deps(clock));
    const calls: Array<Promise<string>> = [];
    const start = (): void => {
      calls.push(outcome(withPolicies(stack.filters, upstream)(testContext({ clock }))));
    };
    start();
    start();
    // An error-rate setting changes (a new breaker), then maxRequests: the 2 in flight still count.
    stack = reload(stack, { retry: false, circuitBreaker: { ...cb, volumeThreshold: 11 } }, clock);
    expect(stack.rebuilt).toEqual(['circuitBreaker']);
    start();
    stack = reload(
      stack,
      { retry: false, circuitBreaker: { ...cb, volumeThreshold: 11, maxRequests: 3 } },
      clock,
    );
    start();
    start();
    await clock.advance(0);
    expect(upstream.calls).toHaveLength(3);
    await clock.advance(100);
    expect(await Promise.all(calls)).toEqual([
      '200',
      '200',
      'MESH_CIRCUIT_OPEN:maxRequests',
      '200',
      'MESH_CIRCUIT_OPEN:maxRequests',
    ]);
    // Every attempt released its slot into the one count.
    start();
    await clock.advance(100);
    expect(await calls[5]).toBe('200');
    stack.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('a circuitBreaker.maxRetries change keeps the retries in flight counted', async () => {
    const clock = new VirtualClock();
    const slow = { status: 200, delayMs: 100 };
    const upstream = scriptedUpstream(['503', slow, '503', slow, '503', slow]);
    const patch = (maxRetries: number) =>
      ({
        retry: { maxRetries: 1, retryOn: ['5xx'], backoff: { baseMs: 0, maxMs: 0 } },
        circuitBreaker: { maxRetries },
      }) as const;
    let stack = createPolicyStack(resolveResilienceConfig(patch(1)), deps(clock));
    const call = (): Promise<string> =>
      outcome(withPolicies(stack.filters, upstream)(testContext({ clock })));
    const a = call();
    await clock.advance(0); // a's retry is in flight
    expect(upstream.calls).toHaveLength(2);
    stack = reload(stack, patch(2), clock);
    expect(stack.rebuilt).toEqual(['retryGate']);
    const b = call(); // its retry is the second one in flight
    await clock.advance(0);
    const c = call(); // its retry would be the third
    await clock.advance(0);
    expect(upstream.calls).toHaveLength(5);
    await clock.advance(100);
    expect(await Promise.all([a, b, c])).toEqual(['200', '200', '503']);
    stack.close();
  });
});

describe('a reload keeps or reports the breaker state (probe3 defect 2)', () => {
  const cb = { volumeThreshold: 5, resetTimeoutMs: 30_000, maxRequests: 10 };

  /** A stack whose breaker a 503 storm opened, and the state changes it reported. */
  async function opened(clock: VirtualClock): Promise<{ stack: PolicyStack; states: string[] }> {
    const states: string[] = [];
    const stack = createPolicyStack(resolveResilienceConfig({ retry: false, circuitBreaker: cb }), {
      ...deps(clock),
      onBreakerStateChange: (s) => states.push(s),
    });
    const call = withPolicies(stack.filters, scriptedUpstream(['503']));
    for (let i = 0; i < 6; i++) await outcome(call(testContext({ clock })));
    expect(stack.circuitBreakerState()).toBe('open');
    expect(states).toEqual(['open']);
    return { stack, states };
  }

  it('a maxRequests change keeps the open breaker', async () => {
    const clock = new VirtualClock();
    const { stack: first, states } = await opened(clock);
    const stack = reload(first, { retry: false, circuitBreaker: { ...cb, maxRequests: 11 } }, clock);
    expect(stack.rebuilt).toEqual(['circuitBreaker']);
    expect(stack.circuitBreakerState()).toBe('open');
    const upstream = scriptedUpstream([200]);
    expect(await outcome(withPolicies(stack.filters, upstream)(testContext({ clock })))).toBe(
      'MESH_CIRCUIT_OPEN:open',
    );
    expect(upstream.calls).toHaveLength(0);
    // … and its reset timer: half-open after resetTimeout, closed by a good trial.
    await clock.advance(30_000);
    expect(await outcome(withPolicies(stack.filters, upstream)(testContext({ clock })))).toBe('200');
    expect(states).toEqual(['open', 'half-open', 'closed']);
    stack.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('an error-rate change resets the breaker and reports it closed', async () => {
    const clock = new VirtualClock();
    const { stack: first, states } = await opened(clock);
    const stack = reload(first, { retry: false, circuitBreaker: { ...cb, volumeThreshold: 6 } }, clock);
    expect(stack.circuitBreakerState()).toBe('closed');
    expect(states).toEqual(['open', 'closed']);
    stack.close();
    expect(states).toEqual(['open', 'closed']);
  });

  it('a breaker removed while open reports closed', async () => {
    const clock = new VirtualClock();
    const { stack: first, states } = await opened(clock);
    const stack = reload(first, { retry: false, circuitBreaker: false }, clock);
    expect(stack.rebuilt).toEqual(expect.arrayContaining(['circuitBreaker']));
    expect(stack.circuitBreakerState()).toBeUndefined();
    expect(states).toEqual(['open', 'closed']);
    stack.close();
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('a replaced breaker hands the calls in flight to its successor (probe3 defect 3)', () => {
  const retry = { maxRetries: 4, retryOn: ['5xx'], backoff: { baseMs: 100, maxMs: 100 } } as const;

  it('retries of calls in flight are admitted by the breaker in force', async () => {
    const clock = new VirtualClock();
    const quick = { status: 503, delayMs: 10 };
    const upstream = scriptedUpstream([quick, quick, quick, { status: 503, delayMs: 500 }]);
    const cb = { volumeThreshold: 1000, maxRequests: 10 };
    let stack = createPolicyStack(resolveResilienceConfig({ retry, circuitBreaker: cb }), deps(clock));
    const call = withPolicies(stack.filters, upstream);
    const calls = [0, 1, 2].map(() => outcome(call(testContext({ clock }))));
    await clock.advance(10); // the first attempts failed: the calls wait in backoff
    expect(upstream.calls).toHaveLength(3);
    // A new breaker (an error-rate setting changed) that admits one attempt at a time.
    stack = reload(stack, { retry, circuitBreaker: { volumeThreshold: 999, maxRequests: 1 } }, clock);
    expect(stack.rebuilt).toEqual(['circuitBreaker']);
    // The retries (full jitter: within 100ms): one admitted, two refused (their callers get the 503).
    await clock.advance(100);
    expect(upstream.calls).toHaveLength(4);
    for (let i = 0; i < 4; i++) await clock.advance(600);
    expect(await Promise.all(calls)).toEqual(['503', '503', '503']);
    expect(upstream.calls).toHaveLength(7); // 3 first attempts, then 4 retries of one call
    stack.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('outcomes of attempts in flight count in the new breaker', async () => {
    const clock = new VirtualClock();
    const slow503 = { status: 503, delayMs: 10 };
    const upstream = scriptedUpstream([slow503, slow503, 200]);
    const patch = (volumeThreshold: number) =>
      ({ retry: false, circuitBreaker: { volumeThreshold, resetTimeoutMs: 1000 } }) as const;
    let stack = createPolicyStack(resolveResilienceConfig(patch(100)), deps(clock));
    const call = withPolicies(stack.filters, upstream);
    const calls = [0, 1].map(() => outcome(call(testContext({ clock }))));
    await clock.advance(0);
    stack = reload(stack, patch(2), clock);
    await clock.advance(10); // two 503s, admitted by the old breaker, counted by the new one
    expect(await Promise.all(calls)).toEqual(['503', '503']);
    expect(stack.circuitBreakerState()).toBe('open');
    stack.close();
  });

  it('a breaker removed lets the retries of calls in flight through', async () => {
    const clock = new VirtualClock();
    const upstream = scriptedUpstream([{ status: 503, delayMs: 10 }]);
    const cb = { volumeThreshold: 1000, maxRequests: 1 };
    let stack = createPolicyStack(resolveResilienceConfig({ retry, circuitBreaker: cb }), deps(clock));
    const call = withPolicies(stack.filters, upstream);
    const first = outcome(call(testContext({ clock })));
    await clock.advance(10);
    stack = reload(stack, { retry, circuitBreaker: false }, clock);
    const second = outcome(withPolicies(stack.filters, upstream)(testContext({ clock })));
    for (let i = 0; i < 5; i++) await clock.advance(110);
    expect(await Promise.all([first, second])).toEqual(['503', '503']);
    expect(upstream.calls).toHaveLength(10); // both calls made all their attempts
    stack.close();
  });
});
