/**
 * Differential: aborts and timeouts at each phase (before send, while waiting for the head, in the
 * middle of the body), an early server close and Content-Length mismatches. The mesh must reject
 * as undici does: same class, name, code and cause.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  differences,
  everyWay,
  type Fixture,
  pairs,
  same,
  seeRequest,
  seeResponse,
  settle,
  startFixture,
  type Way,
} from './support.js';

let fx: Fixture;
beforeAll(async () => {
  fx = await startFixture();
});
afterAll(() => fx.close());

type Phase = 'before send' | 'head wait' | 'mid-body';

/** A signal for a phase: aborted already, or aborted/timed out after `ms`. */
function signalFor(kind: 'abort' | 'abort with reason' | 'timeout', phase: Phase): AbortSignal {
  if (phase === 'before send') {
    if (kind === 'timeout') return AbortSignal.timeout(0);
    return kind === 'abort' ? AbortSignal.abort() : AbortSignal.abort(new RangeError('caller reason'));
  }
  const ms = phase === 'head wait' ? 100 : 300;
  if (kind === 'timeout') return AbortSignal.timeout(ms);
  const ac = new AbortController();
  setTimeout(() => (kind === 'abort' ? ac.abort() : ac.abort(new RangeError('caller reason'))), ms);
  return ac.signal;
}

async function settleLater<T>(phase: Phase, signal: AbortSignal, fn: () => Promise<T>) {
  // A timeout signal of 0 ms fires on a later turn: wait for it, so "before send" means before send.
  if (phase === 'before send' && !signal.aborted)
    await new Promise((r) => signal.addEventListener('abort', r, { once: true }));
  return settle(fn);
}

const pathFor = (phase: Phase) => (phase === 'mid-body' ? '/slow-body' : '/slow-head');

describe('differential: aborts, timeouts and broken responses', () => {
  for (const phase of ['before send', 'head wait', 'mid-body'] as const) {
    for (const kind of ['abort', 'abort with reason', 'timeout'] as const) {
      it(`request: ${kind} ${phase}`, async () => {
        const r = await everyWay(fx, (w: Way) => {
          const signal = signalFor(kind, phase);
          return settleLater(phase, signal, async () =>
            seeRequest(await w.request(`${w.base}${pathFor(phase)}`, { signal })),
          );
        });
        expect(pairs(r), differences(r)).toEqual(same(r));
      });

      it(`fetch: ${kind} ${phase}`, async () => {
        const r = await everyWay(fx, (w: Way) => {
          const signal = signalFor(kind, phase);
          return settleLater(phase, signal, async () =>
            seeResponse(await w.fetch(`${w.base}${pathFor(phase)}`, { signal }), w.base),
          );
        });
        expect(pairs(r), differences(r)).toEqual(same(r));
      });
    }
  }

  it('an early server close mid-body', async () => {
    const r = await everyWay(fx, async (w) => [
      await settle(async () => seeRequest(await w.request(`${w.base}/close-early`))),
      await settle(async () => seeResponse(await w.fetch(`${w.base}/close-early`), w.base)),
    ]);
    expect(pairs(r), differences(r)).toEqual(same(r));
  });

  it('a body longer than its Content-Length', async () => {
    const r = await everyWay(fx, async (w) => [
      await settle(async () => seeRequest(await w.request(`${w.base}/cl-long`))),
      await settle(async () => seeResponse(await w.fetch(`${w.base}/cl-long`), w.base)),
    ]);
    expect(pairs(r), differences(r)).toEqual(same(r));
  });

  it('a request body shorter or longer than its declared Content-Length', async () => {
    const r = await everyWay(fx, async (w) => [
      await settle(async () =>
        seeRequest(
          await w.request(`${w.base}/echo`, {
            method: 'POST',
            body: 'abc',
            headers: { 'content-length': '10' },
          }),
        ),
      ),
      await settle(async () =>
        seeRequest(
          await w.request(`${w.base}/echo`, {
            method: 'POST',
            body: 'abcdef',
            headers: { 'content-length': '2' },
          }),
        ),
      ),
    ]);
    expect(pairs(r), differences(r)).toEqual(same(r));
  });
});
