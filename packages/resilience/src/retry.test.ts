import { text } from 'node:stream/consumers';
import type { CallContext } from '@proxyless/core';
import { MeshError } from '@proxyless/core';
import {
  recordingObserver,
  scriptedUpstream,
  seededRandom,
  testContext,
  VirtualClock,
} from '@proxyless/core/testing';
import { describe, expect, it } from 'vitest';
import { REPLAY_BUFFER_BYTES } from './body.js';
import { createCircuitBreakerFilter } from './breaker.js';
import { RetryBudget } from './budget.js';
import { DEFAULT_RETRY, type RetryOn } from './config.js';
import { createPerTryTimeoutFilter } from './deadline.js';
import { createHedgeFilter } from './hedge.js';
import { backoffDelay, createGate, createRetryFilter, parseRetryAfter, retryReason } from './retry.js';
import { withPolicies } from './stack.js';
import { runPolicy } from './testing.js';

function setup(script: Parameters<typeof scriptedUpstream>[0], retry = {}, ctxOptions = {}) {
  const clock = new VirtualClock();
  const observer = recordingObserver();
  const upstream = scriptedUpstream(script);
  const ctx = testContext({ clock, observer, ...ctxOptions });
  return { clock, observer, upstream, ctx, retry: createRetryFilter(retry) };
}

