import { PassThrough } from 'node:stream';
import { text } from 'node:stream/consumers';
import {
  type CallContext,
  type CallResult,
  createEndpoint,
  type Filter,
  type ResponseHeaders,
} from '@proxyless/core';
import { recordingObserver, seededRandom, testContext, VirtualClock } from '@proxyless/core/testing';
import { describe, expect, it } from 'vitest';
import { createCircuitBreakerFilter } from './breaker.js';
import { RetryBudget } from './budget.js';
import { createRetryFilter } from './retry.js';
import { withPolicies } from './stack.js';

/**
 * An upstream whose first answer is a 503 with a body the test feeds by hand (it never ends unless
 * told), then 200s. Records when each attempt started, on the call's clock.
 */
function slowBodyUpstream(headers: ResponseHeaders = {}) {
  const slow = new PassThrough();
  slow.write('overloaded, body still coming');
  const starts: number[] = [];
  const endpoint = createEndpoint({ id: 'upstream:80', address: 'upstream', port: 80 });
  const next = async (ctx: CallContext): Promise<CallResult> => {
    starts.push(ctx.clock.now());
    if (starts.length === 1) return { status: 503, headers, body: slow, endpoint };
    const body = new PassThrough();
    body.end('ok');
    return { status: 200, headers: {}, body, endpoint };
  };
  return { slow, starts, next };
}

const backoff100 = { backoff: { baseMs: 100, maxMs: 100 } };

/** A call through the retry filter (100 ms backoff) and `more` filters, on a virtual clock. */
function call(
  up: ReturnType<typeof slowBodyUpstream>,
  options: { more?: Filter[]; signal?: AbortSignal } = {},
) {
  const clock = new VirtualClock();
  const observer = recordingObserver();
  const budget = new RetryBudget({ ratio: 0, minPerSecond: 1, windowMs: 10_000 }, clock);
  const p = withPolicies(
    [createRetryFilter(backoff100, { budget }), ...(options.more ?? [])],
    up.next,
  )(testContext({ clock, observer, random: seededRandom(3), signal: options.signal }));
  const settled = p.then(
    (r) => r,
    (e: unknown) => e as Error,
  );
  const retryDelay = () => observer.events.find((e) => e.type === 'retry')!.delayMs!;
  return { clock, observer, budget, p, settled, retryDelay };
}

describe('retry: a retried response is drained while the backoff runs, never waited for', () => {
  it('retries when the backoff is over although the 503 body has not ended, and drops that body', async () => {
    const up = slowBodyUpstream();
    const { clock, p, retryDelay } = call(up);
    await clock.advance(0);
    const delay = retryDelay();
    expect(delay).toBeGreaterThan(0);
    await clock.advance(delay);
    // The backoff ran from the 503's head: the retry went out then, not when its body ended.
    expect(up.starts).toEqual([0, delay]);
    // The unfinished body was dropped with its exchange (its connection is not reused).
    expect(up.slow.destroyed).toBe(true);
    const r = await p;
    expect(r.status).toBe(200);
    expect(await text(r.body)).toBe('ok');
  });

  it('keeps a body that ends during the backoff and retries only when the backoff is over', async () => {
    const up = slowBodyUpstream();
    const { clock, p, retryDelay } = call(up);
    await clock.advance(0);
    up.slow.end(' — done');
    await clock.advance(0);
    expect(up.starts).toEqual([0]);
    await clock.runAll();
    expect(up.starts).toEqual([0, retryDelay()]);
    expect((await p).status).toBe(200);
  });

  it('drops at once a retried response whose content-length is past the 64 KiB drain limit', async () => {
    const up = slowBodyUpstream({ 'content-length': String(64 * 1024 + 1) });
    const { clock, p } = call(up);
    await clock.advance(0);
    expect(up.slow.destroyed).toBe(true);
    expect(up.starts).toHaveLength(1);
    await clock.runAll();
    expect((await p).status).toBe(200);
  });

  it('refused by the breaker after a cut body, the caller gets MESH_CIRCUIT_OPEN, never a truncated 503', async () => {
    const breaker = createCircuitBreakerFilter({}, { clock: new VirtualClock(), service: 'test' });
    const up = slowBodyUpstream();
    const { clock, observer, budget, settled } = call(up, { more: [breaker] });
    await clock.advance(0);
    breaker.breaker.open();
    await clock.runAll(50);
    expect(await settled).toMatchObject({ code: 'MESH_CIRCUIT_OPEN' });
    expect(up.starts).toHaveLength(1);
    expect(up.slow.destroyed).toBe(true);
    expect(budget.snapshot().retries).toBe(0);
    expect(observer.events.find((e) => e.type === 'give_up')?.reason).toBe('circuit_open (gateway-error)');
    breaker.breaker.close();
  });

  it('a caller abort during the backoff ends the drained exchange and the call with its reason', async () => {
    const up = slowBodyUpstream();
    const ac = new AbortController();
    const { clock, settled } = call(up, { signal: ac.signal });
    await clock.advance(0);
    ac.abort(new Error('caller gave up'));
    await clock.advance(0);
    expect(up.slow.destroyed).toBe(true);
    await clock.runAll();
    expect(await settled).toMatchObject({ message: 'caller gave up' });
    expect(up.starts).toHaveLength(1);
  });
});
