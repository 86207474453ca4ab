/**
 * Differential: request body types, response kinds (1xx, HEAD, 204, 304), content encodings and
 * redirects, through undici direct, undici over `mesh.dispatcher`, and the mesh's own API.
 */
import { Readable } from 'node:stream';
import {
  Agent,
  type Dispatcher,
  interceptors,
  FormData as UndiciFormData,
  request as undiciRequest,
} from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  differences,
  everyWay,
  type Fixture,
  pairs,
  payload,
  same,
  seeRequest,
  seeResponse,
  settle,
  startFixture,
} from './support.js';

let fx: Fixture;
beforeAll(async () => {
  fx = await startFixture();
});
afterAll(() => fx.close());

const BYTES = payload(70_000);

function form(F: typeof FormData = FormData): FormData {
  const f = new F();
  f.append('field', 'value');
  f.append('file', new Blob([BYTES.subarray(0, 1000)], { type: 'application/octet-stream' }), 'f.bin');
  return f;
}

/** Request bodies, each made fresh per call (streams are one-shot). */
const requestBodies: Record<string, () => unknown> = {
  string: () => 'a string body',
  Buffer: () => BYTES,
  Uint8Array: () => new Uint8Array(BYTES),
  Readable: () => Readable.from([BYTES.subarray(0, 30_000), BYTES.subarray(30_000)]),
  'async iterable': () =>
    (async function* () {
      yield BYTES.subarray(0, 10);
      yield BYTES.subarray(10);
    })(),
  FormData: form,
  empty: () => undefined,
};

const fetchBodies: Record<string, () => Record<string, unknown>> = {
  string: () => ({ body: 'a string body' }),
  Uint8Array: () => ({ body: new Uint8Array(BYTES) }),
  ArrayBuffer: () => ({ body: new Uint8Array(BYTES).buffer }),
  Blob: () => ({ body: new Blob([BYTES], { type: 'application/x-thing' }) }),
  URLSearchParams: () => ({ body: new URLSearchParams({ a: '1', b: 'two words' }) }),
  // undici's own FormData: a FormData of Node's global fetch (another copy of undici) is one undici's
  // fetch sends as the text "[object FormData]", and mesh.fetch as a form (fetch-arguments.test.ts).
  FormData: () => ({ body: form(UndiciFormData as unknown as typeof FormData) }),
  ReadableStream: () => ({
    body: new ReadableStream({
      start(c) {
        c.enqueue(BYTES.subarray(0, 5000));
        c.enqueue(BYTES.subarray(5000));
        c.close();
      },
    }),
    duplex: 'half',
  }),
  'async iterable': () => ({
    body: (async function* () {
      yield BYTES.subarray(0, 5000);
      yield BYTES.subarray(5000);
    })(),
    duplex: 'half',
  }),
};

describe('differential: bodies, response kinds, encodings, redirects', () => {
  for (const [kind, make] of Object.entries(requestBodies)) {
    it(`request body: ${kind}`, async () => {
      const r = await everyWay(fx, async (w) =>
        settle(async () => seeRequest(await w.request(`${w.base}/echo`, { method: 'POST', body: make() }))),
      );
      expect(pairs(r), differences(r)).toEqual(same(r));
    });
  }

  for (const [kind, make] of Object.entries(fetchBodies)) {
    it(`fetch body: ${kind}`, async () => {
      const r = await everyWay(fx, async (w) =>
        settle(async () =>
          seeResponse(await w.fetch(`${w.base}/echo`, { method: 'POST', ...make() }), w.base),
        ),
      );
      expect(pairs(r), differences(r)).toEqual(same(r));
    });
  }

  it('1xx before the final response (fetch and request)', async () => {
    const r = await everyWay(fx, async (w) => [
      await settle(async () => seeResponse(await w.fetch(`${w.base}/hints`), w.base)),
      await settle(async () => seeRequest(await w.request(`${w.base}/hints`))),
    ]);
    expect(pairs(r), differences(r)).toEqual(same(r));
  });

  it('HEAD, 204 and 304', async () => {
    const r = await everyWay(fx, async (w) => [
      await settle(async () => seeRequest(await w.request(`${w.base}/echo`, { method: 'HEAD' }))),
      await settle(async () => seeResponse(await w.fetch(`${w.base}/echo`, { method: 'HEAD' }), w.base)),
      await settle(async () => seeRequest(await w.request(`${w.base}/status/204`))),
      await settle(async () => seeResponse(await w.fetch(`${w.base}/status/204`), w.base)),
      await settle(async () =>
        seeRequest(await w.request(`${w.base}/conditional`, { headers: { 'if-none-match': '"v1"' } })),
      ),
      await settle(async () =>
        seeResponse(await w.fetch(`${w.base}/conditional`, { headers: { 'if-none-match': '"v1"' } }), w.base),
      ),
    ]);
    expect(pairs(r), differences(r)).toEqual(same(r));
  });

  for (const enc of ['gzip', 'br', 'deflate']) {
    it(`content encoding ${enc} (fetch decodes, request does not)`, async () => {
      const r = await everyWay(fx, async (w) => [
        await settle(async () => seeResponse(await w.fetch(`${w.base}/enc/${enc}`), w.base)),
        await settle(async () => seeRequest(await w.request(`${w.base}/enc/${enc}`), (b) => b.bytes())),
      ]);
      expect(pairs(r), differences(r)).toEqual(same(r));
    });
  }

  for (const code of [301, 302, 303, 307, 308]) {
    it(`same-service redirect ${code}: fetch follows, manual and error modes, redirect interceptor`, async () => {
      const r = await everyWay(fx, async (w) => {
        const base = w.dispatcher ?? new Agent();
        const following: Dispatcher = base.compose(interceptors.redirect({ maxRedirections: 3 }));
        try {
          return [
            await settle(async () => seeResponse(await w.fetch(`${w.base}/redirect?code=${code}`), w.base)),
            await settle(async () =>
              seeResponse(await w.fetch(`${w.base}/redirect?code=${code}`, { redirect: 'manual' }), w.base),
            ),
            await settle(async () =>
              seeResponse(await w.fetch(`${w.base}/redirect?code=${code}`, { redirect: 'error' }), w.base),
            ),
            await settle(async () =>
              seeResponse(
                await w.fetch(`${w.base}/redirect?code=${code}`, { method: 'POST', body: 'x' }),
                w.base,
              ),
            ),
            await settle(async () =>
              seeRequest(await undiciRequest(`${w.base}/redirect?code=${code}`, { dispatcher: following })),
            ),
          ];
        } finally {
          if (w.dispatcher === undefined) await base.close();
        }
      });
      expect(pairs(r), differences(r)).toEqual(same(r));
    });
  }
});
