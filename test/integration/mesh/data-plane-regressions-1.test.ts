/**
 * Regression tests for the data-plane defects of issue #9, items 1–6, written against the public
 * API only (createMesh, mesh.fetch/request/dispatcher, stats, events) over real loopback servers.
 */
import { Readable } from 'node:stream';
import { MeshError, type MeshEvent } from 'proxyless';
import { Agent, type Dispatcher, request as undiciRequest } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { causes, deadPort, Opened, rejection, within } from './data-plane-support.js';

const opened = new Opened();
afterEach(() => opened.closeAll());

function messageOf(e: unknown): string {
  return causes(e)
    .map((c) => String((c as Error).message ?? c))
    .join(' <- ');
}

describe('data plane regressions (issue #9, 1–6)', () => {
  it('rejects https:// to a mesh service, naming the origin, and never sends plaintext (#9.1)', async () => {
    const plain = await opened.server('plain');
    const m = opened.meshFor([plain]);
    const calls: (() => Promise<unknown>)[] = [
      () => m.request('https://api/x'),
      () => m.fetch('https://api/x'),
    ];
    for (const call of calls) {
      const error = await rejection(within(call(), 5000, 'https:// call'));
      const all = causes(error);
      const configInvalid = all.some((e) => e instanceof MeshError && e.code === 'MESH_CONFIG_INVALID');
      const tlsNamed = /tls/i.test(messageOf(error)) && messageOf(error).includes('https://api');
      expect(configInvalid || tlsNamed, messageOf(error)).toBe(true);
    }
    expect(plain.requests).toBe(0);
  });

  it('mesh.fetch handles 103 Early Hints before the final response (#9.2)', async () => {
    const s = await opened.server('hints', (req, res) => {
      req.resume();
      res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('after hints');
      }, 20);
    });
    const m = opened.meshFor([s]);
    const res = await within(m.fetch('http://api/x'), 5000, 'mesh.fetch after a 103');
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('after hints');
    const r = await within(m.request('http://api/x'), 5000, 'mesh.request after a 103');
    expect(r.statusCode).toBe(200);
    expect(await r.body.text()).toBe('after hints');
  });

  it('a handler that throws in onResponseStart / onHeaders errors the request, like undici (#9.3)', async () => {
    const s = await opened.server('ok');
    const m = opened.meshFor([s]);
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    process.on('uncaughtException', onUnhandled);
    const direct = new Agent();
    try {
      const run = (d: Dispatcher, origin: string, style: 'new' | 'old') =>
        new Promise<Error>((resolve) => {
          const boom = new Error(`boom in ${style} head callback`);
          const handler =
            style === 'new'
              ? {
                  onRequestStart() {},
                  onResponseStart() {
                    throw boom;
                  },
                  onResponseData() {},
                  onResponseEnd() {
                    resolve(new Error('completed instead of failing'));
                  },
                  onResponseError(_c: unknown, e: Error) {
                    resolve(e);
                  },
                }
              : {
                  onConnect() {},
                  onHeaders() {
                    throw boom;
                  },
                  onData() {
                    return true;
                  },
                  onComplete() {
                    resolve(new Error('completed instead of failing'));
                  },
                  onError(e: Error) {
                    resolve(e);
                  },
                };
          d.dispatch({ origin, path: '/', method: 'GET' }, handler as Dispatcher.DispatchHandler);
        });
      for (const style of ['new', 'old'] as const) {
        const viaUndici = await within(run(direct, `http://${s.address}`, style), 5000, 'undici');
        const viaMesh = await within(run(m.dispatcher, 'http://api', style), 5000, 'mesh');
        expect(viaUndici.message).toBe(`boom in ${style} head callback`);
        expect(viaMesh.message).toBe(viaUndici.message);
      }
      // An unhandled rejection is reported once the microtasks of the turn drain: one more turn.
      await new Promise((r) => setImmediate(r));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      process.off('uncaughtException', onUnhandled);
      await direct.close();
    }
  });

  describe('dispatch options and result fields are kept (#9.4)', () => {
    it('keeps query and statusText through mesh.request and mesh.dispatcher (#9.4)', async () => {
      const s = await opened.server('q', (req, res) => {
        res.writeHead(200, 'Quite Fine', { 'x-url': req.url ?? '' });
        res.end();
      });
      const m = opened.meshFor([s]);
      const r = await m.request('http://api/p', { query: { a: '1', b: 'x y' } });
      // undici serialises `query` itself: the mesh sends exactly what undici sends.
      expect(r.headers['x-url']).toBe('/p?a=1&b=x%20y');
      const d = await undiciRequest('http://api/p', { dispatcher: m.dispatcher, query: { a: '1' } });
      expect(d.headers['x-url']).toBe('/p?a=1');
      expect(d.statusText).toBe('Quite Fine');
      await d.body.dump();
      await r.body.dump();
    });

    it('serves or rejects upgrade and CONNECT clearly, never hangs (#9.4)', async () => {
      const s = await opened.server('up');
      s.server.on('upgrade', (req, socket) => {
        socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: echo\r\nconnection: upgrade\r\n\r\n');
        socket.end();
        req.resume();
      });
      s.server.on('connect', (_req, socket) => {
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        socket.end();
      });
      const m = opened.meshFor([s]);
      const undici = await import('undici');
      const tries = [
        () => undici.upgrade('http://api/u', { dispatcher: m.dispatcher, protocol: 'echo' }),
        () => undici.connect('http://api/c', { dispatcher: m.dispatcher }),
      ];
      for (const t of tries) {
        const outcome = await within(
          t().then(
            (r) => {
              r.socket.destroy();
              return 'served';
            },
            (e: Error) => (e.message.length > 0 ? 'rejected' : 'rejected without a message'),
          ),
          5000,
          'upgrade/CONNECT through the mesh',
        );
        expect(['served', 'rejected']).toContain(outcome);
      }
    });

    it('honours headersTimeout, throwOnError, opaque, responseHeaders and the result fields (#9.4)', async () => {
      const s = await opened.server('opts', (req, res) => {
        if (req.url === '/slow') {
          setTimeout(() => res.end('late'), 1500);
          return;
        }
        res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-sum' });
        res.write('0123456789');
        res.addTrailers({ 'x-sum': '45' });
        res.end();
      });
      const m = opened.meshFor([s], { timeout: false });
      const viaDispatcher = await rejection(
        undiciRequest('http://api/slow', { dispatcher: m.dispatcher, headersTimeout: 200 }),
      );
      expect(
        causes(viaDispatcher).some((e) => (e as { code?: string }).code === 'UND_ERR_HEADERS_TIMEOUT'),
      ).toBe(true);
      const thrown = await rejection(
        undiciRequest('http://api/', { dispatcher: m.dispatcher, throwOnError: true } as never),
      );
      expect((thrown as { code?: string }).code).toBe('UND_ERR_INVALID_ARG');
      const opaque = { mine: true };
      const r = await undiciRequest('http://api/', {
        dispatcher: m.dispatcher,
        opaque,
        highWaterMark: 4,
        responseHeaders: 'raw',
      });
      expect(r.opaque).toBe(opaque);
      expect(Array.isArray(r.headers)).toBe(true);
      expect(await r.body.text()).toBe('0123456789');
      expect(r.trailers).toEqual({ 'x-sum': '45' });
      const viaMesh = await m.request('http://api/');
      expect(
        Buffer.from(await (viaMesh.body as unknown as Dispatcher.ResponseData['body']).bytes()).toString(),
      ).toBe('0123456789');
      const blob = await (
        (await m.request('http://api/')).body as unknown as Dispatcher.ResponseData['body']
      ).blob();
      expect(blob.size).toBe(10);
    });
    it('passes expectContinue on as undici does (it acts on HTTP/2 only) (#9.4)', async () => {
      const expects: (string | undefined)[] = [];
      const s = await opened.server('continue', (req, res) => {
        expects.push(req.headers.expect);
        req.resume();
        req.on('end', () => res.end('got it'));
      });
      s.server.on('checkContinue', (req, res) => {
        res.writeContinue();
        s.server.emit('request', req, res);
      });
      const m = opened.meshFor([s]);
      const body = 'x'.repeat(1000);
      const direct = await undiciRequest(`http://${s.address}/`, {
        method: 'PUT',
        body,
        expectContinue: true,
      });
      expect(await direct.body.text()).toBe('got it');
      const viaMesh = await undiciRequest('http://api/', {
        method: 'PUT',
        body,
        expectContinue: true,
        dispatcher: m.dispatcher,
      });
      expect(await viaMesh.body.text()).toBe('got it');
      expect(expects).toHaveLength(2);
      expect(expects[1]).toBe(expects[0]);
    });
  });

  it('retries a PUT with a string body on 503 through mesh.fetch (#9.5)', async () => {
    let n = 0;
    const bodies: string[] = [];
    const s = await opened.server('flaky', (req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        bodies.push(body);
        n++;
        res.writeHead(n === 1 ? 503 : 200);
        res.end(n === 1 ? 'unavailable' : 'stored');
      });
    });
    const m = opened.meshFor([s], { retry: { backoff: { base: '1ms', max: '2ms' } } });
    const res = await m.fetch('http://api/item', { method: 'PUT', body: 'payload' });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('stored');
    expect(bodies).toEqual(['payload', 'payload']);
  });

  it('a streamed body after a connect failure: never re-sent destroyed, healthy endpoint kept (#9.6)', async () => {
    const received: string[] = [];
    const good = await opened.server('good', (req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        received.push(body);
        res.end('ok');
      });
      req.on('error', () => undefined);
    });
    const dead = `127.0.0.1:${await deadPort()}`;
    const m = opened.mesh({
      env: {},
      services: { api: { endpoints: `${dead},${good.address}`, loadBalancer: { policy: 'round_robin' } } },
    });
    const events: MeshEvent[] = [];
    m.onEvent((e) => events.push(e));
    const payload = 'chunk-1;chunk-2;chunk-3';
    const outcomes: string[] = [];
    for (let i = 0; i < 11; i++) {
      const body = Readable.from(['chunk-1;', 'chunk-2;', 'chunk-3'], { objectMode: false });
      try {
        const r = await within(
          m.request('http://api/upload', { method: 'POST', body }),
          5000,
          'streamed upload',
        );
        outcomes.push(`ok ${await r.body.text()}`);
      } catch (error) {
        // A failure may only be blamed on the endpoint that failed.
        expect(messageOf(error)).not.toContain(good.address);
        outcomes.push('failed');
      }
    }
    for (const b of received) expect(b).toBe(payload);
    const ejected = events.filter(
      (e) => e.type === 'balancer' && e.event.type === 'eject' && e.event.endpoint.includes(good.address),
    );
    expect(ejected).toEqual([]);
    const goodStats = m.stats('api')?.endpoints.find((e) => `${e.address}:${e.port}` === good.address);
    expect(goodStats?.ejected).toBe(false);
    expect(goodStats?.failures).toBe(0);
    expect(outcomes.filter((o) => o === 'ok ok').length).toBeGreaterThan(0);
  });
});
