import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMesh, type Mesh } from 'proxyless';
import { VirtualClock } from 'proxyless/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

/**
 * A service with config entries has its own destination (which holds the registry watch) and one
 * per routing target, all over the same endpoints. Active health checks are per endpoint: each is
 * probed once per interval, not once per destination.
 */
describe('active health checks of a routed service', () => {
  let routed: TestServer;
  let plain: TestServer;
  const probes = { routed: 0, plain: 0 };
  let dir: string;
  let mesh: Mesh | undefined;
  beforeAll(async () => {
    const handler =
      (key: 'routed' | 'plain') =>
      (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
        if (req.url === '/healthz') probes[key]++;
        res.end(key);
      };
    routed = await startServer('routed', handler('routed'));
    plain = await startServer('plain', handler('plain'));
    dir = mkdtempSync(path.join(os.tmpdir(), 'mesh-hc-share-'));
  });
  afterAll(async () => {
    await mesh?.destroy();
    await Promise.all([routed.close(), plain.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('probes each endpoint once per interval, as for a service without entries', async () => {
    const healthCheck = { path: '/healthz', interval: '1s', timeout: '500ms' };
    const file = path.join(dir, 'mesh.json');
    writeFileSync(
      file,
      JSON.stringify({
        services: {
          routed: {
            endpoints: [{ address: '127.0.0.1', port: routed.port, metadata: { version: 'v1' } }],
            healthCheck,
          },
          plain: { endpoints: plain.address, healthCheck },
        },
        configEntries: [
          { Kind: 'service-defaults', Name: 'routed', Protocol: 'http' },
          {
            Kind: 'service-resolver',
            Name: 'routed',
            DefaultSubset: 'v1',
            Subsets: { v1: { Filter: 'Service.Meta.version == v1' } },
          },
        ],
      }),
    );
    const clock = new VirtualClock();
    mesh = createMesh({ env: { MESH_CONFIG_FILE: file }, clock });
    const m = mesh;
    expect(await (await m.request('http://routed/')).body.text()).toBe('routed');
    expect(await (await m.request('http://plain/')).body.text()).toBe('plain');
    await clock.advance(0);
    await expect.poll(() => probes.plain, { timeout: 5000, interval: 10 }).toBe(1);
    for (let i = 2; i <= 5; i++) {
      await clock.advance(1000);
      await expect.poll(() => probes.plain, { timeout: 5000, interval: 10 }).toBe(i);
    }
    // Before: the routed service's own destination and its subset target each ran a checker
    // (10 probes to plain's 5).
    await expect.poll(() => probes.routed, { timeout: 5000, interval: 10 }).toBe(probes.plain);
  });
});
