/**
 * A caller's own `ConfigSource` (`createMesh({ configSource })`): the contract the file follows,
 * open to any control plane. Each version is validated whole and swapped in at once or rejected
 * with the last good one kept; the layers are named after the source; the mesh stops listening at
 * close and leaves the source open. Real loopback servers.
 */
import {
  type ConfigSource,
  type ConfigVersion,
  createConfigSource,
  createMesh,
  MeshError,
  type MeshEvent,
} from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

let a: TestServer;
let b: TestServer;
beforeAll(async () => {
  [a, b] = await Promise.all([startServer('a'), startServer('b')]);
});
afterAll(async () => {
  await Promise.all([a.close(), b.close()]);
});

function collect(mesh: ReturnType<typeof createMesh>): MeshEvent[] {
  const events: MeshEvent[] = [];
  mesh.onEvent((e) => events.push(e));
  return events;
}

/** The next event of `mesh` that `match` accepts (it may already be on its way). */
function nextEvent(
  mesh: ReturnType<typeof createMesh>,
  match: (e: MeshEvent) => boolean,
): Promise<MeshEvent> {
  return new Promise((resolve) => {
    const sub = mesh.onEvent((e) => {
      if (!match(e)) return;
      sub.dispose();
      resolve(e);
    });
  });
}

describe('createMesh({ configSource })', () => {
  it('serves the first version, applies the next, and keeps the last good one over a bad one', async () => {
    const source = createConfigSource('kv', {
      services: { api: { endpoints: a.address, retry: { maxRetries: 1 } } },
    });
    const mesh = createMesh({ env: {}, configSource: source });
    try {
      const events = collect(mesh);
      expect(await (await mesh.request('http://api/')).body.text()).toBe('a');
      expect(mesh.config('api').resilience.retry?.maxRetries).toBe(1);
      expect(mesh.config('api').sources['retry.maxRetries']).toEqual({ layer: 'kv.services', version: 1 });

      const moved = nextEvent(
        mesh,
        (e) => e.type === 'endpoints_changed' && e.set.endpoints.some((x) => x.id === b.address),
      );
      source.update({ services: { api: { endpoints: b.address, retry: { maxRetries: 3 } } } });
      await moved;
      const applied = events.find((e) => e.type === 'config_applied');
      expect(applied).toMatchObject({ type: 'config_applied', source: 'kv', version: 2 });
      expect(mesh.config('api').sources['retry.maxRetries']).toEqual({ layer: 'kv.services', version: 2 });
      expect(await (await mesh.request('http://api/')).body.text()).toBe('b');

      // A bad version: rejected whole, naming the path and value; version 2 stays in force.
      source.update({ services: { api: { endpoints: a.address, retry: { maxRetries: 99 } } } });
      const rejected = events.find((e) => e.type === 'config_rejected');
      expect(rejected?.type).toBe('config_rejected');
      const error = (rejected as Extract<MeshEvent, { type: 'config_rejected' }>).error;
      expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
      expect(error.message).toContain('config source kv (version 3)');
      expect(error.message).toContain('services.api.retry.maxRetries');
      expect(error.message).toContain('99');
      expect(mesh.config('api').resilience.retry?.maxRetries).toBe(3);
      expect(await (await mesh.request('http://api/')).body.text()).toBe('b');

      // A failed read is reported, and nothing changes.
      source.fail(new MeshError('MESH_CONFIG_INVALID', 'kv store unreachable'));
      expect(events.filter((e) => e.type === 'config_rejected')).toHaveLength(2);
      expect(mesh.config('api').resilience.retry?.maxRetries).toBe(3);
    } finally {
      await mesh.close();
    }
  });

  it('refuses a bad first version, a bad source, and two document sources, naming each', () => {
    const fail = (options: Parameters<typeof createMesh>[0]): MeshError => {
      try {
        createMesh(options);
      } catch (e) {
        expect(MeshError.is(e, 'MESH_CONFIG_INVALID')).toBe(true);
        return e as MeshError;
      }
      throw new Error('createMesh accepted it');
    };
    const bad = fail({
      env: {},
      configSource: createConfigSource('kv', { services: { api: { timeout: 'soon' } } }),
    });
    expect(bad.message).toContain('services.api.timeout');
    const both = fail({
      env: { MESH_CONFIG_FILE: '/nonexistent/mesh.json' },
      configSource: createConfigSource('kv', {}),
    });
    expect(both.message).toContain('options.configSource');
    expect(both.message).toContain('MESH_CONFIG_FILE');
    const named = fail({ env: {}, configSource: createConfigSource('env', {}) });
    expect(named.message).toContain('options.configSource.name');
    const versioned: ConfigSource = {
      ...createConfigSource('kv', {}),
      current: (): ConfigVersion => ({ source: 'kv', version: 0, document: {} }),
    };
    expect(fail({ env: {}, configSource: versioned }).message).toContain('version');
    const throwing: ConfigSource = {
      ...createConfigSource('kv', {}),
      current: () => {
        throw new MeshError('MESH_CONFIG_INVALID', 'kv: not loaded yet');
      },
    };
    expect(fail({ env: {}, configSource: throwing }).message).toContain('kv: not loaded yet');
  });

  it('stops listening at close and leaves the caller the source', async () => {
    const source = createConfigSource('kv', { services: { api: { endpoints: a.address } } });
    let closed = false;
    const own: ConfigSource = {
      ...source,
      close: () => {
        closed = true;
        return source.close();
      },
    };
    let reloads = 0;
    own.reload = () => {
      reloads++;
      return Promise.resolve();
    };
    const mesh = createMesh({ env: {}, configSource: own });
    const events = collect(mesh);
    await mesh.reloadConfig();
    expect(reloads).toBe(1);
    await mesh.close();
    source.update({ services: { api: { endpoints: b.address } } });
    expect(events.filter((e) => e.type === 'config_applied')).toHaveLength(0);
    expect(closed).toBe(false);
  });
});
