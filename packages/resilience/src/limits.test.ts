import { MeshError } from '@proxyless/core';
import { scriptedUpstream, testContext, VirtualClock } from '@proxyless/core/testing';
import { describe, expect, it } from 'vitest';
import { createConcurrencyLimitFilter, createRateLimitFilter, TokenBucket } from './limits.js';
import { withPolicies } from './stack.js';

describe('concurrency limit', () => {
  it('runs max at once, queues up to queue, rejects the rest with MESH_CONCURRENCY_LIMIT', async () => {
    const clock = new VirtualClock();
    const limit = createConcurrencyLimitFilter({ max: 2, queue: 1 });
    const upstream = scriptedUpstream([{ status: 200, delayMs: 10 }]);
    const call = withPolicies([limit], upstream);
    const a = call(testContext({ clock }));
    const b = call(testContext({ clock }));
    const c = call(testContext({ clock }));
    await expect(call(testContext({ clock, service: 'api' }))).rejects.toSatisfy(
      (e: unknown) => MeshError.is(e, 'MESH_CONCURRENCY_LIMIT') && e.details.reason === 'queue_full',
    );
    expect([limit.active, limit.queued]).toEqual([2, 1]);
    await clock.advance(10);
    await Promise.all([a, b]);
    await clock.advance(10);
    await c;
    expect(upstream.calls.map((x) => x.at)).toEqual([0, 0, 10]);
    expect([limit.active, limit.queued]).toEqual([0, 0]);
  });

  it('gives up waiting after queueTimeout', async () => {
    const clock = new VirtualClock();
    const limit = createConcurrencyLimitFilter({ max: 1, queue: 5, queueTimeoutMs: 30 });
    const call = withPolicies([limit], scriptedUpstream([{ status: 200, delayMs: 100 }]));
    const a = call(testContext({ clock }));
    const b = call(testContext({ clock }));
    const check = expect(b).rejects.toMatchObject({
      code: 'MESH_CONCURRENCY_LIMIT',
      details: { reason: 'queue_timeout' },
    });
    await clock.advance(30);
    await check;
    await clock.advance(70);
    await a;
    expect(limit.queued).toBe(0);
    expect(limit.active).toBe(0);
  });

  it('leaves the queue when the caller aborts', async () => {
    const clock = new VirtualClock();
    const limit = createConcurrencyLimitFilter({ max: 1, queue: 5 });
    const call = withPolicies([limit], scriptedUpstream([{ status: 200, delayMs: 100 }]));
    const a = call(testContext({ clock }));
    const ac = new AbortController();
    const b = call(testContext({ clock, signal: ac.signal }));
    // The caller's own reason, as undici and the mesh reject an aborted request.
    const reason = new Error('caller gave up');
    const check = expect(b).rejects.toBe(reason);
    ac.abort(reason);
    await check;
    expect(limit.queued).toBe(0);
    await clock.advance(100);
    await a;
  });
});

describe('a caller’s abort through a composed stack', () => {
  it.each([
    ['an Error', new Error('caller gave up')],
    ['a string', 'caller gave up'],
  ])('rejects calls in flight and queued alike with the signal’s own reason (%s)', async (_what, reason) => {
    const clock = new VirtualClock();
    const limit = createConcurrencyLimitFilter({ max: 2, queue: 1 });
    const call = withPolicies([limit], scriptedUpstream(['hang']));
    const acs = [0, 1, 2].map(() => new AbortController());
    const calls = acs.map((ac) => call(testContext({ clock, signal: ac.signal })).catch((e: unknown) => e));
    await clock.advance(1);
    expect([limit.active, limit.queued]).toEqual([2, 1]);
    for (const ac of acs) ac.abort(reason);
    // In flight (the upstream saw its attempt's signal abort) as queued: the caller's reason.
    expect(await Promise.all(calls)).toEqual([reason, reason, reason]);
    expect([limit.active, limit.queued]).toEqual([0, 0]);
  });
});

