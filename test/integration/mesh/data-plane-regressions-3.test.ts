/**
 * Regression tests for the data-plane defects of issue #9, items 13–19, against the public API over
 * real loopback servers. undici itself is the reference: each case runs the same call direct.
 */
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { MeshError } from 'proxyless';
import { Agent, type Dispatcher, fetch as undiciFetch, request as undiciRequest } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { causes, deadPort, Opened, rawServer, rejection, within } from './data-plane-support.js';

const opened = new Opened();
afterEach(() => opened.closeAll());

/** What callers can see of an error, for comparing the mesh with undici. */
function shape(e: unknown): Record<string, unknown> {
  const err = e as { name?: string; code?: unknown; message?: string };
  return { class: (e as object).constructor.name, name: err.name, code: err.code, message: err.message };
}

async function slowServer() {
  return opened.server('slow', (req, res) => {
    req.resume();
    const t = setTimeout(() => res.end('late'), 3000);
    res.on('close', () => clearTimeout(t));
  });
}

describe('data plane regressions (issue #9, 13–19)', () => {
  describe('aborts and errors look like the platform’s (#9.13)', () => {
    it('fetch rejects with the signal’s reason: AbortError / TimeoutError, before send and while waiting (#9.13)', async () => {
      const s = await slowServer();
      const m = opened.meshFor([s], { timeout: false });
      const cases: [string, () => AbortSignal][] = [
        ['aborted before send', () => AbortSignal.abort()],
        [
          'aborted while waiting for the head',
          () => {
            const ac = new AbortController();
            setTimeout(() => ac.abort(), 100);
            return ac.signal;
          },
        ],
        ['timeout signal', () => AbortSignal.timeout(100)],
      ];
      for (const [what, signal] of cases) {
        const direct = await rejection(undiciFetch(`http://${s.address}/`, { signal: signal() }));
        const viaMesh = await rejection(m.fetch('http://api/', { signal: signal() }));
        expect(shape(viaMesh), what).toEqual(shape(direct));
      }
      expect(
        shape(await rejection(m.fetch('http://api/', { signal: AbortSignal.timeout(100) }))),
      ).toMatchObject({
        class: 'DOMException',
        name: 'TimeoutError',
      });
    });

    it('mesh.request rejects exactly as undici.request does on the same signal (#9.13)', async () => {
      const s = await slowServer();
      const m = opened.meshFor([s], { timeout: false });
      const pre = new AbortController();
      pre.abort(new Error('my reason'));
      const d0 = await rejection(undiciRequest(`http://${s.address}/`, { signal: pre.signal }));
      const m0 = await rejection(m.request('http://api/', { signal: pre.signal }));
      expect(m0).toBe(d0); // both are the signal's own reason
      for (const make of [
        () => {
          const ac = new AbortController();
          setTimeout(() => ac.abort(), 100);
          return ac.signal;
        },
        () => AbortSignal.timeout(100),
      ]) {
        const ds = make();
        const direct = await rejection(undiciRequest(`http://${s.address}/`, { signal: ds }));
        const ms = make();
        const viaMesh = await rejection(m.request('http://api/', { signal: ms }));
        expect(shape(viaMesh)).toEqual(shape(direct));
        expect(direct).toBe(ds.reason);
        expect(viaMesh).toBe(ms.reason);
      }
    });

    it('keeps undici’s error as the cause of a mesh error, and the caller’s upload error as it is (#9.13)', async () => {
      const dead = `127.0.0.1:${await deadPort()}`;
      const m = opened.mesh({ env: {}, services: { api: { endpoints: dead, retry: false } } });
      const connect = await rejection(m.request('http://api/'));
      if (connect instanceof MeshError) {
        const cause = connect.cause as { code?: unknown } | undefined;
        expect(typeof cause?.code).toBe('string');
      }
      // A server that drops the connection mid-body: the mesh error (if any) carries undici's.
      const cut = await opened.server('cut', (req, res) => {
        req.resume();
        res.writeHead(200, { 'content-length': '100' });
        res.write('partial');
        setTimeout(() => res.socket?.destroy(), 20);
      });
      const m2 = opened.meshFor([cut], { retry: false });
      const direct = await rejection(undiciRequest(`http://${cut.address}/`).then((r) => r.body.text()));
      const viaMesh = await rejection(m2.request('http://api/').then((r) => r.body.text()));
      const directCode = (direct as { code?: string }).code;
      expect(causes(viaMesh).map((e) => (e as { code?: string }).code)).toContain(directCode);
      // The caller's own upload stream failing is the caller's error, not relabelled.
      const sink = await opened.server('sink');
      const m3 = opened.meshFor([sink]);
      const uploadError = (boom: Error) =>
        new Readable({
          read() {
            this.destroy(boom);
          },
        });
      const boomDirect = new Error('upload failed');
      const d = await rejection(
        undiciRequest(`http://${sink.address}/`, { method: 'POST', body: uploadError(boomDirect) }),
      );
      expect(d).toBe(boomDirect);
      const boomMesh = new Error('upload failed');
      const r = await rejection(m3.request('http://api/', { method: 'POST', body: uploadError(boomMesh) }));
      expect(r).toBe(boomMesh);
    });
  });

  it('sends the method exactly as undici does: patch stays patch (#9.14)', async () => {
    const raw = await rawServer();
    opened.closers.push(() => raw.close());
    const m = opened.meshFor([raw]);
    const line = () => raw.heads.at(-1)?.split('\r\n')[0]?.split(' ')[0];
    for (const method of ['patch', 'Purge', 'get', 'PATCH']) {
      await (await undiciRequest(`http://${raw.address}/`, { method })).body.dump();
      const direct = line();
      await (await m.request('http://api/', { method })).body.dump();
      expect(line(), `request ${method}`).toBe(direct);
      await (await undiciFetch(`http://${raw.address}/`, { method })).text();
      const directFetch = line();
      await (await m.fetch('http://api/', { method })).text();
      expect(line(), `fetch ${method}`).toBe(directFetch);
    }
    expect(raw.heads.filter((h) => h.startsWith('patch ')).length).toBe(4);
  });

  it('mesh.request honours headersTimeout, bodyTimeout, onInfo, raw headers, throwOnError and result fields (#9.15)', async () => {
    const s = await opened.server('opts', (req, res) => {
      req.resume();
      if (req.url === '/slow-head') {
        const t = setTimeout(() => res.end('late'), 2000);
        res.on('close', () => clearTimeout(t));
        return;
      }
      if (req.url === '/stall') {
        res.writeHead(200);
        res.write('a');
        const t = setTimeout(() => res.end('b'), 2000);
        res.on('close', () => clearTimeout(t));
        return;
      }
      res.writeEarlyHints({ link: '</a.css>; rel=preload' });
      res.writeHead(200, 'Very OK', { 'X-Mixed': 'v', trailer: 'x-t' });
      res.write('body');
      res.addTrailers({ 'x-t': 'done' });
      res.end();
    });
    const m = opened.meshFor([s], { timeout: false, retry: false });
    let t0 = Date.now();
    const ht = await rejection(m.request('http://api/slow-head', { headersTimeout: 300 }));
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(causes(ht).map((e) => (e as { code?: string }).code)).toContain('UND_ERR_HEADERS_TIMEOUT');
    t0 = Date.now();
    const bt = await rejection(
      m.request('http://api/stall', { bodyTimeout: 300 }).then((r) => r.body.text()),
    );
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(causes(bt).map((e) => (e as { code?: string }).code)).toContain('UND_ERR_BODY_TIMEOUT');
    const infos: number[] = [];
    const opaque = { id: 7 };
    const r = await m.request('http://api/', {
      onInfo: (i: { statusCode: number }) => infos.push(i.statusCode),
      responseHeaders: 'raw',
      opaque: opaque as never,
    });
    expect(infos).toEqual([103]);
    expect(r.headers).toEqual(expect.arrayContaining(['X-Mixed', 'v']));
    expect(await r.body.text()).toBe('body');
    const fields = r as unknown as Record<string, unknown>;
    expect(fields.statusText).toBe('Very OK');
    expect(fields.opaque).toBe(opaque);
    expect(fields.trailers).toEqual({ 'x-t': 'done' });
    expect(fields).toHaveProperty('context');
    const direct = await rejection(undiciRequest(`http://${s.address}/`, { throwOnError: true } as never));
    const viaMesh = await rejection(m.request('http://api/', { throwOnError: true } as never));
    expect(shape(viaMesh)).toEqual(shape(direct));
  });

  it('with defaults, a response still streaming past 15 s completes (#9.16)', {
    timeout: 40_000,
  }, async () => {
    const s = await opened.server('sse', (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      let n = 0;
      const tick = setInterval(() => {
        res.write(`data: ${n}\n\n`);
        if (++n >= 17) {
          clearInterval(tick);
          res.end();
        }
      }, 1000);
      res.on('close', () => clearInterval(tick));
    });
    const m = opened.meshFor([s]);
    const res = await m.fetch('http://api/events');
    const text = await res.text();
    expect(text.split('\n\n').filter(Boolean)).toHaveLength(17);
  });

  it('sends header names as written (#9.17)', async () => {
    const seen: string[][] = [];
    const s = await opened.server('raw', (req, res) => {
      seen.push(req.rawHeaders.filter((_, i) => i % 2 === 0));
      req.resume();
      res.end();
    });
    const m = opened.meshFor([s]);
    const headers = { 'X-Request-ID': 'abc', 'Content-Type': 'text/plain', 'x-lower': '1' };
    const names = () =>
      (seen.at(-1) ?? []).filter((n) => !['host', 'x-mesh-deadline-ms'].includes(n.toLowerCase()));
    await (await undiciRequest(`http://${s.address}/`, { headers })).body.dump();
    const direct = names();
    expect(direct).toEqual(expect.arrayContaining(['X-Request-ID', 'Content-Type']));
    await (await m.request('http://api/', { headers })).body.dump();
    expect(names()).toEqual(direct);
    await (await undiciRequest('http://api/', { headers, dispatcher: m.dispatcher })).body.dump();
    expect(names()).toEqual(direct);
  });

  describe('request headers are read as undici reads them (#9.18)', () => {
    it('ignores an iterator polluted onto Object.prototype (#9.18)', async () => {
      const seen: (string | undefined)[] = [];
      const s = await opened.server('auth', (req, res) => {
        seen.push(req.headers.authorization);
        req.resume();
        res.end();
      });
      const m = opened.meshFor([s]);
      const proto = Object.prototype as unknown as Record<symbol, unknown>;
      const calls: Promise<{ body: { dump(): Promise<void> } }>[] = [];
      proto[Symbol.iterator] = function* polluted() {
        yield ['authorization', 'attacker'];
      };
      try {
        const headers = { authorization: 'Bearer good' };
        calls.push(undiciRequest(`http://${s.address}/`, { headers }));
        calls.push(m.request('http://api/', { headers }));
        calls.push(undiciRequest('http://api/', { headers, dispatcher: m.dispatcher }));
      } finally {
        delete proto[Symbol.iterator];
      }
      for (const r of await Promise.all(calls)) await r.body.dump();
      expect(seen).toEqual(['Bearer good', 'Bearer good', 'Bearer good']);
    });

    it('rejects a header iterable yielding a non-pair with InvalidArgumentError, as undici (#9.18)', async () => {
      const s = await opened.server('ok');
      const m = opened.meshFor([s]);
      const bad = () =>
        ({
          *[Symbol.iterator]() {
            yield 'Bad formatted header';
          },
        }) as unknown as Record<string, string>;
      const direct = await rejection(undiciRequest(`http://${s.address}/`, { headers: bad() }));
      expect(shape(direct)).toMatchObject({ name: 'InvalidArgumentError', code: 'UND_ERR_INVALID_ARG' });
      const requests = s.requests;
      expect(shape(await rejection(m.request('http://api/', { headers: bad() })))).toEqual(shape(direct));
      expect(
        shape(await rejection(undiciRequest('http://api/', { headers: bad(), dispatcher: m.dispatcher }))),
      ).toEqual(shape(direct));
      expect(s.requests).toBe(requests);
    });
  });

  it('calls fetch’s onResponseStarted: Resource Timing has a response start (#9.19)', async () => {
    const s = await opened.server('ok');
    const m = opened.meshFor([s]);
    const started = (d: Dispatcher, origin: string) =>
      new Promise<boolean>((resolve, reject) => {
        let sawStart = false;
        d.dispatch({ origin, path: '/', method: 'GET' }, {
          onConnect() {},
          onResponseStarted() {
            sawStart = true;
          },
          onHeaders() {
            return true;
          },
          onData() {
            return true;
          },
          onComplete() {
            resolve(sawStart);
          },
          onError: reject,
        } as unknown as Dispatcher.DispatchHandler);
      });
    const agent = new Agent();
    try {
      expect(await within(started(agent, `http://${s.address}`), 5000, 'direct')).toBe(true);
      expect(await within(started(m.dispatcher, 'http://api'), 5000, 'mesh')).toBe(true);
    } finally {
      await agent.close();
    }
    performance.clearResourceTimings();
    // fetch reports the entry once the body is done, on a later turn: wait for it to be observed.
    const observed = new Promise<{ responseStart: number; requestStart: number }>((resolve) => {
      const obs = new PerformanceObserver((list) => {
        const e = list.getEntries().find((x) => x.name === 'http://api/timing');
        if (e === undefined) return;
        obs.disconnect();
        resolve(e as unknown as { responseStart: number; requestStart: number });
      });
      obs.observe({ type: 'resource' });
    });
    await (await undiciFetch('http://api/timing', { dispatcher: m.dispatcher })).text();
    const entry = await within(observed, 5000, 'resource timing entry');
    expect(entry).toBeDefined();
    expect(entry?.responseStart).toBeGreaterThan(0);
    expect(entry?.responseStart).toBeGreaterThanOrEqual(entry?.requestStart ?? 0);
  });
});
