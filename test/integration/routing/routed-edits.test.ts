/**
 * A routed request differs from the same request through plain undici only by what its route
 * says (probe28 routed-path differential): response header edits leave every other raw line as the
 * server sent it; header matches see values as the server reads them; a header the route drops is
 * still refused where undici refuses it; a prefix rewrite applies to the query a `query` option adds.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createConfigSource, createMesh, type Mesh } from 'proxyless';
import { Agent, type Dispatcher, request as undiciRequest, util as undiciUtil } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let server: http.Server;
let port: number;
let mesh: Mesh;
const agent = new Agent();

const RESPONSE_LINES = [
  ['Set-Cookie', 'a=1'],
  ['X-Other', 'o'],
  ['set-cookie', 'b=2'],
  ['X-Drop', 'gone'],
  ['Content-Type', 'application/json'],
].flat();

const ROUTES = [
  {
    Match: { HTTP: { PathPrefix: '/edit' } },
    Destination: {
      ResponseHeaders: {
        Set: { 'x-edited': '1', 'x-other': 'o2' },
        Add: { 'set-cookie': 'c=3' },
        Remove: ['x-drop'],
      },
    },
  },
  {
    Match: { HTTP: { Header: [{ Name: 'x-canary', Exact: '1' }] } },
    Destination: { RequestHeaders: { Set: { 'x-route': 'canary' } } },
  },
  {
    Match: { HTTP: { PathPrefix: '/drop' } },
    Destination: { RequestHeaders: { Remove: ['x-bad'], Set: { 'x-set': 'route' } } },
  },
  {
    Match: { HTTP: { PathPrefix: '/strip' } },
    Destination: {
      RequestHeaders: { Remove: ['expect', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade'] },
    },
  },
  {
    Match: { HTTP: { PathPrefix: '/s?x=' } },
    Destination: { PrefixRewrite: '/t?y=', RequestHeaders: { Set: { 'x-route': 'rewrite' } } },
  },
] as const;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    req.resume();
    // No `Date` line: two answers a second apart would differ by it, and the tests compare lines.
    res.sendDate = false;
    res.writeHead(200, RESPONSE_LINES);
    res.end(JSON.stringify({ url: req.url, headers: req.rawHeaders }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  mesh = createMesh({
    env: {},
    configSource: createConfigSource('routes', {
      services: { api: { endpoints: `127.0.0.1:${port}`, retry: false } },
      configEntries: [
        { Kind: 'service-defaults', Name: 'api', Protocol: 'http' },
        { Kind: 'service-router', Name: 'api', Routes: ROUTES },
      ],
    }),
  });
});
afterAll(async () => {
  await mesh.close();
  await agent.close();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

/** The raw header lines a dispatch handler gets (`onResponseStart`'s controller, old-style `onHeaders`). */
function rawLines(d: Dispatcher, origin: string, path: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    let raw: string[] = [];
    d.dispatch(
      { origin, path, method: 'GET' },
      {
        onConnect() {},
        onHeaders(status: number, lines: Buffer[]) {
          if (status >= 200) raw = lines.map(String);
          return true;
        },
        onData: () => true,
        onComplete: () => resolve(raw),
        onError: reject,
      },
    );
  });
}

const seen = async (r: Dispatcher.ResponseData) =>
  (await r.body.json()) as { url: string; headers: string[] };
const without = (lines: string[], names: string[]) => {
  const out: string[] = [];
  for (let i = 0; i < lines.length; i += 2)
    if (!names.includes(lines[i]!.toLowerCase())) out.push(lines[i]!, lines[i + 1]!);
  return out;
};