describe('rate limit', () => {
  it('allows a burst, then rps per second, rejecting with MESH_RATE_LIMITED', async () => {
    const clock = new VirtualClock();
    const call = withPolicies(
      [createRateLimitFilter({ rps: 10, burst: 3 }, { clock })],
      scriptedUpstream([200]),
    );
    const results: Array<number | string> = [];
    const one = async () => {
      try {
        results.push((await call(testContext({ clock }))).status);
      } catch (e) {
        results.push(MeshError.is(e) ? `${e.code}:${e.details.retryAfterMs}` : 'error');
      }
    };
    for (let i = 0; i < 4; i++) await one();
    expect(results).toEqual([200, 200, 200, 'MESH_RATE_LIMITED:100']);
    await clock.advance(100);
    await one();
    await one();
    expect(results.slice(4)).toEqual([200, 'MESH_RATE_LIMITED:100']);
  });

  it('token bucket never stores more than burst', async () => {
    const clock = new VirtualClock();
    const b = new TokenBucket({ rps: 100, burst: 5 }, clock);
    await clock.advance(60_000);
    expect(b.tokens).toBe(5);
  });

  it('retryAfterMs is the exact wait: never 1 ms late from float rounding, never early', async () => {
    const clock = new VirtualClock();
    const filter = createRateLimitFilter({ rps: 2, burst: 1 }, { clock });
    const call = withPolicies([filter], scriptedUpstream([200]));
    const run = () =>
      call(testContext({ clock })).then(
        () => 0,
        (e: unknown) => (MeshError.is(e) ? (e.details.retryAfterMs as number) : -1),
      );
    expect(await run()).toBe(0);
    await clock.advance(499);
    // Before: Math.ceil((1 - 0.998) / 0.002) = Math.ceil(1.0000000000000009) = 2.
    expect(await run()).toBe(1);
    await clock.advance(1);
    expect(await run()).toBe(0);
    for (const rps of [0.3, 2, 3, 7, 10, 100, 1000]) {
      const c = new VirtualClock();
      const b = new TokenBucket({ rps, burst: 1 }, c);
      for (let k = 0; k < 50; k++) {
        if (b.tryTake()) continue;
        const wait = b.msUntilNext();
        await c.advance(wait - 1);
        expect(b.tryTake()).toBe(false);
        await c.advance(1);
        expect(b.tryTake()).toBe(true);
      }
    }
  });

  it('reconfigure keeps the tokens: refilled up to now at the old rate, then capped at the new burst', async () => {
    const clock = new VirtualClock();
    const filter = createRateLimitFilter({ rps: 1, burst: 5 }, { clock });
    const bucket = filter.bucket as TokenBucket;
    for (let i = 0; i < 5; i++) expect(bucket.tryTake()).toBe(true);
    // An empty bucket given a higher rate has no token at once.
    filter.reconfigure({ rps: 10, burst: 5 });
    expect(bucket.tokens).toBe(0);
    await clock.advance(250);
    expect(bucket.tokens).toBeCloseTo(2.5);
    // A smaller burst caps what is stored; a larger one adds nothing.
    filter.reconfigure({ rps: 10, burst: 1 });
    expect(bucket.tokens).toBe(1);
    filter.reconfigure({ rps: 10, burst: 3 });
    expect(bucket.tokens).toBe(1);
    expect(bucket.tryTake()).toBe(true);
    // The error speaks of the settings in force.
    const call = withPolicies([filter], scriptedUpstream([200]));
    await expect(call(testContext({ clock, service: 'api' }))).rejects.toMatchObject({
      code: 'MESH_RATE_LIMITED',
      details: { rps: 10, burst: 3, retryAfterMs: 100 },
    });
    // The same settings change nothing.
    filter.reconfigure({ rps: 10, burst: 3 });
    expect(bucket.tokens).toBe(0);
  });

  it('a filter given the bucket of a released one goes on with its tokens', async () => {
    const clock = new VirtualClock();
    const first = createRateLimitFilter({ rps: 1, burst: 3 }, { clock });
    const bucket = first.bucket as TokenBucket;
    for (let i = 0; i < 3; i++) bucket.tryTake();
    expect(bucket.full).toBe(false);
    await clock.advance(1000);
    const next = createRateLimitFilter({ rps: 1, burst: 3 }, { clock, bucket });
    expect(next.bucket).toBe(bucket);
    expect(bucket.tokens).toBe(1);
    await clock.advance(2000);
    expect(bucket.full).toBe(true);
  });
});
