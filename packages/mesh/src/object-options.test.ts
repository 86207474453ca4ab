/**
 * The object-valued options of `createMesh` are checked as the others are (a probe of the packed
 * types against the runtime): a JavaScript caller has no types, and these were taken as given —
 * `metrics: { registery }` (a typo) and `metrics: 5` silently used the global registry,
 * `clock: 5` and `metrics: { registry: 'x' }` threw a bare `TypeError`, and `resolvers: [42]` or
 * `logger: 'x'` built a mesh whose calls then failed.
 */
import { MeshError, noopLogger } from '@proxyless/core';
import { VirtualClock } from '@proxyless/core/testing';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { MeshOptions } from './api.js';
import { createMesh } from './mesh.js';

function refused(options: Record<string, unknown>): Array<[string, string]> {
  try {
    const mesh = createMesh({ env: {}, passthrough: false, ...(options as MeshOptions) });
    void mesh.destroy();
  } catch (error) {
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    return ((error as MeshError).details.issues ?? []).map((i) => [i.field, i.expected]);
  }
  return [];
}

describe('object-valued options of createMesh', () => {
  it.each<[Record<string, unknown>, string]>([
    [{ metrics: { registery: new Registry() } }, 'options.metrics.registery'],
    [{ metrics: 5 }, 'options.metrics'],
    [{ metrics: { registry: 'x' } }, 'options.metrics.registry'],
    [{ clock: 5 }, 'options.clock'],
    [{ clock: { now: () => 0 } }, 'options.clock'],
    [{ random: () => 0.5 }, 'options.random'],
    [{ logger: 'x' }, 'options.logger'],
    [{ logger: { info: () => undefined } }, 'options.logger'],
    [{ resolvers: [42] }, 'options.resolvers[0]'],
    [{ resolvers: { match: () => undefined } }, 'options.resolvers'],
    [{ passthroughDispatcher: {} }, 'options.passthroughDispatcher'],
  ])('case %#: refused, naming the field', (options, field) => {
    expect(refused(options).map(([f]) => f)).toEqual([field]);
  });

  it('what is missing is named, and every problem is listed at once', () => {
    const issues = refused({ clock: { now: () => 0 }, logger: 'x', metrics: 5 });
    expect(issues).toEqual([
      ['options.clock', 'a Clock (it has no setTimer(), sleep())'],
      ['options.logger', 'a Logger'],
      ['options.metrics', expect.any(String)],
    ]);
  });

  it('objects with what the mesh calls are taken', async () => {
    const registry = new Registry();
    const mesh = createMesh({
      env: {},
      passthrough: false,
      clock: new VirtualClock(),
      random: { next: () => 0.5 },
      logger: noopLogger,
      metrics: { registry },
      services: { api: { endpoints: '127.0.0.1:1' } },
    });
    await mesh.close();
    expect(await registry.getMetricsAsJSON()).not.toEqual([]);
  });
});
