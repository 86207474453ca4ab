import { describe, expect, it } from 'vitest';
import { createMesh } from '../index.js';

/** The settings in force and their sources, for one service of a mesh built from these options. */
async function configOf(options: Parameters<typeof createMesh>[0]) {
  const mesh = createMesh(options);
  try {
    return mesh.config('api');
  } finally {
    await mesh.close();
  }
}

describe('provenance of a section switch', async () => {
  it('blames the object that turned a section back on, not the env that turned it off (probe2 provenance.ts)', async () => {
    const c = await configOf({
      env: { MESH_OUTLIER_ENABLED: 'false', MESH_CIRCUIT_BREAKER: 'false' },
      services: { api: { outlierDetection: { interval: '5s' }, circuitBreaker: { maxRequests: 5 } } },
    });
    expect(c.balancer.outlierDetection.enabled).toBe(true);
    expect(c.resilience.circuitBreaker).toBeDefined();
    const own = { layer: 'options.services', version: 1 };
    expect(c.sources).toMatchObject({
      'outlierDetection.enabled': own,
      'outlierDetection.interval': own,
      circuitBreaker: own,
      'circuitBreaker.maxRequests': own,
    });
  });

  it('blames the service for retry on over `defaults: { retry: false }`', async () => {
    const c = await configOf({
      env: {},
      defaults: { retry: false },
      services: { api: { retry: { maxRetries: 3 } } },
    });
    expect(c.resilience.retry?.maxRetries).toBe(3);
    expect(c.sources.retry).toEqual({ layer: 'options.services', version: 1 });
  });

  it('keeps the blame where the switch was left off or only configured', async () => {
    const off = await configOf({
      env: { MESH_OUTLIER_ENABLED: 'false' },
      services: { api: { outlierDetection: { enabled: false, interval: '5s' } } },
    });
    expect(off.balancer.outlierDetection.enabled).toBe(false);
    expect(off.sources['outlierDetection.enabled']).toEqual({ layer: 'options.services', version: 1 });
    // `true` below, an object above: the section was on already; the switch stays with `true`.
    const on = await configOf({
      env: {},
      defaults: { retry: true },
      services: { api: { retry: { maxRetries: 3 } } },
    });
    expect(on.sources.retry).toEqual({ layer: 'options.defaults', version: 1 });
  });
});
