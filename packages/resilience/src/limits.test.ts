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
    const check = expect(b).rejects.toMatchObject({ code: 'MESH_ABORTED' });
    ac.abort();
    await check;
    expect(limit.queued).toBe(0);
    await clock.advance(100);
    await a;
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
});
