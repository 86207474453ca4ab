import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createConfigSource, createMesh } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

interface Dumped {
  service: string;
  document: {
    version: number;
    source?: string;
    what?: string;
    stale?: boolean;
    lastRejected?: { version?: number; message: string; at: string };
  } | null;
  services: Record<
    string,
    {
      live: boolean;
      roles?: string[];
      resilience: { timeoutMs: number; retry?: { maxRetries: number } };
      sources: Record<string, { layer: string; version: number }>;
    }
  >;
}

describe('admin /config_dump: the settings in force per service, with where each came from (#10)', () => {
  let server: TestServer;
  let dir: string;
  beforeAll(async () => {
    server = await startServer('a', (_req, res) => res.end('ok'));
    dir = mkdtempSync(path.join(os.tmpdir(), 'mesh-config-dump-'));
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists every named service, called or not, with its layers and versions', async () => {
    const file = path.join(dir, 'mesh.json');
    writeFileSync(
      file,
      JSON.stringify({ services: { billing: { endpoints: server.address, retry: { maxRetries: 1 } } } }),
    );
    const mesh = createMesh({
      serviceName: 'checkout',
      env: { MESH_ADMIN_PORT: '0', MESH_TIMEOUT: '2s', MESH_CONFIG_FILE: file },
      services: { orders: { endpoints: server.address, retry: { maxRetries: 3 } } },
    });
    try {
      const url = await mesh.admin();
      const dump = async (): Promise<Dumped> => (await (await fetch(`${url}/config_dump`)).json()) as Dumped;
      const before = await dump();
      expect(before.service).toBe('checkout');
      expect(before.document).toEqual({
        source: 'file',
        what: `config file ${file}`,
        version: expect.any(Number),
        stale: false,
      });
      expect(Object.keys(before.services)).toEqual(['billing', 'orders']);
      const orders = before.services.orders!;
      expect(orders.live).toBe(false);
      expect(orders.resilience.retry?.maxRetries).toBe(3);
      expect(orders.resilience.timeoutMs).toBe(2000);
      expect(orders.sources['retry.maxRetries']).toEqual({ layer: 'options.services', version: 1 });
      expect(orders.sources.timeout).toEqual({ layer: 'env', version: 1 });
      expect(before.services.billing!.sources['retry.maxRetries']).toEqual({
        layer: 'file.services',
        version: before.document!.version,
      });
      // What the dump says is what mesh.config says.
      expect(orders.sources).toEqual(JSON.parse(JSON.stringify(mesh.config('orders').sources)));

      await (await mesh.request('http://orders/')).body.dump();
      const after = (await dump()).services.orders!;
      expect(after.live).toBe(true);
      expect(after.roles).toContain('retry');
      expect(after.roles?.at(-1)).toBe('pick');
    } finally {
      await mesh.close();
    }
  });

  it('names the version rejected since the one in force, and why, until a good one is applied (probe18 F)', async () => {
    const file = path.join(dir, 'rejected.json');
    const good = { services: { billing: { endpoints: server.address } } };
    writeFileSync(file, JSON.stringify(good));
    const mesh = createMesh({ env: { MESH_ADMIN_PORT: '0', MESH_CONFIG_FILE: file } });
    try {
      const url = await mesh.admin();
      const dump = async (): Promise<Dumped> => (await (await fetch(`${url}/config_dump`)).json()) as Dumped;
      const inForce = (await dump()).document?.version;
      writeFileSync(
        file,
        JSON.stringify({ services: { billing: { endpoints: server.address, retry: { maxRetries: 99 } } } }),
      );
      await expect(mesh.reloadConfig()).rejects.toThrow('services.billing.retry.maxRetries');
      const rejected = (await dump()).document;
      expect(rejected?.version).toBe(inForce);
      expect(rejected?.lastRejected?.message).toContain('services.billing.retry.maxRetries');
      expect(rejected?.lastRejected?.version).toBeGreaterThan(inForce ?? 0);
      writeFileSync(file, JSON.stringify({ ...good, defaults: { timeout: '3s' } }));
      await mesh.reloadConfig();
      const fixed = (await dump()).document;
      expect(fixed?.version).toBeGreaterThan(inForce ?? 0);
      expect(fixed?.lastRejected).toBeUndefined();
    } finally {
      await mesh.close();
    }
  });

  it('marks stale the endpoints of a service first called after the document was rejected, as of those called before (probe31 reload 3)', async () => {
    const file = path.join(dir, 'late.json');
    const good = { services: { early: { endpoints: server.address }, late: { endpoints: server.address } } };
    writeFileSync(file, JSON.stringify(good));
    const mesh = createMesh({ env: { MESH_CONFIG_FILE: file } });
    try {
      await (await mesh.request('http://early/')).body.dump();
      writeFileSync(file, JSON.stringify({ services: { early: { endpoints: server.address, retires: 1 } } }));
      await expect(mesh.reloadConfig()).rejects.toThrow('services.early.retires');
      expect(mesh.endpoints('early')?.stale).toBe(true);
      // The last good document still serves `late`: its set is that document's, stale as well.
      const res = await mesh.request('http://late/');
      await res.body.dump();
      expect(res.statusCode).toBe(200);
      expect(mesh.endpoints('late')?.stale).toBe(true);
      writeFileSync(file, JSON.stringify({ ...good, defaults: { timeout: '3s' } }));
      await mesh.reloadConfig();
      expect(mesh.endpoints('early')?.stale).toBe(false);
      expect(mesh.endpoints('late')?.stale).toBe(false);
    } finally {
      await mesh.close();
    }
  });

  it('reports a read failure that persists once, however often the file is read again (probe31 reload 2)', async () => {
    const file = path.join(dir, 'gone-dir.json');
    writeFileSync(file, JSON.stringify({ services: { billing: { endpoints: server.address } } }));
    const mesh = createMesh({ env: { MESH_CONFIG_FILE: file } });
    const rejected: string[] = [];
    mesh.onEvent((e) => {
      if (e.type === 'config_rejected') rejected.push(e.error.message);
    });
    try {
      // Replaced by a directory: every read fails the same way (EISDIR) until it is a file again.
      rmSync(file);
      mkdirSync(file);
      for (let i = 0; i < 3; i++) await expect(mesh.reloadConfig()).rejects.toThrow('cannot be read');
      expect(rejected).toHaveLength(1);
      expect(rejected[0]).toContain('EISDIR');
      rmSync(file, { recursive: true });
      writeFileSync(file, JSON.stringify({ services: { billing: { endpoints: server.address } } }));
      await mesh.reloadConfig();
      expect(mesh.endpoints('billing')?.stale ?? false).toBe(false);
    } finally {
      await mesh.close();
    }
  });
});

