/**
 * Differential: `request(urlObject)` with no options — the object both the URL and the options, as
 * undici's `request()` takes it (`{ origin, path }`, or `protocol`/`hostname`/`pathname`, with
 * `method`, `headers`, `body` beside them) — through undici direct and `mesh.request`, for a mesh service (`http://svc`) and for an origin the mesh passes through
 * (probe30 t38b: `mesh.request({ origin, path })` threw `invalid url`).
 */
import { request as undiciRequest } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  differences,
  everyWay,
  type Fixture,
  pairs,
  same,
  seeRequest,
  settle,
  startFixture,
} from './support.js';

let fx: Fixture;
beforeAll(async () => {
  fx = await startFixture();
});
afterAll(() => fx.close());

/** URL objects (each the whole of the call's arguments) for an origin. */
function objects(origin: string): Record<string, unknown>[] {
  const u = new URL(origin);
  return [
    { origin, path: '/echo' },
    { origin, path: '/echo?x=1&y=%20' },
    { origin, path: 'echo?no-slash=1' },
    { origin: `${origin}/`, path: '/echo' },
    { origin, path: '/echo', method: 'POST', body: 'abc', headers: { 'x-a': '1' } },
    { origin, path: '/echo', body: 'put by default' },
    { origin, path: '/echo', headers: { 'x-a': 'a\nb' } },
    { protocol: u.protocol, hostname: u.hostname, port: u.port, pathname: '/echo', search: '?s=1' },
    { origin, pathname: '/echo' },
    // Read as undici reads them: `method` and `body` with gets (an inherited method counts).
    Object.assign(Object.create({ method: 'POST', body: 'inherited' }), { origin, path: '/echo' }),
    { origin, path: 5 },
    { origin, path: '/echo', agent: {} },
  ];
}

describe('differential: request(urlObject) without options', () => {
  it('a mesh service: as undici.request takes the same object', async () => {
    // undici direct and `mesh.request` (the dispatcher way gives undici options of its own, which
    // it reads instead of the object's).
    const r = await everyWay(fx, async (w) => {
      if (w.name === 'dispatcher') return [];
      const out: unknown[] = [];
      for (const o of objects(w.base)) {
        out.push(await settle(async () => seeRequest(await w.request(o as never))));
      }
      return out;
    });
    expect((r.direct as { ok?: unknown }[]).filter((x) => 'ok' in x)).toHaveLength(9);
    expect(pairs(r).mesh, differences({ direct: r.direct, mesh: r.mesh })).toEqual(same(r).mesh);
  });

  it('an origin the mesh passes through: as undici.request takes the same object', async () => {
    const origin = `http://127.0.0.1:${fx.port}`;
    const direct: unknown[] = [];
    const mesh: unknown[] = [];
    for (const o of objects(origin)) {
      direct.push(await settle(async () => seeRequest(await undiciRequest(o as never))));
      mesh.push(await settle(async () => seeRequest((await fx.mesh.request(o as never)) as never)));
    }
    expect(direct.filter((x) => 'ok' in (x as object))).toHaveLength(9);
    expect(mesh).toEqual(direct);
  });

  it('the object is not changed, and mesh.request names the endpoint', async () => {
    const o = { origin: 'http://svc', path: '/echo', headers: { 'x-a': '1' } };
    const before = JSON.stringify(o);
    // Typed as undici types `request()`: its `url` is `string | URL | UrlObject` (no `origin`).
    const res = await fx.mesh.request(o as never);
    await res.body.dump();
    expect(res.statusCode).toBe(200);
    expect(res.endpoint).toBe(`127.0.0.1:${fx.port}`);
    expect(JSON.stringify(o)).toBe(before);
  });
});
