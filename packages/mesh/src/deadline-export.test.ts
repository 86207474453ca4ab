import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createMesh, DEADLINE_HEADER, type Mesh, runWithIncomingDeadline } from './index.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

describe('deadline propagation from the one package an application installs', () => {
  it('proxyless exports runWithIncomingDeadline: calls inside it carry what the caller has left', async () => {
    const seen: (string | undefined)[] = [];
    const server = http.createServer((req, res) => {
      seen.push(req.headers[DEADLINE_HEADER] as string | undefined);
      res.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const { port } = server.address() as AddressInfo;
    const mesh: Mesh = createMesh({ env: {}, services: { api: { endpoints: `127.0.0.1:${port}` } } });
    closers.push(() => mesh.close());
    await runWithIncomingDeadline({ [DEADLINE_HEADER]: '5000' }, async () => {
      await (await mesh.request('http://api/')).body.text();
    });
    await (await mesh.request('http://api/')).body.text();
    expect(seen).toHaveLength(2);
    const left = Number(seen[0]);
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThanOrEqual(5000);
    // Outside the handler there is no deadline to propagate (no timeout is set by default).
    expect(seen[1]).toBeUndefined();
  });
});
