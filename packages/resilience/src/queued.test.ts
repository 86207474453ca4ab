import {
  callOf,
  composeInterceptors,
  type DispatchFn,
  type Filter,
  MeshError,
  type MeshHandler,
  RelayController,
  withCall,
} from '@proxyless/core';
import { testContext, VirtualClock } from '@proxyless/core/testing';
import { describe, expect, it } from 'vitest';
import { createCircuitBreakerFilter } from './breaker.js';
import { createPerTryTimeoutFilter } from './deadline.js';
import { createHedgeFilter } from './hedge.js';
import { holdQueued, type QueuedHold } from './queued.js';
import { createRetryFilter } from './retry.js';

/**
 * A pool with one busy connection, as the pick stage sees it: every attempt waits in its queue
 * (no `onRequestStart`) until `start()`. It keeps an in-flight count as the balancer does and
 * registers each attempt as a {@link QueuedHold} — the contract the pick stage implements.
 */
function queueingPool(register = true) {
  const state = { inflight: 0, sent: 0, queue: [] as Array<QueuedAttempt> };
  class QueuedAttempt implements QueuedHold {
    started = false;
    ended = false;
    cancelled: Error | undefined;
    constructor(readonly handler: MeshHandler) {
      state.inflight++;
    }
    cancelQueued(reason: Error): boolean {
      if (this.started || this.ended) return false;
      this.cancelled = reason;
      this.#end();
      this.handler.onResponseError?.(undefined as never, reason);
      return true;
    }
    #end(): void {
      if (this.ended) return;
      this.ended = true;
      state.inflight--;
    }
    /** undici writes the request to a socket. */
    start(): void {
      this.started = true;
      let aborted: Error | undefined;
      const c = new RelayController((reason) => {
        aborted = reason;
      });
      if (this.cancelled !== undefined) {
        c.abort(this.cancelled); // what pick does: abort at once, forward nothing
        return;
      }
      this.handler.onRequestStart?.(c, {});
      if (aborted !== undefined) {
        this.#end();
        this.handler.onResponseError?.(c, aborted);
        return;
      }
      state.sent++;
    }
  }
  const dispatch: DispatchFn = (opts, handler) => {
    const a = new QueuedAttempt(handler);
    if (register) holdQueued(callOf(opts)!, a);
    state.queue.push(a);
    return true;
  };
  return { state, dispatch };
}

function run(filters: Filter[], terminal: DispatchFn, clock: VirtualClock) {
  const ctx = testContext({ clock, service: 'svc' });
  let controller: RelayController | undefined;
  let error: Error | undefined;
  const handler: MeshHandler = {
    onRequestStart: (c) => {
      controller = c as RelayController;
    },
    onResponseError: (_c, e) => {
      error = e;
    },
  };
  composeInterceptors(filters, terminal)(
    withCall({ path: '/', method: 'GET', origin: 'http://svc' }, ctx),
    handler,
  );
  return { abort: (r: Error) => controller!.abort(r), error: () => error };
}

describe('an attempt queued in the pool (QueuedHold)', () => {
  it('a per-try timeout takes it back from the pool: not a breaker failure, slot and in-flight freed', async () => {
    const clock = new VirtualClock();
    const pool = queueingPool();
    const breaker = createCircuitBreakerFilter({ maxRequests: 10 }, { clock, service: 'svc' });
    const call = run([breaker, createPerTryTimeoutFilter({ perTryTimeoutMs: 100 })], pool.dispatch, clock);
    expect(pool.state.inflight).toBe(1);
    expect(breaker.breaker.active).toBe(1);
    await clock.advance(100);
    expect(call.error()).toMatchObject({ code: 'MESH_TIMEOUT', details: { limit: 'perTry', sent: false } });
    expect(pool.state.inflight).toBe(0);
    expect(breaker.breaker.active).toBe(0);
    expect(breaker.breaker.stats.failures).toBe(0);
    pool.state.queue[0]!.start();
    expect(pool.state.sent).toBe(0);
  });

  const stacks: Array<[string, (clock: VirtualClock) => Filter[]]> = [
    ['retry', () => [createRetryFilter({ maxRetries: 2 })]],
    ['hedge', (clock) => [createHedgeFilter({ delayMs: 10_000, maxHedges: 1 }, { clock })]],
    ['retry over a per-try timeout', () => [createRetryFilter({ maxRetries: 2 })]],
  ];
  it.each(stacks)('a caller abort through %s takes it back from the pool', (name, filters) => {
    const clock = new VirtualClock();
    const pool = queueingPool();
    const breaker = createCircuitBreakerFilter({ maxRequests: 10 }, { clock, service: 'svc' });
    const stack = [...filters(clock), breaker];
    if (name.includes('per-try')) stack.push(createPerTryTimeoutFilter({ perTryTimeoutMs: 1000 }));
    const call = run(stack, pool.dispatch, clock);
    expect(breaker.breaker.active).toBe(1);
    const reason = new Error('caller gave up');
    call.abort(reason);
    expect(call.error()).toBe(reason);
    expect(pool.state.inflight).toBe(0);
    expect(breaker.breaker.active).toBe(0);
    pool.state.queue[0]!.start();
    expect(pool.state.sent).toBe(0);
  });

  it('with no holder below, the stage holding a slot takes it back itself', () => {
    const clock = new VirtualClock();
    const pool = queueingPool(false);
    const breaker = createCircuitBreakerFilter({ maxRequests: 10 }, { clock, service: 'svc' });
    const call = run([createRetryFilter({ maxRetries: 2 }), breaker], pool.dispatch, clock);
    const reason = new MeshError('MESH_ABORTED', 'caller gave up');
    call.abort(reason);
    expect(call.error()).toBe(reason);
    expect(breaker.breaker.active).toBe(0);
    pool.state.queue[0]!.start(); // the breaker aborts it when the pool gets to it
    expect(pool.state.sent).toBe(0);
    expect(pool.state.inflight).toBe(0);
  });
});
