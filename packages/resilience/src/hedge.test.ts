import {
  composeInterceptors,
  type DispatchFn,
  type Filter,
  failDispatch,
  MeshError,
  noopLogger,
  seededRandom,
  withCall,
} from '@proxyless/core';
import { recordingObserver, scriptedUpstream, testContext, VirtualClock } from '@proxyless/core/testing';
import type { Dispatcher } from 'undici';
import { describe, expect, it } from 'vitest';
import { RetryBudget } from './budget.js';
import { type ResiliencePatch, resolveResilienceConfig } from './config.js';
import { createHedgeFilter, LatencyTracker } from './hedge.js';
import { createPolicyStack, withPolicies } from './stack.js';

describe('hedging', () => {
  it('sends a hedge after the delay; the first good answer wins and the loser is aborted', async () => {
    const clock = new VirtualClock();
    const observer = recordingObserver();
    const upstream = scriptedUpstream([
      { status: 200, delayMs: 500, endpoint: 'slow:80' },
      { status: 200, delayMs: 20, endpoint: 'fast:80' },
    ]);
    const p = withPolicies([createHedgeFilter({ delayMs: 50 })], upstream)(testContext({ clock, observer }));
    await clock.advance(70);
    const r = await p;
    expect(r.status).toBe(200);
    expect(r.endpoint?.id).toBe('fast:80');
    expect(upstream.calls.map((c) => [c.attempt, c.at])).toEqual([
      [1, 0],
      [2, 50],
    ]);
    expect(upstream.calls[0]!.aborted).toBe(true);
    expect(observer.events.filter((e) => e.type === 'hedge')).toMatchObject([{ attempt: 2, delayMs: 50 }]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('does not hedge when the first answer comes before the delay', async () => {
    const clock = new VirtualClock();
    const upstream = scriptedUpstream([{ status: 200, delayMs: 10 }]);
    const p = withPolicies([createHedgeFilter({ delayMs: 50 })], upstream)(testContext({ clock }));
    await clock.advance(10);
    expect((await p).status).toBe(200);
    expect(upstream.calls).toHaveLength(1);
    expect(clock.pendingTimers).toBe(0);
  });

  it('never hedges a non-idempotent request', async () => {
    const clock = new VirtualClock();
    const upstream = scriptedUpstream([{ status: 200, delayMs: 500 }]);
    const p = withPolicies(
      [createHedgeFilter({ delayMs: 50 })],
      upstream,
    )(testContext({ clock, request: { method: 'POST', body: 'x' } }));
    await clock.advance(500);
    expect((await p).status).toBe(200);
    expect(upstream.calls).toHaveLength(1);
  });

  it('waits for a pending hedge when one attempt fails, and returns the last failure if all fail', async () => {
    const clock = new VirtualClock();
    const upstream = scriptedUpstream([
      { status: 503, delayMs: 100 },
      { status: 200, delayMs: 100 },
    ]);
    const p = withPolicies([createHedgeFilter({ delayMs: 50 })], upstream)(testContext({ clock }));
    await clock.advance(150);
    expect((await p).status).toBe(200);

    const clock2 = new VirtualClock();
    const failing = scriptedUpstream([
      { status: 503, delayMs: 100 },
      { status: 502, delayMs: 100 },
    ]);
    const p2 = withPolicies(
      [createHedgeFilter({ delayMs: 50, maxHedges: 1 })],
      failing,
    )(testContext({ clock: clock2 }));
    await clock2.advance(150);
    expect((await p2).status).toBe(502);
  });

  it('respects maxHedges and the retry budget', async () => {
    const clock = new VirtualClock();
    const upstream = scriptedUpstream([{ status: 200, delayMs: 1000 }]);
    const p = withPolicies(
      [createHedgeFilter({ delayMs: 10, maxHedges: 3 })],
      upstream,
    )(testContext({ clock }));
    await clock.advance(1000);
    await p;
    expect(upstream.calls.map((c) => c.at)).toEqual([0, 10, 20, 30]);

    const clock2 = new VirtualClock();
    const budget = new RetryBudget({ ratio: 0, minPerSecond: 0, windowMs: 1000 }, clock2);
    const observer = recordingObserver();
    const u2 = scriptedUpstream([{ status: 200, delayMs: 100 }]);
    const p2 = withPolicies(
      [createHedgeFilter({ delayMs: 10 }, { budget })],
      u2,
    )(testContext({ clock: clock2, observer }));
    await clock2.advance(100);
    await p2;
    expect(u2.calls).toHaveLength(1);
    expect(observer.events.map((e) => e.reason)).toEqual(['budget_exhausted']);
  });

  it('uses the latency percentile as the delay once it has enough samples', async () => {
    const clock = new VirtualClock();
    const filter = createHedgeFilter({ percentile: 90, delayMs: 1000 });
    for (let i = 1; i <= 20; i++) {
      const p = withPolicies(
        [filter],
        scriptedUpstream([{ status: 200, delayMs: i * 10 }]),
      )(testContext({ clock }));
      await clock.advance(i * 10);
      await p;
    }
    expect(filter.latency.percentile(90)).toBe(180);
    const upstream = scriptedUpstream([{ status: 200, delayMs: 1000 }]);
    const p = withPolicies([filter], upstream)(testContext({ clock }));
    await clock.advance(1000);
    await p;
    expect(upstream.calls[1]!.at - upstream.calls[0]!.at).toBe(180);
  });

  it('aborts every attempt when the caller aborts', async () => {
    const clock = new VirtualClock();
    const ac = new AbortController();
    const upstream = scriptedUpstream(['hang']);
    const p = withPolicies(
      [createHedgeFilter({ delayMs: 10 })],
      upstream,
    )(testContext({ clock, signal: ac.signal }));
    await clock.advance(10);
    // The caller's own reason, as undici and the mesh reject an aborted request.
    const reason = new Error('caller gave up');
    const check = expect(p).rejects.toBe(reason);
    ac.abort(reason);
    await check;
    expect(upstream.calls.every((c) => c.aborted)).toBe(true);
    expect(clock.pendingTimers).toBe(0);
  });

  it('arms no hedge timer for a call that failed at once (no endpoint to send to)', () => {
    const clock = new VirtualClock();
    // The terminal fails synchronously, as the pick stage does when no endpoint is usable.
    const dispatch = composeInterceptors([createHedgeFilter({ delayMs: 50 })], (_opts, handler) => {
      failDispatch(handler, new MeshError('MESH_NO_HEALTHY_ENDPOINTS', 'none'));
      return true;
    });
    const errors: string[] = [];
    for (let i = 0; i < 5; i++) {
      dispatch(withCall({ origin: 'http://api', path: '/', method: 'GET' }, testContext({ clock })), {
        onResponseError: (_c, e) => errors.push((e as MeshError).code),
      });
    }
    expect(errors).toEqual(Array(5).fill('MESH_NO_HEALTHY_ENDPOINTS'));
    expect(clock.pendingTimers).toBe(0);
  });

  it('aborts a 5xx held back while another attempt runs as what it is (hedge_5xx), a loser before its head as hedge_lost', async () => {
    const clock = new VirtualClock();
    // Attempt 1 answers 200 at 300 ms; the hedge (sent at 50 ms) answers 503 at 100 ms.
    const { dispatch, attempts } = timedUpstream(clock, [
      { status: 200, at: 300 },
      { status: 503, at: 100 },
    ]);
    const done = dispatchOnce(composeInterceptors([createHedgeFilter({ delayMs: 50 })], dispatch), clock);
    await clock.advance(300);
    expect(await done).toEqual({ status: 200 });
    // Before: `reason: hedge_lost`, "another hedged attempt answered first", though none had.
    expect(attempts[1]!.headAt).toBe(100);
    expect(attempts[1]!.aborted).toMatchObject({
      code: 'MESH_ABORTED',
      message: expect.stringMatching(/answered 503/),
      details: { service: 'test', reason: 'hedge_5xx', status: 503 },
    });
    expect(attempts[0]!.aborted).toBeUndefined();

    // The first attempt answers 200 at 100 ms, before the hedge's head: the hedge lost the race.
    const clock2 = new VirtualClock();
    const race = timedUpstream(clock2, [
      { status: 200, at: 100 },
      { status: 200, at: 500 },
    ]);
    const done2 = dispatchOnce(
      composeInterceptors([createHedgeFilter({ delayMs: 50 })], race.dispatch),
      clock2,
    );
    await clock2.advance(100);
    expect(await done2).toEqual({ status: 200 });
    expect(race.attempts[1]!.headAt).toBeUndefined();
    expect(race.attempts[1]!.aborted).toMatchObject({
      code: 'MESH_ABORTED',
      details: { reason: 'hedge_lost' },
    });
    expect(clock2.pendingTimers).toBe(0);
  });

  it('latency tracker needs 20 samples', () => {
    const t = new LatencyTracker();
    for (let i = 0; i < 19; i++) t.record(i);
    expect(t.percentile(50)).toBeUndefined();
    t.record(19);
    expect(t.percentile(50)).toBe(9);
  });
});

interface TimedAttempt {
  headAt: number | undefined;
  aborted: Error | undefined;
}

/**
 * A terminal whose nth attempt answers `status` (head and body) at `at` ms of virtual time unless
 * aborted first; it records when each head was sent and the reason each attempt was aborted with.
 */
function timedUpstream(
  clock: VirtualClock,
  script: ReadonlyArray<{ status: number; at: number }>,
): { dispatch: DispatchFn; attempts: TimedAttempt[] } {
  const attempts: TimedAttempt[] = [];
  const dispatch: DispatchFn = (_opts, handler) => {
    const step = script[attempts.length]!;
    const attempt: TimedAttempt = { headAt: undefined, aborted: undefined };
    attempts.push(attempt);
    let over = false;
    const controller = {
      paused: false,
      aborted: false,
      reason: null as Error | null,
      pause() {},
      resume() {},
      abort(reason: Error) {
        if (over) return;
        over = true;
        controller.aborted = true;
        controller.reason = reason;
        attempt.aborted = reason;
        timer.cancel();
        handler.onResponseError?.(controller as unknown as Dispatcher.DispatchController, reason);
      },
    };
    const c = controller as unknown as Dispatcher.DispatchController;
    const timer = clock.setTimer(step.at - clock.now(), () => {
      attempt.headAt = clock.now();
      handler.onResponseStart?.(c, step.status, {}, '');
      if (over) return;
      handler.onResponseData?.(c, Buffer.from('x'));
      over = true;
      handler.onResponseEnd?.(c, {});
    });
    handler.onRequestStart?.(c, {});
    return true;
  };
  return { dispatch, attempts };
}

function dispatchOnce(
  dispatch: DispatchFn,
  clock: VirtualClock,
): Promise<{ status?: number; error?: Error }> {
  return new Promise((resolve) => {
    let status: number | undefined;
    dispatch(withCall({ origin: 'http://api', path: '/', method: 'GET' }, testContext({ clock })), {
      onResponseStart: (_c, s) => {
        status = s;
      },
      onResponseEnd: () => resolve({ status }),
      onResponseError: (_c, error) => resolve({ status, error }),
    });
  });
}

describe('hedging a streamed body still being sent', () => {
  it('looks again with a growing interval and reports it once, however long the upload lasts', async () => {
    const clock = new VirtualClock();
    const observer = recordingObserver();
    let checks = 0;
    // 20 chunks, one every 100 ms of virtual time: a 2 s upload.
    async function* body(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 20; i++) {
        await clock.sleep(100);
        yield Buffer.from('x');
      }
    }
    const terminal: DispatchFn = (opts, handler) => {
      const c = {
        paused: false,
        aborted: false,
        reason: null,
        pause() {},
        resume() {},
        abort() {},
      } as unknown as Dispatcher.DispatchController;
      handler.onRequestStart?.(c, {});
      void (async () => {
        for await (const _ of opts.body as AsyncIterable<Buffer>) checks++;
        handler.onResponseStart?.(c, 200, {}, '');
        handler.onResponseEnd?.(c, {});
      })();
      return true;
    };
    const hedged = composeInterceptors([createHedgeFilter({ delayMs: 1 })], terminal);
    const done = new Promise<number>((resolve, reject) => {
      hedged(
        withCall(
          { origin: 'http://api', path: '/', method: 'PUT', body: body() as never },
          testContext({ clock, observer, request: { method: 'PUT' } }),
        ),
        {
          onResponseStart: (_c, status) => resolve(status),
          onResponseError: (_c, e) => reject(e),
        },
      );
    });
    for (let t = 0; t < 2100; t += 10) await clock.advance(10);
    expect(await done).toBe(200);
    expect(checks).toBe(20);
    // One event for the whole upload (it was one per hedge delay: ~2,000 here).
    expect(observer.events.filter((e) => e.type === 'hedge_skipped')).toMatchObject([
      { reason: 'body_streaming' },
    ]);
    expect(observer.events.filter((e) => e.type === 'hedge')).toEqual([]);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('hedging in a policy stack: every hedge is paid from the destination’s retry budget', () => {
  const deps = (clock: VirtualClock) => ({
    service: 'api',
    clock,
    random: seededRandom(1),
    logger: noopLogger,
  });
  /** A budget of one unit per 10 s window, whatever the traffic. */
  const oneUnit = { ratio: 0, minPerSecond: 0.1 };
  // No breaker: it would count the lost hedges; the budget alone is under test.
  const hedgeOnly = (retry: ResiliencePatch['retry']): ResiliencePatch => ({
    retry,
    hedge: { delayMs: 10, maxHedges: 1 },
    circuitBreaker: false,
  });

  /** `n` concurrent GETs that each take 100 ms (a hedge is due after 10 ms): the hedges sent. */
  async function slowCalls(filters: Filter[], clock: VirtualClock, n: number) {
    const observer = recordingObserver();
    const upstream = scriptedUpstream([{ status: 200, delayMs: 100 }]);
    const call = withPolicies(filters, upstream);
    const calls = Array.from({ length: n }, () => call(testContext({ clock, observer })));
    await clock.advance(200);
    const statuses = (await Promise.all(calls)).map((r) => r.status);
    expect(statuses).toEqual(Array(n).fill(200));
    const hedges = observer.events.filter((e) => e.type === 'hedge').length;
    expect(upstream.calls).toHaveLength(n + hedges);
    const skipped = observer.events.filter((e) => e.type === 'hedge_skipped').map((e) => e.reason);
    expect(skipped).toEqual(Array(n - hedges).fill('budget_exhausted'));
    return hedges;
  }

  it('retry: { maxRetries: 0, budget }: hedges are capped by the configured budget', async () => {
    const clock = new VirtualClock();
    const stack = createPolicyStack(
      resolveResilienceConfig(hedgeOnly({ maxRetries: 0, budget: oneUnit })),
      deps(clock),
    );
    expect(stack.roles).not.toContain('retry');
    expect(await slowCalls(stack.filters, clock, 50)).toBe(1);
    stack.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('retries off, the hedge counts the calls its budget’s ratio applies to', async () => {
    const clock = new VirtualClock();
    const stack = createPolicyStack(
      resolveResilienceConfig(hedgeOnly({ maxRetries: 0, budget: { ratio: 0.1, minPerSecond: 0 } })),
      deps(clock),
    );
    expect(await slowCalls(stack.filters, clock, 50)).toBe(5); // 10 % of 50 calls
    stack.close();
  });

  it('retry: false: the budget’s defaults (20 % + 10/s over 10 s), kept when only the hedge changes', async () => {
    const clock = new VirtualClock();
    const config = hedgeOnly(false);
    const first = createPolicyStack(resolveResilienceConfig(config), deps(clock));
    // A reserve of 100 plus 20 % of the 150 calls counted.
    expect(await slowCalls(first.filters, clock, 150)).toBe(130);
    const next = createPolicyStack(
      resolveResilienceConfig({ ...config, hedge: { delayMs: 20, maxHedges: 1 } }),
      deps(clock),
      first,
    );
    expect(next.rebuilt).toEqual(['hedge']);
    first.retire(next);
    // The same budget, still in its window: 20 % of the 50 more calls, not a fresh reserve.
    expect(await slowCalls(next.filters, clock, 50)).toBe(10);
    next.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('a budget-only change rebuilds the hedge over the new budget', async () => {
    const clock = new VirtualClock();
    const first = createPolicyStack(
      resolveResilienceConfig(hedgeOnly({ maxRetries: 0, budget: oneUnit })),
      deps(clock),
    );
    expect(await slowCalls(first.filters, clock, 10)).toBe(1);
    const next = createPolicyStack(
      resolveResilienceConfig(hedgeOnly({ maxRetries: 0, budget: { ratio: 0, minPerSecond: 0.3 } })),
      deps(clock),
      first,
    );
    expect(next.rebuilt).toEqual(['budget', 'hedge']);
    const hedgeOf = (s: typeof first) => s.filters[s.roles.indexOf('hedge')];
    expect(hedgeOf(next)).not.toBe(hedgeOf(first));
    first.retire(next);
    expect(await slowCalls(next.filters, clock, 10)).toBe(3); // the new budget: 3 units, none spent
    next.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('turning retries off keeps the one budget the retries and hedges spent', async () => {
    const clock = new VirtualClock();
    const retry = { maxRetries: 2, backoff: { baseMs: 0, maxMs: 0 }, budget: oneUnit };
    const first = createPolicyStack(resolveResilienceConfig(hedgeOnly(retry)), deps(clock));
    expect(await slowCalls(first.filters, clock, 10)).toBe(1);
    const next = createPolicyStack(
      resolveResilienceConfig(hedgeOnly({ ...retry, maxRetries: 0 })),
      deps(clock),
      first,
    );
    // The hedge now counts the calls itself; the retry stage is removed; the budget is kept.
    expect(next.rebuilt).toEqual(['hedge', 'retry']);
    first.retire(next);
    expect(await slowCalls(next.filters, clock, 10)).toBe(0);
    next.close();
  });

  it('retries and hedges share one budget, whose calls are counted once', async () => {
    const clock = new VirtualClock();
    const stack = createPolicyStack(
      resolveResilienceConfig(
        hedgeOnly({
          maxRetries: 2,
          backoff: { baseMs: 0, maxMs: 0 },
          budget: { ratio: 0.5, minPerSecond: 0 },
        }),
      ),
      deps(clock),
    );
    // Counted by the retry filter alone: half of 10 calls (20 counted would allow 10).
    expect(await slowCalls(stack.filters, clock, 10)).toBe(5);
    // The hedges spent it all: a 503 is not retried.
    const observer = recordingObserver();
    const upstream = scriptedUpstream(['503', 200]);
    const r = await withPolicies(stack.filters, upstream)(testContext({ clock, observer }));
    expect(r.status).toBe(503);
    expect(upstream.calls).toHaveLength(1);
    expect(observer.events.find((e) => e.type === 'give_up')?.reason).toMatch(/^budget_exhausted/);
    stack.close();
    expect(clock.pendingTimers).toBe(0);
  });
});
