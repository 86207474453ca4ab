/**
 * Differential: undici's own interceptors and agents composed on top of `mesh.dispatcher` behave as
 * on undici's Agent. undici's retry handler decides by throwing its `RequestRetryError` from
 * `onResponseEnd` and relies on the transport to hand that error back through `onResponseError`
 * (undici's `Request.onComplete` does); a mesh that dropped it left every such call unsettled.
 */
import { Agent, type Dispatcher, interceptors, RetryAgent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { differences, errorShape, type Fixture, pairs, same, startFixture } from './support.js';

let fx: Fixture;
let agent: Agent;
beforeAll(async () => {
  fx = await startFixture();
  agent = new Agent();
});
afterAll(async () => {
  await agent.close();
  await fx.close();
});

/** The undici Agent for the direct way (to the port), the mesh dispatcher otherwise (to `svc`). */
const targets = () =>
  fx.ways
    .filter((w) => w.name !== 'mesh')
    .map((w) => ({ name: w.name, origin: w.base, dispatcher: w.dispatcher ?? agent }));

async function settleAll(
  run: (d: Dispatcher, origin: string, key: string) => Promise<unknown>,
  hangMs = 3000,
): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const t of targets()) {
    const key = `${t.name}-${Math.random().toString(36).slice(2)}`;
    let timer: NodeJS.Timeout | undefined;
    const hang = new Promise((resolve) => {
      timer = setTimeout(() => resolve({ hang: hangMs }), hangMs);
    });
    out[t.name] = await Promise.race([
      run(t.dispatcher, t.origin, key).then(
        (ok) => ({ ok }),
        (e: unknown) => ({ error: { ...errorShape(e), message: (e as Error).message } }),
      ),
      hang,
    ]).finally(() => clearTimeout(timer));
  }
  // `pairs`/`same` compare the mesh way too; here the dispatcher way is the mesh.
  out.mesh = out.dispatcher;
  return out;
}

describe('differential: undici interceptors over mesh.dispatcher', () => {
  it('interceptors.retry retries a 500 and returns the 200', async () => {
    const r = await settleAll(async (d, origin, key) => {
      const res = await d
        .compose(interceptors.retry({ maxRetries: 2, minTimeout: 1, statusCodes: [500] }))
        .request({ origin, path: `/flaky?key=${key}&fails=1`, method: 'GET' });
      return [res.statusCode, await res.body.text()];
    });
    expect(r.direct).toEqual({ ok: [200, 'ok 2'] });
    expect(pairs(r), differences(r)).toEqual(same(r));
  });

  it('RetryAgent gives up with RequestRetryError when every answer is a 500', async () => {
    const r = await settleAll(async (d, origin, key) => {
      const res = await new RetryAgent(d, { maxRetries: 1, minTimeout: 1, statusCodes: [500] }).request({
        origin,
        path: `/flaky?key=${key}&fails=9`,
        method: 'GET',
      });
      return [res.statusCode, await res.body.text()];
    });
    expect(r.direct).toMatchObject({ error: { name: 'RequestRetryError', code: 'UND_ERR_REQ_RETRY' } });
    expect(pairs(r), differences(r)).toEqual(same(r));
  });

  it('an interceptor whose onResponseEnd throws fails the request with that error', async () => {
    const boom: Dispatcher.DispatcherComposeInterceptor = (dispatch) => (opts, handler) =>
      dispatch(opts, {
        onRequestStart: (c, x) => handler.onRequestStart?.(c, x),
        onResponseStart: (c, s, h, m) => handler.onResponseStart?.(c, s, h, m),
        onResponseData: (c, b) => handler.onResponseData?.(c, b),
        onResponseEnd: () => {
          throw new Error('thrown in onResponseEnd');
        },
        onResponseError: (c, e) => handler.onResponseError?.(c, e),
      });
    const r = await settleAll(async (d, origin) => {
      const res = await d.compose(boom).request({ origin, path: '/echo', method: 'GET' });
      return res.body.text();
    });
    expect(r.direct).toMatchObject({ error: { message: 'thrown in onResponseEnd' } });
    expect(pairs(r), differences(r)).toEqual(same(r));
  });
});