describe('retry filter', () => {
  it('retries gateway errors up to maxRetries with full-jitter backoff on the clock', async () => {
    const { clock, upstream, ctx, retry, observer } = setup(['503', '503', '503', 200], { maxRetries: 2 });
    const p = withPolicies([retry], upstream)(ctx);
    await clock.runAll();
    const result = await p;
    expect(result.status).toBe(503);
    expect(upstream.calls.map((c) => c.attempt)).toEqual([1, 2, 3]);
    const retries = observer.events.filter((e) => e.type === 'retry');
    expect(retries).toHaveLength(2);
    // Each retry starts exactly its backoff after the previous answer.
    const d1 = retries[0]!.delayMs!;
    const d2 = retries[1]!.delayMs!;
    expect(d1).toBeLessThan(25);
    expect(d2).toBeLessThan(50);
    expect(upstream.calls[1]!.at).toBe(d1);
    expect(upstream.calls[2]!.at).toBe(d1 + d2);
    const giveUp = observer.events.find((e) => e.type === 'give_up');
    expect(giveUp?.reason).toBe('max_retries (gateway-error)');
  });

  it('returns the first good answer and does not retry non-retriable statuses', async () => {
    const { clock, upstream, ctx, retry } = setup(['503', 200]);
    const p = withPolicies([retry], upstream)(ctx);
    await clock.runAll();
    expect((await p).status).toBe(200);
    expect(upstream.calls).toHaveLength(2);

    const s2 = setup([500, 200]);
    const p2 = withPolicies([s2.retry], s2.upstream)(s2.ctx);
    await s2.clock.runAll();
    expect((await p2).status).toBe(500);
    expect(s2.upstream.calls).toHaveLength(1);
  });

  it('retries 5xx, retriable status codes and retriable headers when asked', async () => {
    const s = setup([500, 429, { status: 200, headers: { 'x-retry-me': '1' } }, 200], {
      retryOn: ['5xx', 'retriable-status-codes', 'retriable-headers'],
      retriableStatusCodes: [429],
      retriableHeaders: ['x-retry-me'],
      maxRetries: 5,
    });
    const p = withPolicies([s.retry], s.upstream)(s.ctx);
    await s.clock.runAll();
    expect((await p).status).toBe(200);
    expect(s.observer.events.filter((e) => e.type === 'retry').map((e) => e.reason)).toEqual([
      '5xx',
      'retriable-status-codes',
      'retriable-headers',
    ]);
  });

  it('never replays a non-idempotent request after a response or reset', async () => {
    const s = setup(['503', 200], {}, { request: { method: 'POST', body: 'x' } });
    const p = withPolicies([s.retry], s.upstream)(s.ctx);
    await s.clock.runAll();
    expect((await p).status).toBe(503);
    expect(s.upstream.calls).toHaveLength(1);
    expect(s.observer.events.find((e) => e.type === 'give_up')?.reason).toBe(
      'not_idempotent (gateway-error)',
    );

    const r = setup(['reset', 200], {}, { request: { method: 'POST', body: 'x' } });
    const pr = expect(withPolicies([r.retry], r.upstream)(r.ctx)).rejects.toMatchObject({
      code: 'MESH_UPSTREAM_RESET',
    });
    await r.clock.runAll();
    await pr;
    expect(r.upstream.calls).toHaveLength(1);
  });

  it('sends a non-idempotent request elsewhere after a connect failure (nothing was sent)', async () => {
    const s = setup(['connect-error', 201], {}, { request: { method: 'POST', body: 'x' } });
    const p = withPolicies([s.retry], s.upstream)(s.ctx);
    await s.clock.runAll();
    expect((await p).status).toBe(201);
    expect(s.upstream.calls).toHaveLength(2);
    expect(s.upstream.calls[1]!.excluded).toEqual(['upstream:80']);
  });

  it('retryOn 5xx and gateway-error also cover an upstream that does not answer: connect failure, reset, refused stream (Envoy)', () => {
    const connect = new MeshError('MESH_CONNECT_FAILED', 'refused', {
      details: { phase: 'connect', bodySent: false, errorCode: 'ECONNREFUSED' },
    });
    const reset = new MeshError('MESH_UPSTREAM_RESET', 'reset', {
      details: { phase: 'request', bodySent: true, errorCode: 'UND_ERR_SOCKET' },
    });
    const refused = new MeshError('MESH_UPSTREAM_RESET', 'refused stream', {
      details: {
        phase: 'request',
        bodySent: false,
        errorCode: 'NGHTTP2_REFUSED_STREAM',
        refusedStream: true,
      },
    });
    const why = (retryOn: RetryOn[], error: unknown) =>
      retryReason({ ok: false, error }, { ...DEFAULT_RETRY, retryOn });
    for (const on of ['5xx', 'gateway-error'] as const) {
      expect([on, why([on], connect), why([on], reset), why([on], refused)]).toEqual([on, on, on, on]);
    }
    // Envoy's `reset` takes every reset reason, a connect failure and a read (per-try) timeout too.
    const perTry = new MeshError('MESH_TIMEOUT', 'per try', { details: { limit: 'perTry' } });
    expect([why(['reset'], connect), why(['reset'], refused), why(['reset'], perTry)]).toEqual([
      'reset',
      'reset',
      'per-try-timeout',
    ]);
    // The most specific entry that allows the retry is the reason given.
    expect(why(['5xx', 'connect-failure'], connect)).toBe('connect-failure');
    expect(why(['gateway-error', 'reset'], reset)).toBe('reset');
    expect(why(['5xx', 'refused-stream'], refused)).toBe('refused-stream');
    expect(why(['5xx', 'gateway-error'], reset)).toBe('5xx');
    // The narrow entries still cover only their own failure.
    expect(why(['connect-failure'], reset)).toBeUndefined();
    expect(why(['refused-stream'], reset)).toBeUndefined();
    expect(why(['retriable-status-codes', 'retriable-headers'], connect)).toBeUndefined();
    expect(why(['retriable-status-codes', 'retriable-headers'], reset)).toBeUndefined();
    // Not a transport failure: never retried, whatever retryOn says.
    expect(why(['5xx', 'gateway-error'], new MeshError('MESH_CIRCUIT_OPEN', 'open'))).toBeUndefined();
    expect(why(['5xx', 'gateway-error'], new Error('boom'))).toBeUndefined();
  });

  it('retryOn 5xx / gateway-error retries a connect failure for any method, a reset only when it is safe to replay', async () => {
    for (const on of ['5xx', 'gateway-error'] as const) {
      // A connect failure sent nothing: a POST goes to another endpoint.
      const c = setup(['connect-error', 201], { retryOn: [on] }, { request: { method: 'POST', body: 'x' } });
      const pc = withPolicies([c.retry], c.upstream)(c.ctx);
      await c.clock.runAll();
      expect([on, (await pc).status, c.upstream.calls.length]).toEqual([on, 201, 2]);
      expect(c.observer.events.find((e) => e.type === 'retry')?.reason).toBe(on);

      // A reset of an idempotent request is retried.
      const g = setup(['reset', 200], { retryOn: [on] });
      const pg = withPolicies([g.retry], g.upstream)(g.ctx);
      await g.clock.runAll();
      expect([on, (await pg).status, g.upstream.calls.length]).toEqual([on, 200, 2]);

      // A reset after a POST was sent is not: the idempotency rule is unchanged.
      const r = setup(['reset', 200], { retryOn: [on] }, { request: { method: 'POST', body: 'x' } });
      const pr = expect(withPolicies([r.retry], r.upstream)(r.ctx)).rejects.toMatchObject({
        code: 'MESH_UPSTREAM_RESET',
      });
      await r.clock.runAll();
      await pr;
      expect(r.upstream.calls).toHaveLength(1);
      expect(r.observer.events.find((e) => e.type === 'give_up')?.reason).toBe(`not_idempotent (${on})`);
    }
  });

  it('does not replay a streamed body larger than the replay buffer (#9.6)', async () => {
    const { Readable } = await import('node:stream');
    const big = Buffer.alloc(REPLAY_BUFFER_BYTES + 1, 120);
    const s = setup(
      ['reset', 200],
      { allowNonIdempotent: true },
      { request: { method: 'POST', body: Readable.from([big]), bodyReplayable: false } },
    );
    const reading = async (ctx: CallContext) => {
      for await (const _ of ctx.request.body as AsyncIterable<Buffer>) void _;
      return s.upstream(ctx);
    };
    const p = expect(withPolicies([s.retry], reading)(s.ctx)).rejects.toMatchObject({
      code: 'MESH_UPSTREAM_RESET',
    });
    await s.clock.runAll();
    await p;
    expect(s.observer.events.find((e) => e.type === 'give_up')?.reason).toBe('body_not_replayable (reset)');
  });

  it('replays a streamed body it kept, byte for byte (#9.5)', async () => {
    const { Readable } = await import('node:stream');
    const s = setup(
      ['reset', 200],
      { allowNonIdempotent: true },
      {
        request: { method: 'PUT', body: Readable.from(['part-1,', 'part-2']), bodyReplayable: false },
      },
    );
    const seen: string[] = [];
    const reading = async (ctx: CallContext) => {
      const chunks: Buffer[] = [];
      for await (const c of ctx.request.body as AsyncIterable<Buffer>) chunks.push(c);
      seen.push(Buffer.concat(chunks).toString());
      return s.upstream(ctx);
    };
    const p = withPolicies([s.retry], reading)(s.ctx);
    await s.clock.runAll();
    expect((await p).status).toBe(200);
    expect(seen).toEqual(['part-1,part-2', 'part-1,part-2']);
  });

  it('honours Retry-After in seconds, and stops when it exceeds retryAfterMax', async () => {
    const s = setup([{ status: 503, headers: { 'retry-after': '2' } }, 200], { retryAfterMaxMs: 5000 });
    const p = withPolicies([s.retry], s.upstream)(s.ctx);
    await s.clock.runAll();
    expect((await p).status).toBe(200);
    expect(s.upstream.calls[1]!.at).toBe(2000);

    const t = setup([{ status: 503, headers: { 'retry-after': '60' } }, 200], { retryAfterMaxMs: 5000 });
    const pt = withPolicies([t.retry], t.upstream)(t.ctx);
    await t.clock.runAll();
    expect((await pt).status).toBe(503);
    expect(t.observer.events.find((e) => e.type === 'give_up')?.reason).toBe(
      'retry_after_too_long (gateway-error)',
    );
  });

  it('parses Retry-After as an HTTP date', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter({ 'retry-after': 'Thu, 01 Jan 2026 00:00:03 GMT' }, now)).toBe(3000);
    expect(parseRetryAfter({ 'retry-after': 'soon' }, now)).toBeUndefined();
    expect(parseRetryAfter({}, now)).toBeUndefined();
  });

  it('measures an HTTP-date Retry-After on the call clock, not the real date', async () => {
    // 07:28:00 on the virtual wall clock; the upstream asks to come back at 07:28:05.
    const clock = new VirtualClock(0, { wall: Date.parse('Wed, 21 Oct 2015 07:28:00 GMT') });
    const upstream = scriptedUpstream([
      { status: 503, headers: { 'retry-after': 'Wed, 21 Oct 2015 07:28:05 GMT' } },
      200,
    ]);
    const p = withPolicies(
      [createRetryFilter({ retryAfterMaxMs: 10_000 })],
      upstream,
    )(testContext({ clock }));
    await clock.runAll();
    expect((await p).status).toBe(200);
    expect(upstream.calls[1]!.at).toBe(5000);
  });

  it('stops when the budget is exhausted and returns the last real response', async () => {
    const clock = new VirtualClock();
    const budget = new RetryBudget({ ratio: 0, minPerSecond: 0.1, windowMs: 10_000 }, clock); // 1 retry per window
    const retry = createRetryFilter({ maxRetries: 3 }, { budget });
    const observer = recordingObserver();
    const upstream = scriptedUpstream([{ status: 503, body: 'real' }]);
    const p1 = withPolicies([retry], upstream)(testContext({ clock, observer }));
    await clock.runAll();
    const r1 = await p1;
    expect(r1.status).toBe(503);
    expect(upstream.calls).toHaveLength(2); // one retry allowed, then budget
    const body = await r1.body.toArray();
    expect(Buffer.concat(body).toString()).toBe('real');
    expect(observer.events.at(-1)?.reason).toBe('budget_exhausted (gateway-error)');
  });

  it('budget allows ratio of requests plus a reserve, over a sliding window', () => {
    const clock = new VirtualClock();
    const b = new RetryBudget({ ratio: 0.2, minPerSecond: 0, windowMs: 10_000 }, clock);
    for (let i = 0; i < 10; i++) b.recordRequest();
    expect(b.tryWithdraw()).toBe(true);
    expect(b.tryWithdraw()).toBe(true);
    expect(b.tryWithdraw()).toBe(false);
    expect(b.snapshot()).toEqual({ requests: 10, retries: 2 });
  });

  it('limits retries in flight with a gate', async () => {
    const gate = createGate(0);
    const s = setup(['503', 200]);
    const retry = createRetryFilter({}, { gate });
    const p = withPolicies([retry], s.upstream)(s.ctx);
    await s.clock.runAll();
    expect((await p).status).toBe(503);
    expect(s.observer.events.at(-1)?.reason).toBe('retry_overflow (gateway-error)');
  });

  it('retries a per-try timeout on another endpoint', async () => {
    const clock = new VirtualClock();
    const observer = recordingObserver();
    const upstream = scriptedUpstream([{ status: 200, delayMs: 1000, endpoint: 'slow:80' }, 200]);
    const ctx = testContext({ clock, observer });
    const call = withPolicies(
      [
        createRetryFilter({ backoff: { baseMs: 0, maxMs: 0 } }),
        createPerTryTimeoutFilter({ perTryTimeoutMs: 100 }),
      ],
      upstream,
    );
    const p = call(ctx);
    await clock.runAll();
    const r = await p;
    expect(r.status).toBe(200);
    expect(upstream.calls[0]!.aborted).toBe(true);
    expect(upstream.calls[1]!.at).toBe(100);
    expect(observer.events.find((e) => e.type === 'retry')?.reason).toBe('per-try-timeout');
  });

  it('gives up when the backoff would pass the deadline', async () => {
    const s = setup(['503', 200], { backoff: { baseMs: 1000, maxMs: 1000 } }, { deadline: 1 });
    const p = withPolicies([s.retry], s.upstream)(s.ctx);
    await s.clock.runAll();
    expect((await p).status).toBe(503);
  });

  it('full-jitter backoff stays within base·2^n capped at max', () => {
    for (let n = 1; n < 8; n++) {
      expect(backoffDelay(DEFAULT_RETRY, n, () => 0.999999)).toBeLessThan(Math.min(250, 25 * 2 ** (n - 1)));
      expect(backoffDelay(DEFAULT_RETRY, n, () => 0)).toBe(0);
    }
  });

  it('does not retry errors that are not transport errors', async () => {
    const s = setup(['503']);
    const failing = async () => {
      throw new MeshError('MESH_CIRCUIT_OPEN', 'open');
    };
    const p = withPolicies([s.retry], failing)(s.ctx);
    await expect(p).rejects.toMatchObject({ code: 'MESH_CIRCUIT_OPEN' });
  });
});

