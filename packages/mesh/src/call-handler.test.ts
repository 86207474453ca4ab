import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { CallContext } from '@proxyless/core';
import type { Dispatcher } from 'undici';
import { describe, expect, it } from 'vitest';
import { CallHandler } from './call-handler.js';

/** A full garbage collection (the flag is set for this process if the runner did not). */
function exposeGc(): () => void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return g;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/** A controller as a stage hands one up: it holds the rest of the exchange. */
function innerController(): Dispatcher.DispatchController & { resumed: number; aborts: number } {
  return {
    aborted: false,
    paused: false,
    reason: null,
    resumed: 0,
    aborts: 0,
    rawHeaders: [Buffer.from('Content-Type'), Buffer.from('text/plain')],
    rawTrailers: [Buffer.from('X-Checksum'), Buffer.from('abc')],
    abort() {
      this.aborts++;
    },
    pause() {},
    resume() {
      this.resumed++;
    },
  } as Dispatcher.DispatchController & { resumed: number; aborts: number };
}

/** What fetch keeps of a call (its handler is in the old style): the `abort` and `resume` callbacks. */
interface Kept {
  abort?: (err?: Error) => void;
  resume?: () => void;
  raw?: Buffer[];
  trailers?: Buffer[] | null;
}

function oldStyleHandler(kept: Kept): Dispatcher.DispatchHandler {
  return {
    onConnect(abort: (err?: Error) => void) {
      kept.abort = abort;
    },
    onHeaders(_status: number, raw: Buffer[], resume: () => void) {
      kept.raw = raw;
      kept.resume = resume;
      return true;
    },
    onData() {
      return true;
    },
    onComplete(trailers: Buffer[] | null) {
      kept.trailers = trailers;
    },
    onError() {},
  } as unknown as Dispatcher.DispatchHandler;
}

/**
 * One call through a `CallHandler`, from start to end, without keeping the exchange anywhere but in
 * `kept` (what the caller holds) and the weak references returned.
 */
function oneCall(kept: Kept, how: 'end' | 'error'): { exchange: WeakRef<object>; ctx: WeakRef<object> } {
  const call = new CallHandler(oldStyleHandler(kept));
  const ctx = { attributes: new Map() } as unknown as CallContext;
  call.start(ctx);
  const controller = innerController();
  call.onRequestStart(controller, {});
  call.onResponseStart(controller, 200, { 'content-type': 'text/plain' }, 'OK');
  if (how === 'end') call.onResponseEnd(controller, {});
  else call.onResponseError(controller, new Error('reset'));
  return { exchange: new WeakRef(controller), ctx: new WeakRef(ctx) };
}

describe('CallHandler', () => {
  it.each(['end', 'error'] as const)(
    'lets go of the exchange once the caller has its %s, though the caller keeps its callbacks (fetch keeps them until a full GC)',
    async (how) => {
      const gc = exposeGc();
      const kept: Kept = {};
      const { exchange, ctx } = oneCall(kept, how);
      expect(typeof kept.abort).toBe('function');
      if (how === 'end') expect(typeof kept.resume).toBe('function');
      // WeakRef targets are held until the end of the job that made them.
      await new Promise((r) => setImmediate(r));
      gc();
      gc();
      expect(exchange.deref()).toBeUndefined();
      expect(ctx.deref()).toBeUndefined();
      // What the caller kept still works, and does nothing to an exchange that is over.
      expect(() => kept.abort?.(new Error('late'))).not.toThrow();
      expect(() => kept.resume?.()).not.toThrow();
    },
  );

  it.each(['end', 'error'] as const)(
    "lets go of the response's raw lines and the request's headers once an old-style caller has its %s: it got the lines as arguments and cannot read them later",
    async (how) => {
      const gc = exposeGc();
      const kept: Kept = {};
      const refs = ((): { head: WeakRef<object>; trailers: WeakRef<object>; headers: WeakRef<object> } => {
        const headers = { 'x-request-id': 'r-1' };
        // As fetch: it keeps the `abort` and `resume` callbacks, not the lines it was given.
        const handler = {
          onConnect(abort: (err?: Error) => void) {
            kept.abort = abort;
          },
          onHeaders(_status: number, _raw: Buffer[], resume: () => void) {
            kept.resume = resume;
            return true;
          },
          onData: () => true,
          onComplete() {},
          onError() {},
        } as unknown as Dispatcher.DispatchHandler;
        const call = new CallHandler(handler, undefined, headers);
        call.start({ attributes: new Map() } as unknown as CallContext);
        const controller = innerController();
        call.onRequestStart(controller, {});
        call.onResponseStart(controller, 200, { 'content-type': 'text/plain' }, 'OK');
        if (how === 'end') call.onResponseEnd(controller, {});
        else call.onResponseError(controller, new Error('reset'));
        return {
          head: new WeakRef(controller.rawHeaders as object),
          trailers: new WeakRef(controller.rawTrailers as object),
          headers: new WeakRef(headers),
        };
      })();
      await new Promise((r) => setImmediate(r));
      gc();
      gc();
      expect(typeof kept.abort).toBe('function');
      expect(refs.head.deref()).toBeUndefined();
      expect(refs.trailers.deref()).toBeUndefined();
      expect(refs.headers.deref()).toBeUndefined();
    },
  );

  it('resumes the response through the callback it gave the caller while the call runs', () => {
    const kept: Kept = {};
    const call = new CallHandler(oldStyleHandler(kept));
    call.start({ attributes: new Map() } as unknown as CallContext);
    const controller = innerController();
    call.onRequestStart(controller, {});
    call.onResponseStart(controller, 200, {}, 'OK');
    kept.resume?.();
    expect(controller.resumed).toBe(1);
    call.onResponseEnd(controller, {});
    kept.resume?.();
    expect(controller.resumed).toBe(1);
  });

  it('keeps the raw header and trailer lines readable after the end; an abort after it stops nothing', () => {
    const seen: Array<Buffer[] | null> = [];
    const call = new CallHandler({
      onRequestStart() {},
      onResponseStart() {},
      onResponseData() {},
      onResponseEnd(c: Dispatcher.DispatchController) {
        seen.push((c as { rawTrailers?: Buffer[] | null }).rawTrailers ?? null);
      },
      onResponseError() {},
    } as Dispatcher.DispatchHandler);
    call.start({ attributes: new Map() } as unknown as CallContext);
    const controller = innerController();
    call.onRequestStart(controller, {});
    call.onResponseStart(controller, 200, {}, 'OK');
    call.onResponseEnd(controller, {});
    expect(seen[0]?.map(String)).toEqual(['X-Checksum', 'abc']);
    expect(call.rawHeaders?.map(String)).toEqual(['Content-Type', 'text/plain']);
    expect(call.rawTrailers?.map(String)).toEqual(['X-Checksum', 'abc']);
    call.abort(new Error('late'));
    expect(controller.aborts).toBe(0);
    expect(call.aborted).toBe(true);
  });
});
