/**
 * Differential: a request whose headers undici's `Request` refuses (a value with a newline, a name
 * that is no token, a `transfer-encoding`, a second `host`, an `expect`, …) is refused with undici's
 * error — class, code and message — even when the mesh would answer the call itself before any
 * endpoint's pool saw it: the service's breaker open, its only endpoint unreachable (no healthy
 * endpoint), an injected fault (an error or a status), a rate limit. undici checks the headers
 * before anything else happens to a request; the mesh's own answer comes after (probe30 t10).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMesh, type Mesh, MeshError } from 'proxyless';
import { request as undiciRequest } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let server: http.Server;
let port: number;
let deadPort: number;
let mesh: Mesh;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    req.resume();
    const status = Number(/^\/status\/(\d{3})$/.exec(req.url ?? '')?.[1] ?? 200);
    req.on('end', () => {
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(`status ${status}`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  // A port nothing listens on: listened on, then closed.
  const probe = http.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  deadPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  mesh = createMesh({
    env: {},
    services: {
      healthy: { endpoints: `127.0.0.1:${port}`, retry: false },
      open: {
        endpoints: `127.0.0.1:${port}`,
        retry: false,
        circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 2, resetTimeout: '10m' },
      },
      dead: { endpoints: `127.0.0.1:${deadPort}`, retry: false },
      faulty: {
        endpoints: `127.0.0.1:${port}`,
        retry: false,
        faultInjection: { abort: { percent: 100, status: 503 } },
      },
      limited: { endpoints: `127.0.0.1:${port}`, retry: false, rateLimit: { rps: 0.001, burst: 1 } },
    },
  });
  // Open the breaker: 5xx answers past the volume threshold.
  for (let i = 0; i < 6 && mesh.stats('open')?.circuitBreaker !== 'open'; i++) {
    const r = await mesh.request('http://open/status/503');
    await r.body.dump();
  }
  // The dead endpoint's first connect fails: it leaves picking.
  await mesh.request('http://dead/').then(
    (r) => r.body.dump(),
    () => undefined,
  );
  // The rate limit's one token, spent.
  await (await mesh.request('http://limited/')).body.dump();
});

afterAll(async () => {
  await mesh.destroy().catch(() => undefined);
  await new Promise<void>((r) => server.close(() => r()));
});

/** How a call settled: an error's class, code and message (undici promises all three here). */
async function outcome(fn: () => Promise<{ statusCode: number; body: { dump(): Promise<void> } }>) {
  try {
    const r = await fn();
    await r.body.dump();
    return { status: r.statusCode };
  } catch (e) {
    const err = e as Error & { code?: unknown };
    return { error: { class: err.constructor.name, code: err.code, message: err.message } };
  }
}

const BAD: readonly (readonly [string, Record<string, unknown>])[] = [
  ['a value with a newline', { headers: { 'x-a': 'a\nb' } }],
  ['a name that is no token', { headers: { 'x y': '1' } }],
  [
    'a transfer-encoding header',
    { method: 'POST', body: 'abc', headers: { 'transfer-encoding': 'chunked' } },
  ],
  ['a content-length that is not digits', { headers: { 'content-length': '1x' } }],
  ['two host headers', { headers: ['host', 'a', 'Host', 'b'] }],
  ['a connection header that is no token list', { headers: { connection: 'close, a b' } }],
  ['an expect header', { method: 'POST', body: 'abc', headers: { expect: '100-continue' } }],
  ['an object value', { headers: { 'x-a': { b: 1 } } }],
  ['a bad value after a good one, in an array', { headers: ['x-ok', '1', 'x-a', ['1', 'b\r']] }],
  ['an odd header array', { headers: ['x-a'] }],
];

describe('differential: headers undici refuses, to a service the mesh would answer itself', () => {
  it('the mesh answers each such service itself (valid headers)', async () => {
    expect(mesh.stats('open')?.circuitBreaker).toBe('open');
    const codes = await Promise.all(
      ['open', 'dead', 'limited'].map((s) =>
        mesh.request(`http://${s}/`).then(
          () => 'ok',
          (e: unknown) => (MeshError.is(e) ? e.code : String(e)),
        ),
      ),
    );
    expect(codes).toEqual(['MESH_CIRCUIT_OPEN', 'MESH_NO_HEALTHY_ENDPOINTS', 'MESH_RATE_LIMITED']);
    expect(await outcome(() => mesh.request('http://faulty/'))).toEqual({ status: 503 });
  });

  for (const [name, options] of BAD) {
    it(`${name}: undici's error, whatever the mesh would have answered`, async () => {
      const direct = await outcome(() => undiciRequest(`http://127.0.0.1:${port}/`, options as never));
      expect(direct).toHaveProperty('error');
      const results: Record<string, unknown> = {};
      for (const service of ['healthy', 'open', 'dead', 'faulty', 'limited']) {
        results[`mesh.request ${service}`] = await outcome(() =>
          mesh.request(`http://${service}/`, options as never),
        );
        results[`dispatcher ${service}`] = await outcome(() =>
          undiciRequest(`http://${service}/`, { ...options, dispatcher: mesh.dispatcher } as never),
        );
      }
      expect(results).toEqual(Object.fromEntries(Object.keys(results).map((k) => [k, direct])));
    });
  }

  it('an already-aborted signal with a bad header: undici names the header', async () => {
    const options = { headers: { 'x-a': 'a\nb' }, signal: AbortSignal.abort() };
    const direct = await outcome(() => undiciRequest(`http://127.0.0.1:${port}/`, options as never));
    expect(direct).toMatchObject({ error: { message: 'invalid x-a header' } });
    for (const service of ['healthy', 'open', 'dead']) {
      expect(await outcome(() => mesh.request(`http://${service}/`, options as never))).toEqual(direct);
    }
  });

  it('https to a mesh service, and an unknown service with pass-through off: undici names the header', async () => {
    const options = { headers: { 'x y': '1' } };
    const direct = await outcome(() => undiciRequest(`http://127.0.0.1:${port}/`, options as never));
    expect(direct).toMatchObject({ error: { message: 'invalid header key' } });
    expect(await outcome(() => mesh.request('https://healthy/', options as never))).toEqual(direct);
    const closed = createMesh({ env: {}, passthrough: false, services: {} });
    try {
      expect(await outcome(() => closed.request('http://nowhere/', options as never))).toEqual(direct);
      // Valid headers: the mesh's own answers.
      expect(await outcome(() => closed.request('http://nowhere/'))).toMatchObject({
        error: { code: 'MESH_UNKNOWN_SERVICE' },
      });
    } finally {
      await closed.close();
    }
    expect(await outcome(() => mesh.request('https://healthy/'))).toMatchObject({
      error: { code: 'MESH_CONFIG_INVALID' },
    });
  });

  it('valid headers still get the mesh answer (nothing refused that undici sends)', async () => {
    const headers = {
      'x-a': 'ok',
      'content-type': 'text/plain',
      connection: 'keep-alive',
      'x-n': 5,
      'x-z': null,
    };
    const r = await outcome(() => mesh.request('http://open/', { headers } as never));
    expect(r).toMatchObject({ error: { code: 'MESH_CIRCUIT_OPEN' } });
  });
});