describe('warnings in mesh.config() and /config_dump, whatever layer wrote the setting (probe25 config defect 1)', () => {
  // Settings the service's own entry writes that nothing in force reads: a hashOn under
  // round_robin, retriableStatusCodes without their retryOn condition.
  const entry = {
    endpoints: '127.0.0.1:9',
    loadBalancer: { hashOn: 'source' as const },
    retry: { retriableStatusCodes: [429] },
  };
  for (const [name, options] of [
    ['createMesh({ services })', { services: { a: entry } }],
    ['a config document', { configSource: createConfigSource('kv', { services: { a: entry } }) }],
  ] as const) {
    it(`from ${name}`, async () => {
      const mesh = createMesh({ env: { MESH_ADMIN_PORT: '0' }, ...options });
      try {
        const expected = ['loadBalancer.hashOn', 'retry.retriableStatusCodes'];
        expect(
          mesh
            .config('a')
            .warnings.map((w) => w.field)
            .sort(),
        ).toEqual(expected);
        const dump = (await (await fetch(`${await mesh.admin()}/config_dump`)).json()) as {
          services: Record<string, { warnings: { field: string }[] }>;
        };
        expect(dump.services.a?.warnings.map((w) => w.field).sort()).toEqual(expected);
      } finally {
        await mesh.close();
      }
    });
  }
});
