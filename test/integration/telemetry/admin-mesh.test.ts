import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { createMesh } from 'proxyless';
import { manualResolver } from 'proxyless/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

/** The mesh's admin server over its real data: readiness, pool connections, config version. */
describe('admin server of a mesh', () => {
  let server: TestServer;
  let dir: string;
  beforeAll(async () => {
    server = await startServer('a', (_req, res) => res.end('ok'));
    dir = mkdtempSync(path.join(os.tmpdir(), 'mesh-admin-'));
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('/readyz waits for every configured service, called or not, to resolve once', async () => {
    const registry = manualResolver({ services: ['payments'] });
    const mesh = createMesh({
      env: { MESH_ADMIN_PORT: '0' },
      metrics: { registry: new Registry() },
      resolvers: [registry],
      services: { payments: { timeout: '2s' } },
    });
    try {
      const url = await mesh.admin();
      // Named in the options, never called, its registry has not answered: not ready.
      const before = await fetch(`${url}/readyz`);
      expect(before.status).toBe(503);
      await before.body?.cancel();
      registry.set('payments', [{ address: '127.0.0.1', port: Number(server.address.split(':')[1]) }]);
      const after = await fetch(`${url}/readyz`);
      expect(after.status).toBe(200);
      expect(await after.json()).toEqual({ ready: true });
    } finally {
      await mesh.close();
    }
  });

  it('/clusters shows each endpoint pool’s open connections', async () => {
    const mesh = createMesh({
      env: { MESH_ADMIN_PORT: '0' },
      metrics: { registry: new Registry() },
      services: { api: { endpoints: server.address } },
    });
    try {
      const url = await mesh.admin();
      await (await mesh.request('http://api/')).body.dump();
      const clusters = (await (await fetch(`${url}/clusters`)).json()) as {
        services: Array<{ name: string; endpoints: Array<{ connections?: number }> }>;
      };
      const api = clusters.services.find((s) => s.name === 'api');
      // The keep-alive connection of the call just made.
      expect(api?.endpoints[0]?.connections).toBe(1);
    } finally {
      await mesh.close();
    }
  });

  it('mesh_config_version is the config file’s version from the start', async () => {
    const file = path.join(dir, 'mesh.json');
    writeFileSync(file, JSON.stringify({ services: { api: { endpoints: server.address } } }));
    const metrics = new Registry();
    const mesh = createMesh({ env: { MESH_CONFIG_FILE: file }, metrics: { registry: metrics } });
    try {
      const gauge = await metrics.getSingleMetric('mesh_config_version')?.get();
      expect(gauge?.values[0]?.value).toBe(1);
    } finally {
      await mesh.close();
    }
  });
});
