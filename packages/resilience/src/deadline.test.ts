import { PassThrough } from 'node:stream';
import { abortError, type CallContext, MeshError } from '@proxyless/core';
import { recordingObserver, scriptedUpstream, testContext, VirtualClock } from '@proxyless/core/testing';
import { describe, expect, it, vi } from 'vitest';
import {
  createDeadlineFilter,
  createPerTryTimeoutFilter,
  DEADLINE_HEADER,
  deadlineFromHeaders,
  remainingIncomingDeadline,
  runWithIncomingDeadline,
} from './deadline.js';
import { withPolicies } from './stack.js';

describe('overall timeout', () => {
  it('fails with MESH_TIMEOUT limit overall exactly at the limit and aborts the attempt', async () => {
    const clock = new VirtualClock();
    const upstream = scriptedUpstream(['hang']);
    const call = withPolicies([createDeadlineFilter({ timeoutMs: 300 })], upstream);
    let settledAt = -1;
    const p = call(testContext({ clock })).catch((e: unknown) => {
      settledAt = clock.now();
      throw e;
    });
    const check = expect(p).rejects.toMatchObject({
      code: 'MESH_TIMEOUT',
      details: { limit: 'overall', timeoutMs: 300 },
    });
    await clock.advance(299);
    expect(settledAt).toBe(-1);
    await clock.advance(1);
    await check;
    expect(settledAt).toBe(300);
    expect(upstream.calls[0]!.aborted).toBe(true);
    expect(clock.pendingTimers).toBe(0);
  });

  it('keeps no timer once the exchange has ended (#9.9)', async () => {
    const clock = new VirtualClock();
    const call = withPolicies([createDeadlineFilter({ timeoutMs: 15_000 })], scriptedUpstream([200]));
    for (let i = 0; i < 100; i++) {
      const r = await call(testContext({ clock }));
      await new Promise((resolve) => r.body.resume().once('end', resolve));
    }
    expect(clock.pendingTimers).toBe(0);
  });

  it('with a caller signal, the deadline gets its own linked signal', async () => {
    const clock = new VirtualClock();
    const ac = new AbortController();
    let seen: AbortSignal | undefined;
    const upstream = scriptedUpstream(['hang']);
    const p = withPolicies([createDeadlineFilter({ timeoutMs: 100 })], (ctx) => {
      seen = ctx.signal;
      return upstream(ctx);
    })(testContext({ clock, signal: ac.signal }));
    const check = expect(p).rejects.toMatchObject({ code: 'MESH_TIMEOUT', details: { limit: 'overall' } });
    expect(seen).not.toBe(ac.signal);
    await clock.advance(100);
    await check;
    expect(seen?.aborted).toBe(true);
    expect(ac.signal.aborted).toBe(false);
  });

  it('passes the answer through; close() releases its timers', async () => {
    const clock = new VirtualClock();
    const deadline = createDeadlineFilter({ timeoutMs: 300 });
    const call = withPolicies([deadline], scriptedUpstream([{ status: 200, delayMs: 100 }]));
    const p = call(testContext({ clock }));
    await clock.advance(100);
    expect((await p).status).toBe(200);
    deadline.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it('settles at the limit even when the wrapped function ignores its signal', async () => {
    const clock = new VirtualClock();
    const stubborn = (ctx: CallContext) =>
      scriptedUpstream([{ status: 200, delayMs: 1000 }])({ ...ctx, signal: undefined });
    const p = withPolicies([createDeadlineFilter({ timeoutMs: 50 })], stubborn)(testContext({ clock }));
    const check = expect(p).rejects.toMatchObject({ code: 'MESH_TIMEOUT' });
    await clock.runAll();
    await check;
  });

  it('sets ctx.deadline and keeps an earlier one', async () => {
    const clock = new VirtualClock(1000);
    let seen: number | undefined;
    const probe = async (ctx: CallContext) => {
      seen = ctx.deadline;
      return scriptedUpstream([200])(ctx);
    };
    await withPolicies([createDeadlineFilter({ timeoutMs: 300 })], probe)(testContext({ clock }));
    expect(seen).toBe(1300);
    await withPolicies(
      [createDeadlineFilter({ timeoutMs: 300 })],
      probe,
    )(testContext({ clock, deadline: 1100 }));
    expect(seen).toBe(1100);
  });

  it('a caller abort wins over the timeout and is reported as such', async () => {
    const clock = new VirtualClock();
    const ac = new AbortController();
    const p = withPolicies(
      [createDeadlineFilter({ timeoutMs: 300 })],
      scriptedUpstream(['hang']),
    )(testContext({ clock, signal: ac.signal }));
    // The caller's own reason, as undici and the mesh reject an aborted request.
    const settled = p.catch((e: unknown) => e);
    const reason = new Error('caller gave up');
    ac.abort(reason);
    expect(await settled).toBe(reason);
  });
});

describe('deadline and the response body', () => {
  const streaming = (ctx: CallContext) => {
    const body = new PassThrough();
    ctx.signal?.addEventListener('abort', () => body.destroy(abortError(ctx.signal!)), { once: true });
    body.on('error', () => undefined);
    return Promise.resolve({ status: 200, headers: {}, body });
  };

  it('a body still streaming at the deadline is cut (no caller signal: shared slot)', async () => {
    const clock = new VirtualClock();
    const r = await withPolicies(
      [createDeadlineFilter({ timeoutMs: 100 })],
      streaming,
    )(testContext({ clock }));
    await clock.advance(99);
    expect(r.body.destroyed).toBe(false);
    await clock.advance(1);
    expect(r.body.destroyed).toBe(true);
  });

  it('a body still streaming at the deadline is cut (caller signal: own signal)', async () => {
    const clock = new VirtualClock();
    const ac = new AbortController();
    const r = await withPolicies(
      [createDeadlineFilter({ timeoutMs: 100 })],
      streaming,
    )(testContext({ clock, signal: ac.signal }));
    await clock.advance(100);
    expect(r.body.destroyed).toBe(true);
    expect(clock.pendingTimers).toBe(0);
  });

  it('a body that ended releases the timer', async () => {
    const clock = new VirtualClock();
    const source = new PassThrough();
    const r = await withPolicies([createDeadlineFilter({ timeoutMs: 100 })], () =>
      Promise.resolve({ status: 200, headers: {}, body: source }),
    )(testContext({ clock }));
    r.body.resume();
    source.end('done');
    await new Promise((resolve) => r.body.once('end', resolve));
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('per-try timeout', () => {
  it('aborts the attempt with limit perTry and sends the remaining time downstream', async () => {
    const clock = new VirtualClock();
    const observer = recordingObserver();
    let header: unknown;
    const upstream = scriptedUpstream(['hang']);
    const probe = (ctx: CallContext) => {
      header = ctx.request.headers[DEADLINE_HEADER];
      return upstream(ctx);
    };
    const p = withPolicies(
      [createPerTryTimeoutFilter({ perTryTimeoutMs: 100 })],
      probe,
    )(testContext({ clock, observer }));
    const check = expect(p).rejects.toMatchObject({ code: 'MESH_TIMEOUT', details: { limit: 'perTry' } });
    await clock.advance(100);
    await check;
    expect(header).toBe('100');
    expect(observer.events.map((e) => e.type)).toEqual(['timeout']);
  });

  it('propagates the overall remainder when it is shorter than the per-try timeout', async () => {
    const clock = new VirtualClock();
    let header: unknown;
    const probe = (ctx: CallContext) => {
      header = ctx.request.headers[DEADLINE_HEADER];
      return scriptedUpstream([200])(ctx);
    };
    const call = withPolicies(
      [createDeadlineFilter({ timeoutMs: 80 }), createPerTryTimeoutFilter({ perTryTimeoutMs: 100 })],
      probe,
    );
    await call(testContext({ clock }));
    expect(header).toBe('80');
  });

  it('adds no header and no timer when there is no deadline at all', async () => {
    const clock = new VirtualClock();
    let headers: unknown;
    const probe = (ctx: CallContext) => {
      headers = ctx.request.headers;
      return scriptedUpstream([200])(ctx);
    };
    await withPolicies(
      [createDeadlineFilter({ timeoutMs: 0 }), createPerTryTimeoutFilter({ perTryTimeoutMs: 0 })],
      probe,
    )(testContext({ clock }));
    expect(headers).toEqual({});
  });
});

describe('incoming deadline propagation', () => {
  it('reads x-mesh-deadline-ms into an absolute deadline and ignores bad values', () => {
    const clock = new VirtualClock(500);
    expect(deadlineFromHeaders({ 'x-mesh-deadline-ms': '250' }, clock)).toBe(750);
    expect(deadlineFromHeaders({ 'X-Mesh-Deadline-Ms': '10' }, clock)).toBe(510);
    expect(deadlineFromHeaders({ 'x-mesh-deadline-ms': '-1' }, clock)).toBeUndefined();
    expect(deadlineFromHeaders({ 'x-mesh-deadline-ms': 'soon' }, clock)).toBeUndefined();
    expect(deadlineFromHeaders({}, clock)).toBeUndefined();
  });

  it('limits outgoing calls made inside the handler to the caller’s remaining time', async () => {
    const clock = new VirtualClock();
    const call = withPolicies(
      [createDeadlineFilter({ timeoutMs: 10_000 }), createPerTryTimeoutFilter({ perTryTimeoutMs: 0 })],
      async (ctx) => {
        headerSeen = ctx.request.headers[DEADLINE_HEADER];
        return scriptedUpstream(['hang'])(ctx);
      },
    );
    let headerSeen: unknown;
    const p = runWithIncomingDeadline(
      { 'x-mesh-deadline-ms': '120' },
      async () => {
        await clock.sleep(20); // the handler does some work first
        expect(remainingIncomingDeadline()).toBe(100);
        return call(testContext({ clock }));
      },
      clock,
    );
    const check = expect(p).rejects.toMatchObject({ code: 'MESH_TIMEOUT', details: { limit: 'propagated' } });
    await clock.advance(20);
    expect(headerSeen).toBe('100');
    await clock.advance(99);
    expect(clock.pendingTimers).toBeGreaterThan(0);
    await clock.advance(1);
    await check;
    expect(clock.now()).toBe(120);
  });

  it('is one context for the process: another copy of this module (proxyless bundles one) sees it', async () => {
    const clock = new VirtualClock();
    vi.resetModules();
    const other = await import('./deadline.js');
    expect(other.runWithIncomingDeadline).not.toBe(runWithIncomingDeadline);
    // Set by the application's copy (`@proxyless/resilience`), read by the mesh's, and back.
    runWithIncomingDeadline(
      { 'x-mesh-deadline-ms': '250' },
      () => expect(other.remainingIncomingDeadline()).toBe(250),
      clock,
    );
    other.runWithIncomingDeadline(
      { 'x-mesh-deadline-ms': '75' },
      () => expect(remainingIncomingDeadline()).toBe(75),
      clock,
    );
    let headerSeen: unknown;
    const call = withPolicies(
      [
        other.createDeadlineFilter({ timeoutMs: 10_000 }),
        other.createPerTryTimeoutFilter({ perTryTimeoutMs: 0 }),
      ],
      async (ctx) => {
        headerSeen = ctx.request.headers[DEADLINE_HEADER];
        return scriptedUpstream([200])(ctx);
      },
    );
    await runWithIncomingDeadline({ 'x-mesh-deadline-ms': '40' }, () => call(testContext({ clock })), clock);
    expect(headerSeen).toBe('40');
  });

  it('keeps the tighter of nested deadlines and has no effect outside', async () => {
    const clock = new VirtualClock();
    runWithIncomingDeadline(
      { 'x-mesh-deadline-ms': '50' },
      () => {
        runWithIncomingDeadline(
          { 'x-mesh-deadline-ms': '500' },
          () => expect(remainingIncomingDeadline()).toBe(50),
          clock,
        );
      },
      clock,
    );
    expect(remainingIncomingDeadline()).toBeUndefined();
    expect(runWithIncomingDeadline({}, () => remainingIncomingDeadline(), clock)).toBeUndefined();
  });

  it('an expired incoming deadline fails at once without calling the destination', async () => {
    const clock = new VirtualClock();
    const upstream = scriptedUpstream([200]);
    const p = runWithIncomingDeadline(
      { 'x-mesh-deadline-ms': '0' },
      () => withPolicies([createDeadlineFilter({ timeoutMs: 1000 })], upstream)(testContext({ clock })),
      clock,
    );
    await expect(p).rejects.toSatisfy(
      (e: unknown) => MeshError.is(e, 'MESH_TIMEOUT') && e.details.limit === 'propagated',
    );
    expect(upstream.calls).toHaveLength(0);
  });
});
