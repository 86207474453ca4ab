import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as undici from 'undici';
import { describe, expect, it } from 'vitest';
import {
  globalDispatcher,
  isUndiciRequestHandler,
  releaseRefusedConnections,
  requestUrl,
  UndiciDispatcher,
  undiciAgent,
  undiciChecks,
  undiciErrors,
  undiciPool,
  undiciSync,
} from './undici.js';

describe("undici's parts", () => {
  it("are the very classes and objects undici's index exports", async () => {
    // A user's `import 'undici'` and the mesh share classes (instanceof) and the global dispatcher.
    expect(UndiciDispatcher).toBe(undici.Dispatcher);
    expect(undiciAgent()).toBe(undici.Agent);
    expect(undiciPool()).toBe(undici.Pool);
    expect(undiciErrors).toBe(undici.errors);
    expect(globalDispatcher()).toBe(undici.getGlobalDispatcher());
    expect(undiciSync().fetch).toBe(undici.fetch);
  });

  it("tell undici's own request() handler from any other, a look-alike class included", async () => {
    let seen: object | undefined;
    const recorder = new (class extends undici.Dispatcher {
      override dispatch(
        _opts: undici.Dispatcher.DispatchOptions,
        handler: undici.Dispatcher.DispatchHandler,
      ) {
        seen = handler;
        (handler as { onError?: (e: Error) => void }).onError?.(new Error('recorded'));
        return true;
      }
    })();
    await expect(undici.request('http://x.test/', { dispatcher: recorder })).rejects.toThrow('recorded');
    expect(seen !== undefined && isUndiciRequestHandler(seen)).toBe(true);
    class RequestHandler {}
    expect(isUndiciRequestHandler(new RequestHandler())).toBe(false);
    expect(isUndiciRequestHandler({ onHeaders: () => true })).toBe(false);
  });

  it("include the request checks the mesh runs before dispatching, as undici's util has them", () => {
    const c = undiciChecks();
    expect([c.isValidHTTPToken('GET'), c.isValidHTTPToken('GE T')]).toEqual([true, false]);
    expect([c.isValidHeaderValue('a'), c.isValidHeaderValue('a\r\nb')]).toEqual([true, false]);
    expect(c.normalizedMethodRecords.get).toBe('GET');
    expect([c.isStream(http.request), c.isBuffer(Buffer.from('a')), c.isIterable([1])]).toEqual([
      false,
      true,
      true,
    ]);
    expect([c.isFormDataLike(new FormData()), c.isBlobLike(new Blob(['a']))]).toEqual([true, true]);
    expect([c.pathHasQueryOrFragment('/a?b'), c.pathHasQueryOrFragment('/a')]).toEqual([true, false]);
  });

  it("give every dispatcher undici's request API", () => {
    const p = UndiciDispatcher.prototype as unknown as Record<string, unknown>;
    for (const m of ['request', 'stream', 'pipeline', 'upgrade', 'connect'] as const) {
      expect(typeof p[m]).toBe('function');
      expect(p[m]).toBe((undici.Dispatcher.prototype as unknown as Record<string, unknown>)[m]);
    }
  });

  it('requestUrl sends what undici.request(url) sends', async () => {
    const seen: string[] = [];
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        seen.push(`${req.method} ${req.url} ${req.headers.a ?? '-'}`);
        res.end('ok');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const agent = new (undiciAgent())();
    try {
      for (const send of [requestUrl, undici.request] as const) {
        for (const [url, opts] of [
          [`${base}/p/q?x=1`, { headers: { a: 'b' } }],
          [`${base}/`, { body: 'x' }],
        ] as const) {
          const res = await send(url, { ...opts, dispatcher: agent });
          expect(await res.body.text()).toBe('ok');
        }
      }
      // The global dispatcher when none is given.
      expect(await (await requestUrl(`${base}/g`, {})).body.text()).toBe('ok');
      expect(seen).toEqual(['GET /p/q?x=1 b', 'PUT / -', 'GET /p/q?x=1 b', 'PUT / -', 'GET /g -']);
    } finally {
      await agent.close();
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('releaseRefusedConnections', () => {
  it("clears the mark undici's Pool leaves on a connection that refused a request, with undici's own marks", async () => {
    const server = http.createServer((req, res) => {
      req.resume();
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const pool = new (undiciPool())(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, {
      connections: 1,
    });
    try {
      const refused = await pool.request({ path: '/', method: 'GE T' as never }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(undiciErrors.InvalidArgumentError);
      // The pool's mark, where this module reads it: the one connection needs a drain it never gets.
      const { kClients, kNeedDrain } = (await import('undici/lib/dispatcher/pool-base.js')).default;
      const clients = (pool as unknown as Record<symbol, Array<Record<symbol, unknown>>>)[kClients];
      expect(clients).toHaveLength(1);
      expect(clients?.[0]?.[kNeedDrain]).toBe(true);
      releaseRefusedConnections(pool);
      expect(clients?.[0]?.[kNeedDrain]).toBe(false);
      expect(await (await pool.request({ path: '/', method: 'GET' })).body.text()).toBe('ok');
    } finally {
      await pool.close();
      server.close();
    }
  });
});
