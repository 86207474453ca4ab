/**
 * The controller a caller's handler holds, on a mesh service, against the same dispatch on undici's
 * own `Agent` (a probe of undici's Dispatcher API on `mesh.dispatcher`):
 * - `controller.abort()` with no reason, or a falsy one, fails the call with undici's
 *   `RequestAbortedError` and leaves `controller.reason` as given (it was `MESH_ABORTED`, also as
 *   the reason), through `dispatch()` and through undici's own interceptors composed on it;
 * - a callback that throws fails the call with its error but does not mark the controller aborted
 *   (it reported `aborted: true` and the error as its reason);
 * - an old-style handler's `onUpgrade` gets the response's header lines as received (it got them
 *   lower-cased and regrouped).
 */
import type { Duplex } from 'node:stream';
import { createMesh, type Mesh } from 'proxyless';
import { Agent, type Dispatcher, interceptors } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

let server: TestServer;
let mesh: Mesh;
let agent: Agent;

beforeAll(async () => {
  server = await startServer('api', (req, res) => {
    req.resume();
    res.end('hello');
  });
  server.server.on('upgrade', (_req, socket: Duplex) => {
    socket.on('error', () => undefined);
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\nSet-Cookie: a=1\r\nX-Foo: 1\r\nSet-Cookie: b=2\r\n\r\n',
    );
  });
  mesh = createMesh({ env: {}, services: { api: { endpoints: server.address } } });
  agent = new Agent();
});
afterAll(async () => {
  await agent.close();
  await mesh.close();
  await server.close();
});

/** The same dispatch on undici's Agent (to the server) and on the mesh (to the service). */
async function both<T>(run: (d: Dispatcher, origin: string) => Promise<T>): Promise<{ undici: T; mesh: T }> {
  return {
    undici: await run(agent, `http://${server.address}`),
    mesh: await run(mesh.dispatcher, 'http://api'),
  };
}

type Outcome = { error?: [string, unknown]; aborted?: boolean; reason?: unknown; ended?: true };

function describeError(e: Error): [string, unknown] {
  return [e.constructor.name, (e as { code?: unknown }).code];
}

describe("the caller's controller on a mesh service", () => {
  for (const args of [[], [0], [undefined]] as unknown[][]) {
    it(`abort(${args.map(String).join()}) at the head fails with undici's RequestAbortedError`, async () => {
      const seen = await both(
        (d, origin) =>
          new Promise<Outcome>((resolve) => {
            d.dispatch(
              { origin, path: '/', method: 'GET' },
              {
                onRequestStart() {},
                onResponseStart(c) {
                  (c.abort as (...a: unknown[]) => void)(...args);
                },
                onResponseData() {},
                onResponseEnd() {
                  resolve({ ended: true });
                },
                onResponseError(c, e) {
                  resolve({ error: describeError(e), aborted: c.aborted, reason: c.reason });
                },
              },
            );
          }),
      );
      expect(seen.undici).toEqual({
        error: ['RequestAbortedError', 'UND_ERR_ABORTED'],
        aborted: true,
        reason: args[0],
      });
      expect(seen.mesh).toEqual(seen.undici);
    });
  }

  it("an old-style handler's abort() under undici's own interceptor is undici's RequestAbortedError", async () => {
    const run = (d: Dispatcher, origin: string) =>
      new Promise<unknown>((resolve) => {
        d.compose(interceptors.responseError()).dispatch({ origin, path: '/', method: 'GET' }, {
          onConnect(abort: (e?: Error) => void) {
            abort();
          },
          onHeaders: () => true,
          onData: () => true,
          onComplete: () => resolve('completed'),
          onError: (e: Error) => resolve(describeError(e)),
        } as unknown as Dispatcher.DispatchHandler);
      });
    const seen = await both(run);
    expect(seen.undici).toEqual(['RequestAbortedError', 'UND_ERR_ABORTED']);
    expect(seen.mesh).toEqual(seen.undici);
  });

  for (const at of ['onResponseStart', 'onResponseData'] as const) {
    it(`a throw from ${at} fails the call with it, the controller not marked aborted`, async () => {
      const seen = await both(
        (d, origin) =>
          new Promise<Outcome>((resolve) => {
            const boom = (): never => {
              throw new Error('boom');
            };
            d.dispatch(
              { origin, path: '/', method: 'GET' },
              {
                onRequestStart() {},
                onResponseStart: at === 'onResponseStart' ? boom : () => undefined,
                onResponseData: at === 'onResponseData' ? boom : () => undefined,
                onResponseEnd() {
                  resolve({ ended: true });
                },
                onResponseError(c, e) {
                  resolve({ error: [e.message, undefined], aborted: c.aborted, reason: c.reason });
                },
              },
            );
          }),
      );
      expect(seen.undici).toEqual({ error: ['boom', undefined], aborted: false, reason: null });
      expect(seen.mesh).toEqual(seen.undici);
    });
  }

  it("an old-style handler's onUpgrade gets the header lines as received", async () => {
    const seen = await both(
      (d, origin) =>
        new Promise<string[]>((resolve, reject) => {
          d.dispatch({ origin, path: '/', method: 'GET', upgrade: 'foo' }, {
            onConnect() {},
            onHeaders: () => true,
            onData: () => true,
            onComplete() {},
            onError: reject,
            onUpgrade(_status: number, raw: Buffer[], socket: Duplex) {
              socket.destroy();
              resolve(raw.map(String));
            },
          } as unknown as Dispatcher.DispatchHandler);
        }),
    );
    expect(seen.undici).toEqual([
      'Upgrade',
      'foo',
      'Connection',
      'Upgrade',
      'Set-Cookie',
      'a=1',
      'X-Foo',
      '1',
      'Set-Cookie',
      'b=2',
    ]);
    expect(seen.mesh).toEqual(seen.undici);
  });
});
