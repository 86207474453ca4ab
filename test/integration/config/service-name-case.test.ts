import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMesh, type MeshEvent } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

// Service names are case-insensitive (DNS, Consul): a policy written under `Payments` is the policy
// of the destination `payments` that calls to `http://Payments/` and `http://payments/` reach.
describe('a service name with capitals keeps its policy (probe2 case.ts)', () => {
  let failing: TestServer;
  let dir: string;
  beforeAll(async () => {
    failing = await startServer('down', (req, res) => {
      req.resume();
      res.statusCode = 503;
      res.end('x');
    });
    dir = mkdtempSync(path.join(os.tmpdir(), 'proxyless-name-case-'));
  });
  afterAll(async () => {
    await failing.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const retry = (maxRetries: number) => ({ maxRetries, retryOn: ['5xx' as const], backoff: { base: 1 } });
  /** Upstream attempts of one call to `url`. */
  const attempts = async (mesh: ReturnType<typeof createMesh>, url: string): Promise<number> => {
    const before = failing.requests;
    await (await mesh.request(url)).body.dump();
    return failing.requests - before;
  };

  it('applies a code option under `Payments` to calls in any spelling, and shows it for any spelling', async () => {
    const mesh = createMesh({
      env: {},
      services: { Payments: { endpoints: failing.address, retry: retry(4) } },
    });
    try {
      expect(await attempts(mesh, 'http://Payments/')).toBe(5);
      expect(await attempts(mesh, 'http://payments/')).toBe(5);
      for (const name of ['Payments', 'payments', 'PAYMENTS']) {
        expect(mesh.config(name).resilience.retry?.maxRetries).toBe(4);
        expect(mesh.config(name).sources['retry.maxRetries']).toEqual({
          layer: 'options.services',
          version: 1,
        });
      }
    } finally {
      await mesh.close();
    }
  });

  it('applies a file entry under `Payments`, on start and on reload, and dumps it under the name in use', async () => {
    const file = path.join(dir, 'mesh.json');
    const write = (n: number): void =>
      writeFileSync(
        file,
        JSON.stringify({ services: { Payments: { endpoints: failing.address, retry: retry(n) } } }),
      );
    write(3);
    const mesh = createMesh({ env: { MESH_ADMIN_PORT: '0' }, configFile: file });
    try {
      expect(await attempts(mesh, 'http://payments/')).toBe(4);
      expect(mesh.config('payments').resilience.retry?.maxRetries).toBe(3);

      const applied = new Promise<Extract<MeshEvent, { type: 'config_applied' }>>((resolve) => {
        const sub = mesh.onEvent((e) => {
          if (e.type !== 'config_applied') return;
          sub.dispose();
          resolve(e);
        });
      });
      write(1);
      await mesh.reloadConfig();
      const event = await applied;
      expect(event.changed.get('payments')).toEqual(['retry']);
      expect(await attempts(mesh, 'http://Payments/')).toBe(2);
      expect(mesh.config('PAYMENTS').sources['retry.maxRetries']).toEqual({
        layer: 'file.services',
        version: event.version,
      });

      const url = await mesh.admin();
      const dump = (await (await fetch(`${url}/config_dump`)).json()) as {
        services: Record<string, { live: boolean; resilience: { retry?: { maxRetries: number } } }>;
      };
      expect(Object.keys(dump.services)).toEqual(['payments']);
      expect(dump.services.payments).toMatchObject({ live: true, resilience: { retry: { maxRetries: 1 } } });
    } finally {
      await mesh.close();
    }
  });

  it('names a merged-rule problem with the spelling the document uses', () => {
    // `backoff.max` ≥ `base` holds only once the env layer and the service's are merged.
    expect(() =>
      createMesh({
        env: { MESH_RETRY_BACKOFF_MAX: '100ms' },
        services: { Payments: { endpoints: failing.address, retry: { backoff: { base: '1s' } } } },
      }),
    ).toThrow(/services\.Payments\.retry\.backoff\.max: [^\n]*\(all layers merged/);
  });
});
