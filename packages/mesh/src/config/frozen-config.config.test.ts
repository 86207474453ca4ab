import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isDeepFrozen } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import { createMesh } from '../index.js';

/**
 * The section objects of an effective config that are not frozen, by path: the config, its
 * balancer and resilience parts, each of their sections (and `loadBalancer.slowStart`), and the
 * sources. (The lists and objects inside a section: {@link isDeepFrozen}, below.)
 */
function unfrozen(config: object): string[] {
  const c = config as Record<string, Record<string, unknown>>;
  const parts: Record<string, unknown> = {
    $: c,
    balancer: c.balancer,
    resilience: c.resilience,
    sources: c.sources,
    'balancer.loadBalancer.slowStart': (c.balancer?.loadBalancer as Record<string, unknown> | undefined)
      ?.slowStart,
  };
  for (const part of ['balancer', 'resilience', 'sources'] as const)
    for (const [k, v] of Object.entries(c[part] ?? {})) parts[`${part}.${k}`] = v;
  return Object.entries(parts)
    .filter(([, v]) => typeof v === 'object' && v !== null && !Object.isFrozen(v))
    .map(([k]) => k);
}

describe('mesh.config(service)', () => {
  it('has frozen sections, and services with the same sections share them', async () => {
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

  it('is frozen all the way down: a list or object a layer set cannot be changed through it, nor through the caller’s options', async () => {
    const retryOn: ('reset' | '5xx')[] = ['reset'];
    const hashOn = { header: 'x-user' };
    const payments = {
      endpoints: '127.0.0.1:1',
      retry: { retryOn, retriableStatusCodes: [503], retriableHeaders: ['X-Retry'] },
      loadBalancer: { policy: 'ring_hash', hashOn, connectBackoff: { initial: '50ms' } },
      outlierDetection: { successRate: { minimumHosts: 3 }, failurePercentage: { threshold: 90 } },
      hedge: { delay: '10ms' },
      timeout: '1s',
      perTryTimeout: '2s',
    } as const;
    const mesh = createMesh({ env: { MESH_RETRY_ON: 'reset,5xx' }, services: { payments } });
    try {
      const c = mesh.config('payments');
      expect(c.resilience.retry?.retryOn).toEqual(['reset']);
      expect(c.balancer.loadBalancer.hashOn).toEqual({ header: 'x-user' });
      expect(c.warnings.length).toBeGreaterThan(0); // perTryTimeout > timeout
      for (const part of [c.balancer, c.resilience, c.warnings, c.sources])
        expect(isDeepFrozen(part)).toBe(true);
      const list = c.resilience.retry?.retryOn as string[];
      expect(() => list.push('5xx')).toThrow(TypeError);
      expect(() => {
        (c.balancer.loadBalancer.hashOn as { header?: string }).header = 'x-tenant';
      }).toThrow(TypeError);
      expect(() => {
        (c.balancer.outlierDetection.successRate as { minimumHosts: number }).minimumHosts = 0;
      }).toThrow(TypeError);
      // The caller's own objects stay theirs (not frozen), and changing them changes nothing.
      expect(Object.isFrozen(retryOn)).toBe(false);
      retryOn.push('5xx');
      (hashOn as { header: string }).header = 'x-tenant';
      const after = mesh.config('payments');
      expect(after.resilience.retry?.retryOn).toEqual(['reset']);
      expect(after.balancer.loadBalancer.hashOn).toEqual({ header: 'x-user' });
    } finally {
      await mesh.close();
    }
  });
});
