import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createMesh, type Mesh } from 'proxyless';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

/** Who answered each of `n` concurrent GETs (the server's name), and the errors. */
async function spread(
  mesh: Mesh,
  url: string,
  n: number,
): Promise<{ by: Record<string, number>; errors: string[] }> {
  const by: Record<string, number> = {};
  const errors: string[] = [];
  await Promise.all(
    Array.from({ length: n }, async () => {
      try {
        const res = await mesh.request(url);
        const who = await res.body.text();
        by[who] = (by[who] ?? 0) + 1;
      } catch (e) {
        errors.push((e as { code?: string }).code ?? String(e));
      }
    }),
  );
  return { by, errors };
}

describe('service-resolver Failover (Envoy: the next target when this one has no healthy endpoint)', () => {
  let backup: TestServer;
  let v1: TestServer;
  let sick: http.Server;
  let sickPort: number;
  let dir: string;
  let mesh: Mesh | undefined;
  beforeAll(async () => {
    backup = await startServer('backup', (_req, res) => res.end('backup'));
    v1 = await startServer('v1', (_req, res) => res.end('v1'));
    // Serves requests, fails its health check.
    sick = http.createServer((req, res) => {
      if (req.url === '/healthz') res.writeHead(503).end();
      else res.end('sick');
    });
    await new Promise<void>((resolve) => sick.listen(0, '127.0.0.1', resolve));
    sickPort = (sick.address() as { port: number }).port;
    dir = mkdtempSync(path.join(os.tmpdir(), 'mesh-failover-'));
  });
  afterEach(async () => {
    await mesh?.close();
    mesh = undefined;
  });
  afterAll(async () => {
    await Promise.all([backup.close(), v1.close()]);
    sick.closeAllConnections();
    sick.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const write = (doc: unknown): string => {
    const file = path.join(dir, `${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify(doc));
    return file;
  };

  it('the first calls to a target that has never had endpoints fail over (0 failed)', async () => {
    const file = write({
      services: {
        web: {
          endpoints: [
            { address: '127.0.0.1', port: Number(v1.address.split(':')[1]), metadata: { version: 'v1' } },
          ],
        },
        backup: { endpoints: backup.address },
      },
      configEntries: [
        { Kind: 'service-defaults', Name: 'web', Protocol: 'http' },
        { Kind: 'service-defaults', Name: 'backup', Protocol: 'http' },
        {
          Kind: 'service-resolver',
          Name: 'web',
          DefaultSubset: 'v9',
          Subsets: { v9: { Filter: 'Service.Meta.version == "v9"' } },
          Failover: { v9: { Targets: [{ Service: 'backup' }] } },
        },
      ],
    });
    mesh = createMesh({ env: { MESH_CONFIG_FILE: file } });
    // Eight at once, before any target has resolved: before, every one failed with MESH_NO_ENDPOINTS.
    expect(await spread(mesh, 'http://web/', 8)).toEqual({ by: { backup: 8 }, errors: [] });
  });

  it('a primary whose only endpoint fails its health check sends its traffic to the failover target', async () => {
    const file = write({
      services: {
        hc: {
          endpoints: `127.0.0.1:${sickPort}`,
          healthCheck: { path: '/healthz', interval: '200ms', timeout: '100ms', unhealthyThreshold: 1 },
        },
        backup: { endpoints: backup.address },
      },
      configEntries: [
        { Kind: 'service-defaults', Name: 'hc', Protocol: 'http' },
        { Kind: 'service-defaults', Name: 'backup', Protocol: 'http' },
        { Kind: 'service-resolver', Name: 'hc', Failover: { '*': { Service: 'backup' } } },
      ],
    });
    mesh = createMesh({ env: { MESH_CONFIG_FILE: file } });
    const m = mesh;
    // The first call builds the target and its health checker; the check fails within ~200 ms.
    await (await m.request('http://hc/')).body.dump();
    await expect
      .poll(async () => (await spread(m, 'http://hc/', 1)).by, { timeout: 5000, interval: 50 })
      .toEqual({ backup: 1 });
    // Before: all 20 went to the failing endpoint (the balancer in panic).
    expect(await spread(m, 'http://hc/', 20)).toEqual({ by: { backup: 20 }, errors: [] });
  });
});