describe('a routed request against plain undici (probe28)', () => {
  it('response header edits leave the other raw lines as the server sent them: case, order, repeats', async () => {
    const direct = await rawLines(agent, `http://127.0.0.1:${port}`, '/edit');
    const routed = await rawLines(mesh.dispatcher, 'http://api', '/edit');
    expect(direct.slice(0, 4)).toEqual(['Set-Cookie', 'a=1', 'X-Other', 'o']);
    // Every line the route does not name, in its place; then the set and added ones.
    const kept = without(direct, ['x-drop', 'x-edited', 'x-other']);
    expect(routed).toEqual([...kept, 'x-edited', '1', 'x-other', 'o2', 'set-cookie', 'c=3']);
    // `responseHeaders: 'raw'` of the request API reads the same lines.
    const r = await mesh.request('http://api/edit', { responseHeaders: 'raw' });
    await r.body.dump();
    expect((r.headers as unknown as Buffer[]).map(String)).toEqual(routed);
    // The record form: the edits, and the repeated header joined as undici joins it.
    const rec = await mesh.request('http://api/edit');
    await rec.body.dump();
    expect(rec.headers['set-cookie']).toEqual(['a=1', 'b=2', 'c=3']);
    expect(rec.headers['x-drop']).toBeUndefined();
    // The record is undici's reading of those lines, in their order: a header the route sets
    // comes after the lines it keeps, as in the lines (not in the place the server gave it).
    expect(Object.entries(rec.headers)).toEqual(Object.entries(undiciUtil.parseHeaders(routed)));
  });

  it('a header match sees the value as the server reads it, without the whitespace around it', async () => {
    for (const value of ['1', ' 1', '1 ', '\t1 ']) {
      const r = await seen(await mesh.request('http://api/m', { headers: { 'x-canary': value } }));
      expect([value, r.headers.includes('canary')]).toEqual([value, true]);
    }
    const other = await seen(await mesh.request('http://api/m', { headers: { 'x-canary': ' 2' } }));
    expect(other.headers.includes('canary')).toBe(false);
  });

  it('a header the route removes or sets is still refused where undici refuses it', async () => {
    const outcome = async (call: () => Promise<Dispatcher.ResponseData>) => {
      try {
        const r = await call();
        await r.body.dump();
        return { status: r.statusCode };
      } catch (e) {
        const err = e as Error & { code?: string };
        return { class: err.constructor.name, code: err.code, message: err.message };
      }
    };
    for (const headers of [
      { 'x-bad': 'a\r\nb' },
      { 'x-bad': { toString: () => 'x' } },
      { 'x-set': ['ok', 'a\nb'] },
      ['x-bad', 'a\0b'],
    ]) {
      const direct = await outcome(() =>
        undiciRequest(`http://127.0.0.1:${port}/drop`, { headers: headers as never, dispatcher: agent }),
      );
      const routed = await outcome(() => mesh.request('http://api/drop', { headers: headers as never }));
      expect(direct).toMatchObject({ class: 'InvalidArgumentError', code: 'UND_ERR_INVALID_ARG' });
      expect([headers, routed]).toEqual([headers, direct]);
    }
    // The headers undici refuses by name (`processHeader`'s special cases), dropped by the route.
    for (const headers of [
      { expect: '100-continue' },
      { 'transfer-encoding': 'chunked' },
      { connection: 'a b' },
      { 'keep-alive': 'timeout=5' },
      { upgrade: 'websocket' },
      ['x-ok', 'fine', 'expect', '100-continue'],
    ]) {
      const direct = await outcome(() =>
        undiciRequest(`http://127.0.0.1:${port}/strip`, { headers: headers as never, dispatcher: agent }),
      );
      const routed = await outcome(() => mesh.request('http://api/strip', { headers: headers as never }));
      expect([headers, direct]).toMatchObject([headers, { class: expect.any(String) }]);
      expect([headers, routed]).toEqual([headers, direct]);
    }
    // Valid values are removed and set as the route says.
    const ok = await seen(
      await mesh.request('http://api/drop', { headers: { 'x-bad': 'fine', 'x-set': 'caller' } }),
    );
    expect(ok.headers).not.toContain('x-bad');
    expect(ok.headers).toEqual(expect.arrayContaining(['x-set', 'route']));
    expect(ok.headers).not.toContain('caller');
  });

  it('a prefix rewrite that reaches into the query applies to a query given with the `query` option', async () => {
    const send = (path: string, query?: Record<string, string>) =>
      mesh.dispatcher.request({ origin: 'http://api', method: 'GET', path, ...(query ? { query } : {}) });
    const inPath = await seen(await send('/s?x=1'));
    const asOption = await seen(await send('/s', { x: '1' }));
    expect(inPath.url).toBe('/t?y=1');
    expect(asOption.url).toBe('/t?y=1');
    expect(asOption.headers).toEqual(expect.arrayContaining(['x-route', 'rewrite']));
    // A query on a path that has one is still undici's to refuse.
    await expect(send('/s?x=1', { z: '2' })).rejects.toThrow(
      'Query params cannot be passed when url already contains "?" or "#".',
    );
  });
});
