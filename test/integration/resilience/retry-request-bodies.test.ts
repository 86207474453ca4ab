/**
 * Differential: request bodies with the retry stage in force go out as undici sends them — every
 * ArrayBufferView as the bytes it views, with its content-length — and a body undici refuses
 * (URLSearchParams, an iterable of arrays) is refused with the same error, never sent as text.
 */
import { createMesh, type Mesh } from 'proxyless';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

interface Seen {
  hex: string;
  length: string | null;
  chunked: boolean;
}

describe('retry over a real backend: typed-array and other request bodies', () => {
  let mesh: Mesh;
  let server: TestServer;
  const seen: Seen[] = [];
  let failFirst = false;
  beforeEach(async () => {
    seen.length = 0;
    failFirst = false;
    server = await startServer('bytes', (req, res, s) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({
          hex: Buffer.concat(chunks).toString('hex'),
          length: req.headers['content-length'] ?? null,
          chunked: req.headers['transfer-encoding'] === 'chunked',
        });
        res.writeHead(failFirst && s.requests === 1 ? 503 : 200);
        res.end();
      });
    });
    mesh = createMesh({
      env: {},
      services: { api: { endpoints: server.address, retry: { backoff: { base: '1ms', max: '5ms' } } } },
    });
  });
  afterEach(async () => {
    await mesh.close();
    await server.close();
  });

  // undici accepts any ArrayBufferView at run time; its types name Uint8Array only.
  const bodies: Record<string, () => Uint8Array> = {
    Uint16Array: () => new Uint16Array([0x0102, 0x0304]) as unknown as Uint8Array,
    Int8Array: () => new Int8Array([1, -1, 2]) as unknown as Uint8Array,
    Float32Array: () => new Float32Array([1.5]) as unknown as Uint8Array,
    Uint8ClampedArray: () => new Uint8ClampedArray([1, 2, 3]) as unknown as Uint8Array,
    BigUint64Array: () => new BigUint64Array([1n]) as unknown as Uint8Array,
    DataView: () => new DataView(new Uint8Array([9, 5, 6]).buffer, 1) as unknown as Uint8Array,
    'Uint16Array at an offset': () =>
      new Uint16Array(new Uint16Array([0xaaaa, 0x0102]).buffer, 2, 1) as unknown as Uint8Array,
  };

  it('sends every ArrayBufferView as undici does (bytes, content-length)', async () => {
    for (const [name, make] of Object.entries(bodies)) {
      seen.length = 0;
      await (await request(`http://${server.address}/`, { method: 'PUT', body: make() })).body.dump();
      await (await mesh.request('http://api/', { method: 'PUT', body: make() })).body.dump();
      expect([name, seen[1]]).toEqual([name, seen[0]]);
      expect(seen[0]!.chunked).toBe(false);
    }
  });

  it('replays a typed-array body byte for byte on a retry', async () => {
    failFirst = true;
    const res = await mesh.request('http://api/', {
      method: 'PUT',
      body: new Uint16Array([0x0102, 0x0304]) as unknown as Uint8Array,
    });
    await res.body.dump();
    expect(res.statusCode).toBe(200);
    expect(seen).toEqual([
      { hex: '02010403', length: '4', chunked: false },
      { hex: '02010403', length: '4', chunked: false },
    ]);
  });

  it('refuses a URLSearchParams body with the TypeError undici raises, sending nothing as text', async () => {
    const fail = (p: Promise<unknown>) =>
      p.then(
        () => undefined,
        (e: unknown) => e as Error & { code?: string },
      );
    const body = () => new URLSearchParams({ a: '1' }) as never;
    const direct = await fail(request(`http://${server.address}/`, { method: 'PUT', body: body() }));
    const viaMesh = await fail(mesh.request('http://api/', { method: 'PUT', body: body() }));
    expect(direct).toBeInstanceOf(TypeError);
    expect(viaMesh).toBeInstanceOf(TypeError);
    expect({ code: viaMesh?.code, message: viaMesh?.message }).toEqual({
      code: direct?.code,
      message: direct?.message,
    });
    expect(seen.filter((s) => s.hex === Buffer.from('a,1').toString('hex'))).toEqual([]);
  });
});
