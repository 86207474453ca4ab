/**
 * Differential: every `undici.request` option and result field, and the method's case, through
 * undici direct, undici over `mesh.dispatcher`, and `mesh.request`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  differences,
  digest,
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

describe('differential: undici.request options and result fields', () => {
  it('query', async () => {
    const r = await everyWay(fx, async (w) =>
      settle(async () =>
        seeRequest(await w.request(`${w.base}/echo`, { query: { a: '1', b: ['x', 'y z'], c: '' } })),
      ),
    );
    expect(pairs(r), differences(r)).toEqual(same(r));
  });

  it('URL forms: string with a query, URL object, a path option, many distinct URLs', async () => {
    const r = await everyWay(fx, async (w) =>
      settle(async () => {
        const seen = [
          await seeRequest(await w.request(`${w.base}/echo?x=1&y=%20`)),
          await seeRequest(await w.request(new URL(`${w.base}/echo?u=1`) as unknown as string)),
          await seeRequest(await w.request(w.base, { path: 'echo?p=1' })),
          await seeRequest(await w.request(`${w.base}/ignored`, { path: '/echo?p=2' })),
        ];
        // More distinct URLs than the mesh's URL table holds: each still reaches its own path.
        const paths: string[] = [];
        for (let i = 0; i < 300; i++) {
          const res = await w.request(`${w.base}/echo?i=${i}`);
          paths.push(((await res.body.json()) as { url: string }).url);
        }
        return { seen, paths: paths.filter((p, i) => p === `/echo?i=${i}`).length };
      }),
    );
    expect(pairs(r), differences(r)).toEqual(same(r));
  });

  it('invalid URLs fail as undici fails them', async () => {
    const r = await everyWay(fx, async (w) =>
      Promise.all(
        ['ftp://svc/x', 'not a url', `${w.base.replace('http:', 'ws:')}/echo`].map((u) =>
          settle(async () => seeRequest(await w.request(u))),
        ),
      ),
    );
    expect(pairs(r), differences(r)).toEqual(same(r));
  });

  it('statusText, headers, trailers and the result fields', async () => {
    const r = await everyWay(fx, async (w) =>
      settle(async () => [
        await seeRequest(await w.request(`${w.base}/echo`)),
        await seeRequest(await w.request(`${w.base}/trailers`)),
      ]),
    );
    expect(pairs(r), differences(r)).toEqual(same(r));
  });

  it('opaque and context', async () => {
    const r = await everyWay(fx, async (w) =>
      settle(async () => {
        const opaque = { mine: 1 };
        const res = await w.request(`${w.base}/echo`, { opaque });
        await res.body.dump();
        return { opaqueKept: res.opaque === opaque, context: typeof res.context };
      }),
    );
    expect(pairs(r), differences(r)).toEqual(same(r));
  });

  it('responseHeaders: raw', async () => {
    const r = await everyWay(fx, async (w) =>
      settle(async () => seeRequest(await w.request(`${w.base}/echo`, { responseHeaders: 'raw' }))),
    );
    expect(pairs(r), differences(r)).toEqual(same(r));
  });

  it('highWaterMark', async () => {
    const r = await everyWay(fx, async (w) =>
      settle(async () => {
        const res = await w.request(`${w.base}/bytes?n=100000`, { highWaterMark: 1024 });
        return { hwm: res.body.readableHighWaterMark, body: digest(await res.body.bytes()) };
      }),
    );
    expect(pairs(r), differences(r)).toEqual(same(r));
  });

  it('throwOnError (rejected by undici 7)', async () => {
    const r = await everyWay(fx, async (w) =>
      settle(async () => seeRequest(await w.request(`${w.base}/status/500`, { throwOnError: true }))),
    );
    expect(pairs(r), differences(r)).toEqual(same(r));
  });

  it('reset', async () => {
    const r = await everyWay(fx, async (w) =>
      settle(async () => seeRequest(await w.request(`${w.base}/echo`, { reset: true }))),
    );
    expect(pairs(r), differences(r)).toEqual(same(r));
  });

  it('onInfo sees the 103 before the final response', async () => {
    const r = await everyWay(fx, async (w) =>
      settle(async () => {
        const infos: unknown[] = [];
        const res = await w.request(`${w.base}/hints`, {
          onInfo: (i: { statusCode: number; headers: unknown }) => infos.push([i.statusCode, i.headers]),
        });
        return { infos, res: await seeRequest(res) };
      }),
    );
    expect(pairs(r), differences(r)).toEqual(same(r));
  });

  it('headersTimeout and bodyTimeout', async () => {
    const r = await everyWay(fx, async (w) => [
      await settle(async () => seeRequest(await w.request(`${w.base}/slow-head`, { headersTimeout: 200 }))),
      await settle(async () => seeRequest(await w.request(`${w.base}/slow-body`, { bodyTimeout: 200 }))),
    ]);
    expect(pairs(r), differences(r)).toEqual(same(r));
  });

  it('every body mixin: text, json, blob, bytes, arrayBuffer, formData', async () => {
    const mixins = ['text', 'json', 'blob', 'bytes', 'arrayBuffer', 'formData'] as const;
    const r = await everyWay(fx, async (w) => {
      const out: Record<string, unknown> = {};
      for (const m of mixins) {
        out[m] = await settle(async () => {
          const res = await w.request(`${w.base}/json`);
          const v: unknown = await (res.body[m] as () => Promise<unknown>).call(res.body);
          if (v instanceof Blob)
            return { blob: v.type, bytes: digest(new Uint8Array(await v.arrayBuffer())) };
          if (v instanceof ArrayBuffer) return digest(new Uint8Array(v));
          if (v instanceof Uint8Array) return digest(v);
          return v;
        });
      }
      return out;
    });
    expect(pairs(r), differences(r)).toEqual(same(r));
  });

  it('dump({ limit })', async () => {
    const r = await everyWay(fx, async (w) =>
      settle(async () => {
        const small = await w.request(`${w.base}/bytes?n=1000`);
        await small.body.dump({ limit: 100_000 });
        const big = await w.request(`${w.base}/bytes?n=500000`);
        const t0 = Date.now();
        await big.body.dump({ limit: 1000 });
        return { small: small.body.destroyed, big: big.body.destroyed, fast: Date.now() - t0 < 1000 };
      }),
    );
    expect(pairs(r), differences(r)).toEqual(same(r));
  });

  it('method case: get, patch, Purge, PATCH, custom', async () => {
    const r = await everyWay(fx, async (w) => {
      const out: Record<string, unknown> = {};
      for (const method of ['get', 'patch', 'Purge', 'PATCH', 'delete', 'OPTIONS']) {
        out[method] = await settle(async () => {
          const res = await w.request(`${w.base}/echo`, { method });
          const text = await res.body.text();
          // Node's server answers 400 to a method it does not know in that case (`patch`).
          return { status: res.statusCode, method: res.statusCode === 200 ? JSON.parse(text).method : text };
        });
      }
      return out;
    });
    expect(pairs(r), differences(r)).toEqual(same(r));
  });

  it('request headers as an object, a flat array and an iterable', async () => {
    const r = await everyWay(fx, async (w) =>
      settle(async () => [
        await seeRequest(
          await w.request(`${w.base}/echo`, { headers: { 'X-One': '1', 'x-two': ['a', 'b'] } }),
        ),
        await seeRequest(await w.request(`${w.base}/echo`, { headers: ['X-Flat', 'v', 'x-flat2', 'w'] })),
        await seeRequest(
          await w.request(`${w.base}/echo`, {
            headers: new Map([
              ['X-Map', '1'],
              ['x-map2', '2'],
            ]),
          }),
        ),
      ]),
    );
    expect(pairs(r), differences(r)).toEqual(same(r));
  });
});
