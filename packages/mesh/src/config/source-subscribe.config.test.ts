import { MeshError } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import { createMesh } from '../mesh.js';
import { type ConfigSource, type ConfigVersion, createConfigSource } from './source.js';

describe('a source that cannot be subscribed to (probe7 config defect 2)', () => {
  // createMesh threw the source's plain Error and left its onVersion subscription in place: the
  // half-built mesh went on applying (and logging) every later version of the caller's source.
  it('createMesh fails with MESH_CONFIG_INVALID and lets go of what it subscribed', () => {
    const inner = createConfigSource('kv', { services: { a: { endpoints: '127.0.0.1:1', timeout: '1s' } } });
    let live = 0;
    const seen: number[] = [];
    const source: ConfigSource = {
      name: 'kv',
      current: () => inner.current(),
      onVersion: (listener: (v: ConfigVersion) => void) => {
        live++;
        const handle = inner.onVersion((v) => {
          seen.push(v.version);
          listener(v);
        });
        return {
          dispose: () => {
            live--;
            handle.dispose();
          },
        };
      },
      onError: () => {
        throw new Error('boom-onError');
      },
      reload: () => inner.reload(),
      close: () => inner.close(),
    };
    let error: unknown;
    try {
      createMesh({ env: {}, configSource: source, passthrough: false });
    } catch (e) {
      error = e;
    }
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    expect((error as MeshError).message).toContain('boom-onError');
    expect((error as MeshError).details.field).toBe('options.configSource');
    expect(live).toBe(0);
    inner.update({ services: { a: { endpoints: '127.0.0.1:1', timeout: '2s' } } });
    expect(seen).toEqual([]);
  });
});
