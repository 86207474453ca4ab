import { describe, expect, it, vi } from 'vitest';
import { MeshError } from './errors.js';
import type { CallResult, Filter } from './filter.js';
import { kCall, type MeshDispatchOptions } from './interceptor.js';
import { Issues } from './issues.js';
import { seededRandom } from './random.js';
import { answerLocally } from './relay.js';
import { compose, emptyBody, nextFromDispatch } from './stage.js';
import { flushPromises, recordingObserver, scriptedUpstream, testContext, VirtualClock } from './testing.js';

describe('VirtualClock', () => {
  it('fires timers in time order only when advanced', async () => {
    const clock = new VirtualClock();
    const seen: string[] = [];
    clock.setTimer(20, () => seen.push('b'));
    clock.setTimer(10, () => seen.push('a'));
    const t = clock.setTimer(15, () => seen.push('cancelled'));
    t.cancel();
    await clock.advance(9);
    expect(seen).toEqual([]);
    await clock.advance(11);
    expect(seen).toEqual(['a', 'b']);
    expect(clock.now()).toBe(20);
  });

  it('resolves sleeps and rejects them on abort with MESH_ABORTED', async () => {
    const clock = new VirtualClock();
    let done = false;
    const p = clock.sleep(100).then(() => {
      done = true;
    });
    await clock.advance(99);
    expect(done).toBe(false);
    await clock.advance(1);
    await p;
    expect(done).toBe(true);
    const ac = new AbortController();
    const q = clock.sleep(100, ac.signal);
    ac.abort();
    await expect(q).rejects.toMatchObject({ code: 'MESH_ABORTED' });
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('seededRandom', () => {
  it('repeats for a seed and stays in [0, 1)', () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    for (let i = 0; i < 1000; i++) {
      const x = a.next();
      expect(x).toBe(b.next());
      expect(x).toBeGreaterThanOrEqual(0);
      expect(x).toBeLessThan(1);
    }
  });
});

/** How `p` settled once pending work has run: its result, its error, or `'pending'` (a hang). */
async function settlement(p: Promise<unknown>): Promise<unknown> {
  let out: unknown = 'pending';
  p.then(
    (r) => {
      out = r;
    },
    (e: unknown) => {
      out = e;
    },
  );
  await flushPromises();
  return out;
}

describe('compose', () => {
  it('passes the endpoint of an attempt that failed up to the stages above, as the pick stage does', async () => {
    const seen: (string | undefined)[] = [];
    const watch: Filter = (dispatch) => (opts, handler) => {
      const ctx = (opts as MeshDispatchOptions)[kCall];
      return dispatch(opts, {
        ...handler,
        onRequestStart: (c, x) => handler.onRequestStart?.(c, x),
        onResponseError: (c, e) => {
          seen.push(ctx?.endpoint?.id);
          handler.onResponseError?.(c, e);
        },
      });
    };
    const clock = new VirtualClock();
    const ac = new AbortController();
    const p = compose(
      [watch],
      scriptedUpstream([{ status: 200, delayMs: 500, endpoint: 'slow:80' }]),
    )(testContext({ clock, signal: ac.signal })).catch((e: unknown) => e);
    await clock.advance(100);
    ac.abort(new MeshError('MESH_ABORTED', 'gave up'));
    expect(await p).toMatchObject({ code: 'MESH_ABORTED' });
    expect(seen).toEqual(['slow:80']);
  });

  it('settles a call whose exchange ends with only a 1xx head (no final response) instead of hanging', async () => {
    const call = nextFromDispatch((_opts, handler) => {
      answerLocally(handler, 103, { link: '</a.css>; rel=preload' }, '');
      return true;
    });
    expect(await settlement(call(testContext()))).toMatchObject({
      code: 'MESH_INTERNAL',
      message: expect.stringContaining('without a final response'),
    });
  });

  it('fails an attempt whose terminal answers a 1xx as its final response instead of hanging', async () => {
    const terminal = async (): Promise<CallResult> => ({
      status: 103,
      headers: {},
      body: emptyBody(),
    });
    expect(await settlement(compose([], terminal)(testContext()))).toMatchObject({
      code: 'MESH_INTERNAL',
      message: expect.stringContaining('informational'),
    });
  });

  it('runs interceptors outermost first around the whole exchange', async () => {
    const order: string[] = [];
    const tag =
      (name: string): Filter =>
      (dispatch) =>
      (opts, handler) => {
        order.push(`${name}>`);
        return dispatch(opts, {
          ...handler,
          onRequestStart: (c, x) => handler.onRequestStart?.(c, x),
          onResponseStart: (c, s, h, t) => handler.onResponseStart?.(c, s, h, t),
          onResponseData: (c, d) => handler.onResponseData?.(c, d),
          onResponseError: (c, e) => handler.onResponseError?.(c, e),
          onResponseEnd: (c, t) => {
            order.push(`<${name}`);
            handler.onResponseEnd?.(c, t);
          },
        });
      };
    const call = compose([tag('a'), tag('b')], scriptedUpstream([200]));
    const r = await call(testContext());
    expect(r.status).toBe(200);
    await new Promise((resolve) => r.body.resume().once('end', resolve));
    expect(order).toEqual(['a>', 'b>', '<b', '<a']);
  });
});

describe('scriptedUpstream', () => {
  it("rejects a 1xx step naming it: a 1xx is informational, never an attempt's final answer", () => {
    for (const [step, field] of [
      [103, 'script[1]'],
      ['100', 'script[1]'],
      [{ status: 103, delayMs: 5 }, 'script[1].status'],
    ] as const) {
      let error: unknown;
      try {
        scriptedUpstream([200, step]);
      } catch (e) {
        error = e;
      }
      expect(MeshError.is(error, 'MESH_CONFIG_INVALID'), JSON.stringify(step)).toBe(true);
      expect((error as MeshError).details.issues).toContainEqual(
        expect.objectContaining({ field, expected: expect.stringContaining('200 to 599') }),
      );
    }
  });

  it('sets the endpoint on the attempt context when it takes the step, so an aborted attempt names it', async () => {
    const clock = new VirtualClock();
    const up = scriptedUpstream([{ status: 200, delayMs: 500, endpoint: 'slow:80' }]);
    const ac = new AbortController();
    const ctx = testContext({ clock, signal: ac.signal });
    const p = up(ctx).catch((e: unknown) => e);
    expect(ctx.endpoint?.id).toBe('slow:80');
    ac.abort(new MeshError('MESH_ABORTED', 'lost the race'));
    expect(await p).toMatchObject({ code: 'MESH_ABORTED' });
    expect(ctx.endpoint?.id).toBe('slow:80');
  });

  it('rejects a misspelt step naming it, instead of answering 200', () => {
    const cases: [unknown, string, unknown][] = [
      [{ error: 'connect-error' }, 'script[0].error', 'connect-error'],
      [{ stauts: 503 }, 'script[0].stauts', 503],
      ['conect-error', 'script[0]', 'conect-error'],
      [{ status: 700 }, 'script[0].status', 700],
      [{ delayMs: -1 }, 'script[0].delayMs', -1],
      [null, 'script[0]', null],
    ];
    for (const [step, field, value] of cases) {
      let error: unknown;
      try {
        scriptedUpstream([step as never]);
      } catch (e) {
        error = e;
      }
      expect(MeshError.is(error, 'MESH_CONFIG_INVALID'), JSON.stringify(step)).toBe(true);
      expect((error as MeshError).details.issues).toContainEqual(expect.objectContaining({ field, value }));
    }
    // Every documented form is accepted.
    expect(() =>
      scriptedUpstream([
        200,
        '503',
        'connect-error',
        'reset',
        'hang',
        { status: 503, error: 'reset', delayMs: 5 },
      ]),
    ).not.toThrow();
  });

  it('answers in order, fails as scripted, and records attempts', async () => {
    const clock = new VirtualClock();
    const up = scriptedUpstream(['503', { status: 200, delayMs: 40, body: 'ok' }, 'connect-error']);
    const ctx = testContext({ clock, observer: recordingObserver() });
    expect((await up(ctx)).status).toBe(503);
    const p = up({ ...ctx, attempt: 2 });
    await clock.advance(40);
    const r = await p;
    expect(r.status).toBe(200);
    await expect(up({ ...ctx, attempt: 3 })).rejects.toMatchObject({ code: 'MESH_CONNECT_FAILED' });
    expect(up.calls.map((c) => [c.attempt, c.at])).toEqual([
      [1, 0],
      [2, 0],
      [3, 40],
    ]);
  });
});

describe('MeshError', () => {
  it('is instanceof across copies of the class (proxyless bundles its own), a subclass by prototype', async () => {
    vi.resetModules();
    const other = (await import('./errors.js')).MeshError;
    expect(other).not.toBe(MeshError);
    const foreign = new other('MESH_TIMEOUT', 'from the other copy');
    expect(foreign instanceof MeshError).toBe(true);
    expect(new MeshError('MESH_TIMEOUT', 'x') instanceof other).toBe(true);
    expect(new Error('x') instanceof MeshError).toBe(false);
    expect(Object.create(MeshError.prototype) instanceof MeshError).toBe(false);
    expect([null, undefined, 'MESH_TIMEOUT'].some((v) => (v as unknown as object) instanceof MeshError)).toBe(
      false,
    );
    class Special extends MeshError {}
    expect(new Special('MESH_TIMEOUT', 'x') instanceof Special).toBe(true);
    expect(new Special('MESH_TIMEOUT', 'x') instanceof MeshError).toBe(true);
    expect(new MeshError('MESH_TIMEOUT', 'x') instanceof Special).toBe(false);
    expect(foreign instanceof Special).toBe(false);
  });

  it('is recognised by marker across copies and keeps its cause', () => {
    const cause = Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
    const e = new MeshError('MESH_CONNECT_FAILED', 'x', { cause });
    expect(MeshError.is(e)).toBe(true);
    expect(MeshError.is(e, 'MESH_CONNECT_FAILED')).toBe(true);
    expect(MeshError.is(e, ['MESH_TIMEOUT'])).toBe(false);
    expect(MeshError.is(new Error('x'))).toBe(false);
    expect(e.cause).toBe(cause);
    const clone = Object.assign(Object.create(null), {
      code: 'MESH_TIMEOUT',
      [Symbol.for('proxyless.error')]: true,
    });
    expect(MeshError.is(clone, 'MESH_TIMEOUT')).toBe(true);
  });
});

describe('Issues', () => {
  it('reports every problem of a document at once, by path', () => {
    const issues = new Issues();
    const doc = { maxRetries: -1, perTry: '5 s', mode: 'fsat', extra: 1 };
    issues.integer(doc.maxRetries, 'retry.maxRetries', { min: 0 });
    issues.duration(doc.perTry, 'retry.perTry');
    issues.oneOf(doc.mode, 'retry.mode', ['fast', 'slow']);
    issues.unknownKeys(doc, 'retry', ['maxRetries', 'perTry', 'mode']);
    expect(issues.list.map((i) => i.field)).toEqual([
      'retry.maxRetries',
      'retry.perTry',
      'retry.mode',
      'retry.extra',
    ]);
    expect(() => issues.throwIfAny('config')).toThrow(/4 problems[\s\S]*did you mean "fast"/);
  });
});
