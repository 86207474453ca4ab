import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMesh, type MeshEvent } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

let servers: TestServer[] = [];
let dir: string;

beforeAll(async () => {
  servers = await Promise.all(['a', 'b'].map((n) => startServer(n)));
  dir = mkdtempSync(path.join(os.tmpdir(), 'proxyless-config-source-'));
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});

describe('the config file as a config source, on a live destination (#10)', () => {
  it('rebuilds only what changed: an unchanged policy rebuilds nothing, new endpoints still apply', async () => {
    const file = path.join(dir, 'mesh.json');
    const [a, b] = servers as [TestServer, TestServer];
    const write = (endpoints: string, retry: unknown): void =>
      writeFileSync(file, JSON.stringify({ services: { api: { endpoints, retry } } }));
    write(a.address, { maxRetries: 1 });
    const mesh = createMesh({ env: {}, configFile: file });
    try {
      const events: MeshEvent[] = [];
      mesh.onEvent((e) => events.push(e));
      // The file is watched too: wait for the event, whichever read delivers it.
      const next = <T extends MeshEvent['type']>(type: T): Promise<Extract<MeshEvent, { type: T }>> =>
        new Promise((resolve) => {
          const sub = mesh.onEvent((e) => {
            if (e.type === type) {
              sub.dispose();
              resolve(e as Extract<MeshEvent, { type: T }>);
            }
          });
        });
      expect(await (await mesh.request('http://api/')).body.text()).toBe('a');

      // Same policy, other endpoints: no role rebuilt, the endpoints follow.
      let applied = next('config_applied');
      write(b.address, { maxRetries: 1 });
      await mesh.reloadConfig();
      expect([...(await applied).changed.keys()]).toEqual([]);
      expect(await (await mesh.request('http://api/')).body.text()).toBe('b');

      // One section changed: only its role.
      applied = next('config_applied');
      write(b.address, { maxRetries: 2 });
      await mesh.reloadConfig();
      const second = await applied;
      expect(second.changed.get('api')).toEqual(['retry']);
      expect(mesh.config('api').sources['retry.maxRetries']).toEqual({
        layer: 'file.services',
        version: second.version,
      });

      // An invalid version is rejected whole: neither its endpoints nor its policy apply.
      const rejected = next('config_rejected');
      writeFileSync(
        file,
        JSON.stringify({ services: { api: { endpoints: a.address, retry: { maxRetries: -1 } } } }),
      );
      // The reload says so too: it rejects with the error config_rejected carries.
      await expect(mesh.reloadConfig()).rejects.toThrow('services.api.retry.maxRetries');
      const bad = await rejected;
      expect(bad.error.message).toContain('services.api.retry.maxRetries');
      // The event names the rejected version (a number above the one in force), as etcd's and Consul's do.
      expect(bad).toMatchObject({ source: 'file', version: expect.any(Number) });
      expect(bad.version).toBeGreaterThan(second.version);
      expect(mesh.config('api').resilience.retry?.maxRetries).toBe(2);
      expect(await (await mesh.request('http://api/')).body.text()).toBe('b');
    } finally {
      await mesh.close();
    }
  });

  it('reloadConfig() rejects while what is on disk is rejected, even when the watch read it first', async () => {
    const file = path.join(dir, 'watched-first.json');
    const [a] = servers as [TestServer];
    writeFileSync(
      file,
      JSON.stringify({ services: { api: { endpoints: a.address, retry: { maxRetries: 2 } } } }),
    );
    const mesh = createMesh({ env: {}, configFile: file });
    const rejectedByWatch = (): Promise<void> =>
      new Promise((resolve) => {
        const sub = mesh.onEvent((e) => {
          if (e.type === 'config_rejected') {
            sub.dispose();
            resolve();
          }
        });
      });
    try {
      // A version that fails validation, met by the watch before the deploy step reloads.
      let seen = rejectedByWatch();
      writeFileSync(
        file,
        JSON.stringify({ services: { api: { endpoints: a.address, retry: { maxRetries: 11 } } } }),
      );
      await seen;
      await expect(mesh.reloadConfig()).rejects.toThrow('services.api.retry.maxRetries');
      // Content that does not parse, met by the watch first.
      seen = rejectedByWatch();
      writeFileSync(file, '{"services": {');
      await seen;
      await expect(mesh.reloadConfig()).rejects.toMatchObject({ code: 'MESH_CONFIG_INVALID' });
      // The last good configuration stays in force throughout.
      expect(mesh.config('api').resilience.retry?.maxRetries).toBe(2);
      // A good version again: the reload resolves.
      writeFileSync(
        file,
        JSON.stringify({ services: { api: { endpoints: a.address, retry: { maxRetries: 3 } } } }),
      );
      await mesh.reloadConfig();
      expect(mesh.config('api').resilience.retry?.maxRetries).toBe(3);
      await mesh.reloadConfig();
      // The file deleted, met by the watch first: the reload says so too.
      seen = rejectedByWatch();
      rmSync(file);
      await seen;
      await expect(mesh.reloadConfig()).rejects.toMatchObject({ code: 'MESH_CONFIG_INVALID' });
      expect(mesh.config('api').resilience.retry?.maxRetries).toBe(3);
    } finally {
      await mesh.close();
    }
  });

  it('reads a file saved with a UTF-8 byte-order mark (as some editors write it)', async () => {
    const file = path.join(dir, 'bom.json');
    const [a] = servers as [TestServer];
    writeFileSync(
      file,
      `\uFEFF${JSON.stringify({ services: { api: { endpoints: a.address, retry: { maxRetries: 3 } } } })}`,
    );
    const mesh = createMesh({ env: {}, configFile: file });
    try {
      expect(mesh.config('api').resilience.retry).toMatchObject({ maxRetries: 3 });
      const res = await mesh.request('http://api/');
      expect(res.statusCode).toBe(200);
      await res.body.dump();
    } finally {
      await mesh.close();
    }
  });
});

describe('config_warning is reported once per setting in force (#10)', () => {
  it('a reload that keeps a warned setting does not warn again; one that changes it does', async () => {
    const file = path.join(dir, 'warn.json');
    const [a] = servers as [TestServer];
    const write = (perTryTimeout: string, maxRetries: number): void =>
      writeFileSync(
        file,
        JSON.stringify({
          services: { api: { endpoints: a.address, timeout: '1s', perTryTimeout, retry: { maxRetries } } },
        }),
      );
    write('2s', 1);
    const mesh = createMesh({ env: {}, configFile: file });
    const warnings: unknown[] = [];
    const sub = mesh.onEvent((e) => {
      if (e.type === 'config_warning') warnings.push(e.issue.value);
    });
    try {
      // The start's warning arrives in a microtask, for listeners added right after createMesh.
      await Promise.resolve();
      expect(warnings).toEqual([2000]);
      const applied = (): Promise<MeshEvent> =>
        new Promise((resolve) => {
          const s = mesh.onEvent((e) => {
            if (e.type === 'config_applied') {
              s.dispose();
              resolve(e);
            }
          });
        });
      // Another section changes; perTryTimeout > timeout stays as it was: no second warning.
      let next = applied();
      write('2s', 2);
      await mesh.reloadConfig();
      await next;
      expect(warnings).toEqual([2000]);
      // The warned setting changes (still above the timeout): warned again, with the new value.
      next = applied();
      write('3s', 2);
      await mesh.reloadConfig();
      await next;
      expect(warnings).toEqual([2000, 3000]);
    } finally {
      sub.dispose();
      await mesh.close();
    }
  });
});
