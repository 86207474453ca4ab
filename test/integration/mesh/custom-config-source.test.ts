/**
 * A caller's own `ConfigSource` (`createMesh({ configSource })`): the contract the file follows,
 * open to any control plane. Each version is validated whole and swapped in at once or rejected
 * with the last good one kept; the layers are named after the source; the mesh stops listening at
 * close and leaves the source open. Real loopback servers.
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

/** A source written by hand: its versions and failures pushed by the test. */
function handSource(document: unknown, version: number) {
  const hand: { push?: (v: ConfigVersion) => void; fail?: (e: MeshError) => void } = {};
  const source: ConfigSource = {
    name: 'kv',
    current: () => ({ source: 'kv', version, document }),
    onVersion: (listener) => {
      hand.push = listener;
      return { dispose: () => undefined };
    },
    onError: (listener) => {
      hand.fail = listener;
      return { dispose: () => undefined };
    },
    reload: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  return { source, hand };
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
    // A getter of the source that throws is a problem of the option, never an exception out of
    // createMesh, with or without a config file named too (probe31 sources 10).
    const boom = (): ConfigSource =>
      Object.defineProperty({ ...createConfigSource('kv', {}) }, 'name', {
        get() {
          throw new Error('name boom');
        },
      }) as ConfigSource;
    const unnamed = fail({ env: {}, configSource: boom() });
    expect(unnamed.message).toContain('options.configSource.name');
    expect(unnamed.message).toContain('name boom');
    expect(
      fail({ env: { MESH_CONFIG_FILE: '/nonexistent/mesh.json' }, configSource: boom() }).message,
    ).toContain('options.configSource');
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

  it('applies a version pushed from a listener after the one before it, warnings included', async () => {
    const warned = { services: { api: { endpoints: a.address, timeout: '1s', perTryTimeout: '5s' } } };
    const fixed = { services: { api: { endpoints: a.address, timeout: '1s', perTryTimeout: '500ms' } } };
    const source = createConfigSource('kv', { services: { api: { endpoints: a.address } } });
    const mesh = createMesh({ env: {}, configSource: source });
    try {
      const seen: string[] = [];
      mesh.onEvent((e) => {
        if (e.type === 'config_applied') seen.push(`applied ${e.version}`);
        if (e.type === 'config_warning') seen.push(`warning ${e.issue.field}`);
      });
      let pushed = false;
      mesh.onEvent((e) => {
        if (e.type === 'config_applied' && e.version === 2 && !pushed) {
          pushed = true;
          source.update(fixed);
        }
      });
      source.update(warned);
      expect(seen).toEqual(['applied 2', 'warning perTryTimeout', 'applied 3']);
      expect(mesh.config('api').resilience.perTryTimeoutMs).toBe(500);
      // Broken again: warned again, as the configuration in force warns again.
      source.update(warned);
      expect(seen.slice(3)).toEqual(['applied 4', 'warning perTryTimeout']);
    } finally {
      await mesh.close();
    }
  });

  it('refuses a version that is not newer than the one in force', async () => {
    let push: ((v: ConfigVersion) => void) | undefined;
    const source: ConfigSource = {
      name: 'kv',
      current: () => ({
        source: 'kv',
        version: 5,
        document: { services: { api: { endpoints: a.address } } },
      }),
      onVersion: (listener) => {
        push = listener;
        return { dispose: () => undefined };
      },
      onError: () => ({ dispose: () => undefined }),
      reload: () => Promise.resolve(),
      close: () => Promise.resolve(),
    };
    const mesh = createMesh({ env: {}, configSource: source });
    try {
      const events = collect(mesh);
      for (const version of [5, 3]) {
        push!({ source: 'kv', version, document: { services: { api: { endpoints: b.address } } } });
      }
      const rejected = events.filter((e) => e.type === 'config_rejected');
      expect(rejected).toHaveLength(2);
      for (const r of rejected) expect((r as { error: Error }).error.message).toContain('newer than 5');
      expect(events.filter((e) => e.type === 'config_applied')).toHaveLength(0);
      expect(await (await mesh.request('http://api/')).body.text()).toBe('a');
      push!({
        source: 'kv',
        version: 6,
        document: { services: { api: { endpoints: a.address, retry: false } } },
      });
      expect(events.filter((e) => e.type === 'config_applied')).toHaveLength(1);
      expect(mesh.config('api').sources.retry).toEqual({ layer: 'kv.services', version: 6 });
    } finally {
      await mesh.close();
    }
  });

  it('lists an unreadable first version with every other problem', () => {
    const problems = (options: Parameters<typeof createMesh>[0]): string => {
      try {
        createMesh(options);
      } catch (e) {
        expect(MeshError.is(e, 'MESH_CONFIG_INVALID')).toBe(true);
        return (e as Error).message;
      }
      throw new Error('createMesh accepted it');
    };
    const dir = mkdtempSync(join(tmpdir(), 'mesh-unreadable-'));
    try {
      const file = join(dir, 'mesh.json');
      writeFileSync(file, '{"services": {');
      const both = problems({ env: { MESH_CONFIG_FILE: file, MESH_RETRIES: 'many' } });
      expect(both).toContain('MESH_RETRIES');
      expect(both).toContain('not valid JSON');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const throwing: ConfigSource = {
      ...createConfigSource('kv', {}),
      current: () => {
        throw new TypeError('socket hang up');
      },
    };
    const thrown = problems({ env: { MESH_RETRIES: 'many' }, configSource: throwing });
    expect(thrown).toContain('options.configSource.current()');
    expect(thrown).toContain('socket hang up');
    expect(thrown).toContain('MESH_RETRIES');
    for (const name of ['file', 'consul', 'etcd'])
      expect(problems({ env: {}, configSource: createConfigSource(name, {}) })).toContain(
        'options.configSource.name',
      );
  });

  it('closes whatever handles a source gave back, and reports a failing reload as a rejection', async () => {
    const source = createConfigSource('kv', { services: { api: { endpoints: a.address } } });
    const odd: ConfigSource = {
      ...source,
      onVersion: (listener) => {
        source.onVersion(listener);
        return undefined as never;
      },
      onError: (listener) => {
        source.onError(listener);
        return {
          dispose: () => {
            throw new Error('watch already cancelled');
          },
        };
      },
      reload: () => {
        throw new Error('not connected');
      },
    };
    const mesh = createMesh({ env: {}, configSource: odd });
    const events = collect(mesh);
    await expect(mesh.reloadConfig()).rejects.toThrow('not connected');
    // The failing reload is reported as the source's errors are; nothing more once closed.
    expect(events.filter((e) => e.type === 'config_rejected')).toHaveLength(1);
    await expect(mesh.close()).resolves.toBeUndefined();
    source.update({ services: { api: { endpoints: b.address } } });
    source.fail(new MeshError('MESH_CONFIG_INVALID', 'late'));
    expect(events.filter((e) => e.type === 'config_applied' || e.type === 'config_rejected')).toHaveLength(1);
  });

  it('ignores a redelivery of the version in force, and marks nothing stale for one out of order', async () => {
    const doc = { services: { api: { endpoints: a.address } } };
    const { source, hand } = handSource(doc, 5);
    const push = (v: ConfigVersion): void => hand.push?.(v);
    const fail = (e: MeshError): void => hand.fail?.(e);
    const mesh = createMesh({ env: {}, configSource: source });
    try {
      await (await mesh.request('http://api/')).body.dump();
      const events = collect(mesh);
      push({ source: 'kv', version: 5, document: structuredClone(doc) });
      expect(events).toEqual([]);
      push({ source: 'kv', version: 4, document: doc });
      expect(events.map((e) => e.type)).toEqual(['config_rejected']);
      // A failed read with a plain Error: a MeshError with it as cause; the sets are now stale.
      const cause = new Error('kv store unreachable');
      const stale = nextEvent(mesh, (e) => e.type === 'resolver_error');
      fail(cause as MeshError);
      await stale;
      const rejected = events.filter((e) => e.type === 'config_rejected').at(-1) as { error: MeshError };
      expect(MeshError.is(rejected.error, 'MESH_CONFIG_INVALID')).toBe(true);
      expect(rejected.error.cause).toBe(cause);
      expect(rejected.error.message).toContain('config source kv: kv store unreachable');
    } finally {
      await mesh.close();
    }
  });

  it('one failed read of a source serving several services is a resolver_error for each of them, once', async () => {
    const doc = { services: { api: { endpoints: a.address }, web: { endpoints: a.address } } };
    const { source, hand } = handSource(doc, 5);
    const mesh = createMesh({ env: {}, configSource: source });
    try {
      await (await mesh.request('http://api/')).body.dump();
      await (await mesh.request('http://web/')).body.dump();
      const errors: string[] = [];
      mesh.onEvent((e) => {
        if (e.type === 'resolver_error') errors.push(e.service);
      });
      const both = new Promise<void>((resolve) => {
        mesh.onEvent(() => {
          if (errors.length >= 2) resolve();
        });
      });
      hand.fail?.(new MeshError('MESH_CONFIG_INVALID', 'kv store unreachable'));
      await both;
      await (await mesh.request('http://api/')).body.dump();
      expect(errors.sort()).toEqual(['api', 'web']);
      expect([mesh.endpoints('api')?.stale, mesh.endpoints('web')?.stale]).toEqual([true, true]);
    } finally {
      await mesh.close();
    }
  });

  it('a failed read, then the version in force delivered again: the sets are fresh again (probe7 config defect 3)', async () => {
    // Versions only increase, so a source whose document did not change re-sends the one in force
    // when it reconnects: that must clear the stale mark its failure set (it stayed until a new
    // version number came).
    const doc = { services: { api: { endpoints: a.address } } };
    const { source, hand } = handSource(doc, 5);
    const mesh = createMesh({ env: {}, configSource: source });
    try {
      await (await mesh.request('http://api/')).body.dump();
      const stale = nextEvent(mesh, (e) => e.type === 'resolver_error');
      hand.fail?.(new MeshError('MESH_CONFIG_INVALID', 'kv store unreachable'));
      await stale;
      expect(mesh.endpoints('api')?.stale).toBe(true);
      hand.push?.({ source: 'kv', version: 5, document: structuredClone(doc) });
      await (await mesh.request('http://api/')).body.dump();
      expect(mesh.endpoints('api')?.stale).toBe(false);
    } finally {
      await mesh.close();
    }
  });

  it('a reload() that fails is handled as a reported error: config_rejected, stale sets, the last good kept (probe18 G)', async () => {
    const doc = { services: { api: { endpoints: a.address, retry: { maxRetries: 1 } } } };
    const { source } = handSource(doc, 3);
    const cause = new Error('kv unreachable');
    const failing: ConfigSource = { ...source, reload: () => Promise.reject(cause) };
    const mesh = createMesh({ env: {}, configSource: failing });
    try {
      const events = collect(mesh);
      await (await mesh.request('http://api/')).body.dump();
      const failure = await mesh.reloadConfig().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(MeshError.is(failure, 'MESH_CONFIG_INVALID')).toBe(true);
      const rejected = events.find((e) => e.type === 'config_rejected') as { error: MeshError } | undefined;
      expect(rejected).toBeDefined();
      expect(MeshError.is(rejected?.error, 'MESH_CONFIG_INVALID')).toBe(true);
      expect(rejected?.error.cause).toBe(cause);
      expect(rejected?.error.message).toContain('config source kv');
      expect(mesh.endpoints('api')?.stale).toBe(true);
      expect(mesh.config('api').resilience.retry?.maxRetries).toBe(1);
      expect(await (await mesh.request('http://api/')).body.text()).toBe('a');
      // A reload() that throws at once is handled the same way.
      const throwing: ConfigSource = {
        ...source,
        reload: () => {
          throw cause;
        },
      };
      const other = createMesh({ env: {}, configSource: throwing });
      try {
        const seen = collect(other);
        await expect(other.reloadConfig()).rejects.toThrow('config source kv: reload failed: kv unreachable');
        expect(seen.map((e) => e.type)).toContain('config_rejected');
      } finally {
        await other.close();
      }
    } finally {
      await mesh.close();
    }
  });

  it('a bad first version names its source in the start-up error (probe18 E)', () => {
    const bad = { services: { api: { endpoints: a.address, retry: { maxRetries: 60 } } } };
    expect(() => createMesh({ env: {}, configSource: createConfigSource('kv', bad) })).toThrow(
      /document fields: config source kv, version 1\): services\.api\.retry\.maxRetries/,
    );
    const dir = mkdtempSync(join(tmpdir(), 'proxyless-named-'));
    try {
      const file = join(dir, 'mesh.json');
      writeFileSync(file, JSON.stringify(bad));
      expect(() => createMesh({ env: { MESH_CONFIG_FILE: file } })).toThrow(
        `document fields: config file ${file}, version 1`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the file: a reload that meets a deleted or unparsable file rejects, with one config_rejected (probe20 defect 2)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'proxyless-reload-'));
    try {
      const file = join(dir, 'mesh.json');
      writeFileSync(file, JSON.stringify({ services: { api: { endpoints: a.address } } }));
      const mesh = createMesh({ env: { MESH_CONFIG_FILE: file } });
      try {
        const events = collect(mesh);
        writeFileSync(file, '{"services": {');
        await expect(mesh.reloadConfig()).rejects.toThrow('not valid JSON');
        rmSync(file);
        await expect(mesh.reloadConfig()).rejects.toThrow('was deleted');
        expect(events.filter((e) => e.type === 'config_rejected').length).toBeGreaterThanOrEqual(2);
        writeFileSync(file, JSON.stringify({ services: { api: { endpoints: b.address } } }));
        await expect(mesh.reloadConfig()).resolves.toBeUndefined();
        expect(await (await mesh.request('http://api/')).body.text()).toBe('b');
      } finally {
        await mesh.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a source that reports a failed read and also rejects its reload(): one config_rejected (probe20 defect 3)', async () => {
    const { source, hand } = handSource({ services: { api: { endpoints: a.address } } }, 1);
    const failure = new MeshError('MESH_CONFIG_INVALID', 'kv read failed');
    const reporting: ConfigSource = {
      ...source,
      reload: () => {
        hand.fail?.(failure);
        return Promise.reject(failure);
      },
    };
    const mesh = createMesh({ env: {}, configSource: reporting });
    try {
      const events = collect(mesh);
      await expect(mesh.reloadConfig()).rejects.toBe(failure);
      expect(events.filter((e) => e.type === 'config_rejected')).toHaveLength(1);
    } finally {
      await mesh.close();
    }
  });
});
