import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createMesh } from '../index.js';

/** Every object reachable from `value` that is not frozen, by path. */
function unfrozen(value: unknown, path = '$', out: string[] = []): string[] {
  if (typeof value !== 'object' || value === null) return out;
  if (!Object.isFrozen(value)) out.push(path);
  for (const [k, v] of Object.entries(value)) unfrozen(v, `${path}.${k}`, out);
  return out;
}

describe('mesh.config(service)', () => {
  it('is frozen all through, and services with the same sections share them', async () => {
    const shared = {
      loadBalancer: { policy: 'least_request', slowStart: { window: '30s' } },
      outlierDetection: { consecutive5xx: 3 },
      healthCheck: { path: '/healthz', interval: '5s' },
      retry: { maxRetries: 1 },
    } as const;
    // A config document: its sections equal across services are parsed once (SectionMemo).
    const dir = mkdtempSync(path.join(tmpdir(), 'proxyless-frozen-'));
    const file = path.join(dir, 'mesh.json');
    writeFileSync(
      file,
      JSON.stringify({
        services: {
          a: { endpoints: '127.0.0.1:1', ...shared },
          b: { endpoints: '127.0.0.1:2', ...shared },
        },
      }),
    );
    const mesh = createMesh({ env: {}, configFile: file });
    try {
      const a = mesh.config('a');
      const b = mesh.config('b');
      expect(a.balancer.loadBalancer.slowStart?.window).toBe(30_000);
      expect(a.balancer.healthCheck?.path).toBe('/healthz');
      expect(unfrozen(a)).toEqual([]);
      expect(unfrozen(mesh.config('not-configured'))).toEqual([]);
      // Shared, so that changing one would change the other: a frozen object cannot be changed.
      expect(b.balancer.loadBalancer).toBe(a.balancer.loadBalancer);
      expect(() => {
        (a.balancer.loadBalancer as { policy: string }).policy = 'maglev';
      }).toThrow(TypeError);
      expect(mesh.config('b').balancer.loadBalancer.policy).toBe('least_request');
    } finally {
      await mesh.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
