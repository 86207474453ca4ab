/**
 * Aborts as undici's transport sees them, with the retry and hedge stages on (issue #9, probe of
 * the data plane against undici):
 * - an abort with a falsy reason (`ac.abort(0)`, `''`, `false`) rejects with undici's
 *   `RequestAbortedError`; through the mesh it resolved a result with no status, headers or body;
 * - a request body stream destroyed without an error is undici's `RequestAbortedError`, not the
 *   stream iterator's "Premature close", and is not charged to the endpoint.
 */
import type http from 'node:http';
import { Readable } from 'node:stream';
import { createMesh, type Mesh } from 'proxyless';
import { request as undiciRequest } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

let server: TestServer;
/** Resolved when the server has the next request's head (the exchange is under way). */
let arrived: () => void = () => undefined;
const held: http.ServerResponse[] = [];

beforeAll(async () => {
  server = await startServer('api', (req, res) => {
    arrived();
    if (req.url === '/upload') {
      req.resume();
      req.on('end', () => res.end('ok'));
      return;
    }
    req.resume();
    held.push(res); // no head until the test ends: the call waits for it
  });
});
afterAll(async () => {
  for (const res of held) res.destroy();
  await server.close();
});

function nextArrival(): Promise<void> {
  return new Promise((resolve) => {
    arrived = resolve;
  });
}

function shape(e: unknown): [string, unknown, string] {
  const err = e as { constructor: { name: string }; code?: unknown; message: string };
  return [err.constructor.name, err.code, err.message];
}

async function outcome(call: () => Promise<unknown>): Promise<unknown> {
  try {
    const r = (await call()) as { statusCode?: unknown };
    return { resolved: r.statusCode ?? 'no status' };
  } catch (error) {
    return shape(error);
  }
}

const POLICIES: Record<string, object> = {
  defaults: {},
  hedge: { hedge: { delay: '5s' } },
};

describe('an abort with a falsy reason (#9)', () => {
  for (const [name, policy] of Object.entries(POLICIES)) {
    for (const reason of [0, '', false]) {
      it(`${name}: ac.abort(${JSON.stringify(reason)}) while the head is owed rejects as undici`, async () => {
        const mesh: Mesh = createMesh({
          env: {},
          services: { api: { endpoints: server.address, ...policy } },
        });
        try {
          const run = async (call: (signal: AbortSignal) => Promise<unknown>) => {
            const ac = new AbortController();
            const arrival = nextArrival();
            const pending = outcome(() => call(ac.signal));
            await arrival;
            ac.abort(reason);
            return pending;
          };
          const direct = await run((signal) => undiciRequest(`http://${server.address}/hold`, { signal }));
          expect(direct).toEqual(['RequestAbortedError', 'UND_ERR_ABORTED', 'Request aborted']);
          expect(await run((signal) => mesh.request('http://api/hold', { signal }))).toEqual(direct);
          expect(
            await run((signal) => undiciRequest('http://api/hold', { signal, dispatcher: mesh.dispatcher })),
          ).toEqual(direct);
          expect(mesh.stats('api')?.inFlight).toBe(0);
        } finally {
          await mesh.close();
        }
      });
    }
  }
});

describe('a request body stream destroyed without an error (#9)', () => {
  it('is undici RequestAbortedError with retries on, and is not charged to the endpoint', async () => {
    const mesh = createMesh({ env: {}, services: { api: { endpoints: server.address } } });
    try {
      const run = async (call: (body: Readable) => Promise<unknown>) => {
        const body = new Readable({ read() {} });
        body.push('abc');
        const arrival = nextArrival();
        const pending = outcome(() => call(body));
        await arrival;
        body.destroy();
        return pending;
      };
      const direct = await run((body) =>
        undiciRequest(`http://${server.address}/upload`, { method: 'PUT', body }),
      );
      expect(direct).toEqual(['RequestAbortedError', 'UND_ERR_ABORTED', 'Request aborted']);
      expect(await run((body) => mesh.request('http://api/upload', { method: 'PUT', body }))).toEqual(direct);
      const ep = mesh.stats('api')?.endpoints[0];
      expect([ep?.failures, ep?.ejected, ep?.inflight]).toEqual([0, false, 0]);
    } finally {
      await mesh.close();
    }
  });
});
