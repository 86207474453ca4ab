/**
 * The `hashKey` request option of `mesh.request` with the consistent-hash pickers: a string or a
 * finite number (hashed as its decimal string) keeps a key on one endpoint; docs/load-balancing.md.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMesh } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const servers: http.Server[] = [];
let endpoints = '';

beforeAll(async () => {
  const ports: number[] = [];
  for (let i = 0; i < 4; i++) {
    const server = http.createServer((req, res) => {
      req.resume();
      res.end(String(i));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    servers.push(server);
    ports.push((server.address() as AddressInfo).port);
  }
  endpoints = ports.map((p) => `127.0.0.1:${p}`).join(',');
});
afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

describe('hashKey with ring_hash and maglev', () => {
  for (const policy of ['ring_hash', 'maglev'] as const) {
    it(`${policy}: a number keeps its key on one endpoint, the one its decimal string picks`, async () => {
      const mesh = createMesh({ env: {}, services: { h: { endpoints, loadBalancer: { policy } } } });
      try {
        const answers = async (hashKey: unknown) => {
          const seen = new Set<string>();
          // 12 calls over 4 endpoints: a key that were ignored would land on one with chance 4⁻¹¹.
          for (let i = 0; i < 12; i++) {
            const r = await mesh.request('http://h/', { hashKey } as { hashKey: string });
            seen.add(await r.body.text());
          }
          return [...seen];
        };
        const byNumber = await answers(42);
        expect(byNumber).toHaveLength(1);
        expect(await answers('42')).toEqual(byNumber);
        expect(await answers(1.5)).toEqual(await answers('1.5'));
      } finally {
        await mesh.close();
      }
    });
  }
});