describe('retry when the circuit breaker opens during the call', () => {
  const opensAtOnce = { volumeThreshold: 1, errorThresholdPercentage: 1 };

  /** A closed breaker to open by hand mid-call, and a budget of one retry to watch. */
  function withBreaker() {
    const clock = new VirtualClock();
    const observer = recordingObserver();
    const budget = new RetryBudget({ ratio: 0, minPerSecond: 1, windowMs: 10_000 }, clock);
    const breaker = createCircuitBreakerFilter({}, { clock, service: 'test' });
    return { clock, observer, budget, breaker };
  }

  it('returns the last real response, not MESH_CIRCUIT_OPEN, and says why it stopped', async () => {
    const rec = await runPolicy({ retry: { maxRetries: 2 }, circuitBreaker: opensAtOnce }, ['503']);
    expect(rec.error).toBeUndefined();
    expect(rec.status).toBe(503);
    expect(rec.attempts.map((a) => a.outcome)).toEqual([503]);
    expect(rec.stoppedBecause).toBe('circuit_open (gateway-error)');
  });

  it('returns the last real error when the retry of a failed attempt is refused', async () => {
    const rec = await runPolicy({ retry: { maxRetries: 2 }, circuitBreaker: opensAtOnce }, ['reset']);
    expect(rec.error?.code).toBe('MESH_UPSTREAM_RESET');
    expect(rec.stoppedBecause).toBe('circuit_open (reset)');
  });

  it('still fails a first attempt with MESH_CIRCUIT_OPEN when the breaker is already open', async () => {
    const clock = new VirtualClock();
    const breaker = createCircuitBreakerFilter({}, { clock, service: 'test' });
    breaker.breaker.open();
    const call = withPolicies([createRetryFilter(), breaker], scriptedUpstream([200]));
    await expect(call(testContext({ clock }))).rejects.toMatchObject({ code: 'MESH_CIRCUIT_OPEN' });
    breaker.breaker.close();
  });

  it('hands over the kept body of a response whose retry the breaker refused, and refunds the budget', async () => {
    // The breaker opens during the backoff (another call's failures); the retried 503 was drained.
    const { clock, observer, budget, breaker } = withBreaker();
    const upstream = scriptedUpstream([
      { status: 503, body: 'try later', headers: { 'x-why': 'busy' } },
      200,
    ]);
    const retry = createRetryFilter({ backoff: { baseMs: 100, maxMs: 100 } }, { budget });
    const p = withPolicies(
      [retry, breaker],
      upstream,
    )(testContext({ clock, observer, random: seededRandom(3) }));
    await clock.advance(0);
    expect(budget.snapshot().retries).toBe(1);
    breaker.breaker.open();
    await clock.runAll(50);
    const r = await p;
    expect(r.status).toBe(503);
    expect(r.headers['x-why']).toBe('busy');
    expect(await text(r.body)).toBe('try later');
    expect(upstream.calls).toHaveLength(1);
    expect(budget.snapshot().retries).toBe(0);
    expect(observer.events.find((e) => e.type === 'give_up')?.reason).toBe('circuit_open (gateway-error)');
    breaker.breaker.close();
  });

  it('stops hedging when the breaker refuses a hedge; the first attempt still answers', async () => {
    const { clock, observer, budget, breaker } = withBreaker();
    const upstream = scriptedUpstream([{ status: 200, delayMs: 200 }]);
    const hedge = createHedgeFilter({ delayMs: 50, maxHedges: 2 }, { budget });
    const p = withPolicies([hedge, breaker], upstream)(testContext({ clock, observer }));
    await clock.advance(0);
    breaker.breaker.open();
    await clock.runAll(50);
    expect((await p).status).toBe(200);
    expect(upstream.calls).toHaveLength(1);
    expect(budget.snapshot().retries).toBe(0);
    expect(observer.events.filter((e) => e.type === 'hedge_skipped').map((e) => e.reason)).toEqual([
      'circuit_open',
    ]);
    breaker.breaker.close();
  });
});
