/**
 * Differential: a 50 MB streamed response, read with the server held by back-pressure, arrives byte
 * for byte through the mesh, as through undici, with bounded memory (back-pressure reaches the
 * socket).
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { differences, everyWay, type Fixture, pairs, same, serverAhead, startFixture } from './support.js';

let fx: Fixture;
beforeAll(async () => {
  fx = await startFixture();
});
afterAll(() => fx.close());

const MB = 1024 * 1024;

/**
 * Read behind the server: every 2 MB, wait until the server is ahead of the reader (its writes held by
 * back-pressure, or done), so the memory figure is taken with every buffer on the way full.
 */
async function readBehind(
  chunks: AsyncIterable<Uint8Array>,
): Promise<{ bytes: number; sha: string; peakRss: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  let nextPause = 2 * MB;
  let peakRss = process.memoryUsage().rss;
  for await (const c of chunks) {
    hash.update(c);
    bytes += c.byteLength;
    if (bytes >= nextPause) {
      nextPause += 2 * MB;
      await serverAhead();
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
    }
  }
  return { bytes, sha: hash.digest('hex'), peakRss };
}

describe('differential: large bodies', () => {
  it('a 50 MB body read with the server held by back-pressure: same bytes, RSS growth under 100 MB', {
    timeout: 60_000,
  }, async () => {
    const growth: Record<string, number> = {};
    const r = await everyWay(
      fx,
      async (w) => {
        globalThis.gc?.();
        const before = process.memoryUsage().rss;
        const res = await w.request(`${w.base}/big?mb=50`);
        const viaRequest = await readBehind(res.body);
        const f = await w.fetch(`${w.base}/big?mb=50`);
        const viaFetch = await readBehind(f.body as unknown as AsyncIterable<Uint8Array>);
        growth[w.name] = Math.max(viaRequest.peakRss, viaFetch.peakRss) - before;
        return { request: [viaRequest.bytes, viaRequest.sha], fetch: [viaFetch.bytes, viaFetch.sha] };
      },
      25_000,
    );
    expect(pairs(r), differences(r)).toEqual(same(r));
    expect((r.direct as { request: unknown[] }).request[0]).toBe(50 * MB);
    for (const [way, bytes] of Object.entries(growth)) expect(bytes, way).toBeLessThan(100 * MB);
  });
});
