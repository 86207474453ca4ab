/**
 * A retried 5xx whose body is past the retry stage's drain limit is dropped (its exchange reset,
 * as Envoy resets the upstream stream of a retried response). It answered: `mesh_attempts_total`
 * counts it `5xx` of its endpoint, as one drained in full is, never `error`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Registry } from 'prom-client';
import { createMesh } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

const BIG = Buffer.alloc(256 * 1024, 'x');
let server: TestServer;
let n = 0;

beforeAll(async () => {
  server = await startServer('api', (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    const big = req.url === '/big';
    if (n++ % 2 === 0) {
      res.writeHead(503, { 'content-length': String(big ? BIG.length : 4) });
      res.end(big ? BIG : 'busy');
      return;
    }
    res.end('ok');
  });
});
afterAll(async () => {
  await server.close();
});

const outcomes = (text: string): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^mesh_attempts_total\{[^}]*outcome="(\w+)"[^}]*\} (\d+)$/gm)) {
    out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2]);
  }
  return out;
};

describe('an attempt the retry stage dropped after its 5xx head', () => {
  it.each(['/big', '/small'])('%s: counted 5xx, then the retry success', async (path) => {
    n = 0;
    const registry = new Registry();
    const mesh = createMesh({
      env: {},
      metrics: { registry },
      services: { api: { endpoints: server.address, retry: { backoff: { base: '1ms', max: '1ms' } } } },
    });
    try {
      const res = await mesh.request(`http://api${path}`);
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('ok');
      expect(outcomes(await registry.metrics())).toEqual({ '5xx': 1, success: 1 });
    } finally {
      await mesh.close();
    }
  });
});
