import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMeshMetrics } from '@proxyless/telemetry';
import { Registry } from 'prom-client';
import { createMesh, type MeshEvent } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

/** `mesh_config_version` and `mesh_config_rejected_total` count configuration versions only. */

async function series(registry: Registry, name: string): Promise<Array<[unknown, number]>> {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  return (await metric.get()).values.map((v) => [v.labels.source, v.value]);
}

describe('config metrics of a mesh', () => {
  let busy: TestServer;
  let dir: string;
  beforeAll(async () => {
    busy = await startServer('busy');
    dir = mkdtempSync(path.join(os.tmpdir(), 'mesh-config-metrics-'));
  });
  afterAll(async () => {
    await busy.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an admin server that cannot listen (port in use) is no rejected configuration version', async () => {
    const registry = new Registry();
    const events: MeshEvent[] = [];
    const mesh = createMesh({
      env: { MESH_ADMIN_PORT: String(busy.port) },
      metrics: { registry },
    });
    mesh.onEvent((e) => events.push(e));
    try {
      // admin() settles once the failure has been reported.
      expect(await mesh.admin()).toBeUndefined();
      const types = events.map((e) => e.type);
      expect(types).toContain('admin_failed');
      expect(types).not.toContain('config_rejected');
      expect(await series(registry, 'mesh_config_rejected_total')).toEqual([]);
    } finally {
      await mesh.close();
    }
  });

  it('the port in use names the setting that gave it: MESH_ADMIN_PORT, or telemetry.admin.port in code', async () => {
    const failure = async (options: Parameters<typeof createMesh>[0]) => {
      const mesh = createMesh({ ...options, metrics: { registry: new Registry() } });
      const events: MeshEvent[] = [];
      mesh.onEvent((e) => events.push(e));
      try {
        expect(await mesh.admin()).toBeUndefined();
        const failed = events.find((e) => e.type === 'admin_failed') as
          | Extract<MeshEvent, { type: 'admin_failed' }>
          | undefined;
        return [
          failed?.error.details.field,
          failed?.error.message.includes(String(failed?.error.details.field)),
        ];
      } finally {
        await mesh.close();
      }
    };
    expect(await failure({ env: { MESH_ADMIN_PORT: String(busy.port) } })).toEqual(['MESH_ADMIN_PORT', true]);
    // It said MESH_ADMIN_PORT, a variable nobody set.
    expect(await failure({ env: {}, telemetry: { admin: { port: busy.port } } })).toEqual([
      'telemetry.admin.port',
      true,
    ]);
  });

  it('a rejected file version counts; the version gauge is labelled with its source', async () => {
    const file = path.join(dir, 'mesh.json');
    writeFileSync(file, JSON.stringify({ services: { api: { retry: { maxRetries: 1 } } } }));
    const registry = new Registry();
    const mesh = createMesh({ env: {}, configFile: file, metrics: { registry } });
    try {
      expect(await series(registry, 'mesh_config_version')).toEqual([['file', 1]]);
      writeFileSync(file, JSON.stringify({ services: { api: { retry: { maxRetries: 'two' } } } }));
      await expect(mesh.reloadConfig()).rejects.toThrow('services.api.retry.maxRetries');
      expect(await series(registry, 'mesh_config_rejected_total')).toEqual([['file', 1]]);
      writeFileSync(file, JSON.stringify({ services: { api: { retry: { maxRetries: 2 } } } }));
      await mesh.reloadConfig();
      expect(await series(registry, 'mesh_config_version')).toEqual([['file', 3]]);
    } finally {
      await mesh.close();
    }
  });
});

describe('mesh_config_version per source', () => {
  it('keeps the file version, the etcd revision and the Consul index apart', async () => {
    const registry = new Registry();
    const m = createMeshMetrics({ registry });
    m.onMeshEvent({ type: 'config_applied', version: 2 });
    m.onMeshEvent({ type: 'config_applied', source: 'etcd', version: 48_213 });
    m.onMeshEvent({ type: 'config_applied', source: 'consul', version: 9_120_044 });
    m.onMeshEvent({ type: 'config_applied', source: 'file', version: 3 });
    expect(Object.fromEntries(await series(registry, 'mesh_config_version'))).toEqual({
      file: 3,
      etcd: 48_213,
      consul: 9_120_044,
    });
    m.onMeshEvent({
      type: 'config_rejected',
      source: 'etcd',
      version: 48_214,
      error: { code: 'MESH_CONFIG_INVALID', details: { field: 'configEntries[0].kind' } },
    });
    m.onMeshEvent({
      type: 'admin_failed',
      error: { code: 'MESH_CONFIG_INVALID', details: { field: 'MESH_ADMIN_HOST', value: '192.0.2.1' } },
    });
    expect(await series(registry, 'mesh_config_rejected_total')).toEqual([['etcd', 1]]);
  });

  it('one series per Consul discovery chain; rejections and failed reads by source (probe28)', async () => {
    const registry = new Registry();
    const m = createMeshMetrics({ registry });
    const labelled = async (name: string) =>
      (await registry.getSingleMetric(name)?.get())?.values.map((v) => [v.labels, v.value]);
    m.onMeshEvent({ type: 'config_applied', source: 'consul', version: 120, service: 'web' });
    m.onMeshEvent({ type: 'config_applied', source: 'consul', version: 95, service: 'api' });
    m.onMeshEvent({ type: 'config_applied', source: 'file', version: 2 });
    // Each chain keeps its own index: the gauge no longer flips between them.
    expect(await labelled('mesh_config_version')).toEqual([
      [{ source: 'consul', service: 'web' }, 120],
      [{ source: 'consul', service: 'api' }, 95],
      [{ source: 'file' }, 2],
    ]);
    const error = { code: 'MESH_REGISTRY_UNAVAILABLE', message: 'connect ECONNREFUSED' };
    m.onMeshEvent({ type: 'config_source_error', source: 'etcd', error });
    m.onMeshEvent({ type: 'config_source_error', source: 'consul', service: 'web', error });
    m.onMeshEvent({ type: 'config_source_error', source: 'consul', service: 'api', error });
    m.onMeshEvent({ type: 'config_rejected', source: 'file', version: 3, error });
    m.onMeshEvent({ type: 'config_rejected', source: 'consul', service: 'web', version: 121, error });
    expect(await labelled('mesh_config_source_errors_total')).toEqual([
      [{ source: 'etcd' }, 1],
      [{ source: 'consul' }, 2],
    ]);
    expect(await labelled('mesh_config_rejected_total')).toEqual([
      [{ source: 'file' }, 1],
      [{ source: 'consul' }, 1],
    ]);
  });
});
