import { describe, expect, it } from 'vitest';
import { createMesh } from '../index.js';
import { createConfigSource } from './source.js';

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

  it('blames `outlierDetection: true` for the switch it turned back on over MESH_OUTLIER_ENABLED=false', async () => {
    const c = await configOf({
      env: { MESH_OUTLIER_ENABLED: 'false' },
      services: { api: { outlierDetection: true } },
    });
    expect(c.balancer.outlierDetection.enabled).toBe(true);
    expect(c.sources['outlierDetection.enabled']).toEqual({ layer: 'options.services', version: 1 });
  });

  it.each([
    ['an object', { interval: '3s' }],
    ['`true`', true],
    ['{ enabled: true }', { enabled: true }],
  ])(
    'blames %s over MESH_OUTLIER_ENABLED=false for the section switch and its enabled field',
    async (_what, od) => {
      const c = await configOf({
        env: { MESH_OUTLIER_ENABLED: 'false' },
        services: { api: { outlierDetection: od } },
      });
      const own = { layer: 'options.services', version: 1 };
      expect(c.balancer.outlierDetection.enabled).toBe(true);
      expect([c.sources.outlierDetection, c.sources['outlierDetection.enabled']]).toEqual([own, own]);
    },
  );

  it('names MESH_OUTLIER_ENABLED=false as the source of the switch it turns off', async () => {
    const c = await configOf({ env: { MESH_OUTLIER_ENABLED: 'false' }, services: { api: {} } });
    expect(c.balancer.outlierDetection.enabled).toBe(false);
    expect([c.sources.outlierDetection?.layer, c.sources['outlierDetection.enabled']?.layer]).toEqual([
      'env',
      'env',
    ]);
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

describe('a section the built-in defaults leave off, turned on by an object', () => {
  const own = { layer: 'options.services', version: 1 };
  const defaults = { layer: 'options.defaults', version: 1 };

  it.each([
    ['hedge', { hedge: {} }, (c: Awaited<ReturnType<typeof configOf>>) => c.resilience.hedge?.delayMs],
    [
      'hedge',
      { hedge: { maxHedges: 2 } },
      (c: Awaited<ReturnType<typeof configOf>>) => c.resilience.hedge?.maxHedges,
    ],
    [
      'concurrencyLimit',
      { concurrencyLimit: {} },
      (c: Awaited<ReturnType<typeof configOf>>) => c.resilience.concurrencyLimit?.max,
    ],
    [
      'rateLimit',
      { rateLimit: { rps: 5 } },
      (c: Awaited<ReturnType<typeof configOf>>) => c.resilience.rateLimit?.rps,
    ],
    [
      'faultInjection',
      { faultInjection: { abort: {} } },
      (c: Awaited<ReturnType<typeof configOf>>) => c.resilience.faultInjection?.abort?.status,
    ],
    [
      'healthCheck',
      { healthCheck: { path: '/h' } },
      (c: Awaited<ReturnType<typeof configOf>>) => c.balancer.healthCheck?.path,
    ],
    [
      'loadBalancer.slowStart',
      { loadBalancer: { slowStart: {} } },
      (c: Awaited<ReturnType<typeof configOf>>) => c.balancer.loadBalancer.slowStart?.window,
    ],
  ] as const)('names the layer of %s for its switch (%j)', async (section, policy, read) => {
    const c = await configOf({ env: {}, services: { api: policy } });
    expect(read(c)).toBeDefined();
    expect(c.sources[section]).toEqual(own);
    // Turned on below and configured above: the switch stays with the layer that turned it on.
    const both = await configOf({ env: {}, defaults: policy, services: { api: policy } });
    expect(both.sources[section]).toEqual(defaults);
  });

  it('records no switch for a section no layer turns on', async () => {
    const c = await configOf({ env: {}, services: { api: { retry: { maxRetries: 1 } } } });
    for (const section of [
      'hedge',
      'concurrencyLimit',
      'rateLimit',
      'faultInjection',
      'healthCheck',
      'loadBalancer.slowStart',
    ])
      expect(c.sources[section]).toBeUndefined();
  });
});

describe('outlierDetection: false in a middle layer, as every section (defect 2)', () => {
  const options = { layer: 'options.services', version: 1 };
  const kv = { layer: 'kv.services', version: 1 };
  const outlier = (sources: Readonly<Record<string, unknown>>) =>
    Object.fromEntries(Object.entries(sources).filter(([k]) => k.startsWith('outlierDetection')));

  it('an object above turns it back on from the built-in defaults and is the source of the switch', async () => {
    const c = await configOf({
      env: { MESH_OUTLIER_CONSECUTIVE_5XX: '9' },
      services: { api: { endpoints: '127.0.0.1:1', outlierDetection: false } },
      configSource: createConfigSource('kv', { services: { api: { outlierDetection: { interval: '5s' } } } }),
    });
    expect(c.balancer.outlierDetection.enabled).toBe(true);
    expect(c.balancer.outlierDetection.interval).toBe(5000);
    // Before: 9, from the env below the `false`, with no source listed for it or for `enabled`.
    expect(c.balancer.outlierDetection.consecutive5xx).toBe(5);
    expect(outlier(c.sources)).toEqual({
      outlierDetection: kv,
      'outlierDetection.enabled': kv,
      'outlierDetection.interval': kv,
    });
  });

  it('`true` above turns it back on with the defaults; the `false` itself is the source of `enabled`', async () => {
    const on = await configOf({
      env: {},
      defaults: { outlierDetection: { consecutive5xx: 9 } },
      services: { api: { endpoints: '127.0.0.1:1', outlierDetection: false } },
      configSource: createConfigSource('kv', { services: { api: { outlierDetection: true } } }),
    });
    expect(on.balancer.outlierDetection.consecutive5xx).toBe(5);
    expect(outlier(on.sources)).toEqual({ outlierDetection: kv, 'outlierDetection.enabled': kv });
    const off = await configOf({
      env: {},
      defaults: { outlierDetection: { consecutive5xx: 9 } },
      services: { api: { endpoints: '127.0.0.1:1', outlierDetection: false } },
    });
    expect(off.balancer.outlierDetection.enabled).toBe(false);
    expect(outlier(off.sources)).toEqual({ outlierDetection: options, 'outlierDetection.enabled': options });
  });

  it('MESH_OUTLIER_ENABLED=false (a field) keeps the other MESH_OUTLIER_* values for a layer above', async () => {
    const c = await configOf({
      env: { MESH_OUTLIER_ENABLED: 'false', MESH_OUTLIER_CONSECUTIVE_5XX: '9' },
      services: { api: { endpoints: '127.0.0.1:1', outlierDetection: { interval: '5s' } } },
    });
    expect(c.balancer.outlierDetection).toMatchObject({ enabled: true, consecutive5xx: 9, interval: 5000 });
    // The object that turned the switch back on is the source of the section's switch too.
    expect(outlier(c.sources)).toEqual({
      outlierDetection: options,
      'outlierDetection.consecutive5xx': { layer: 'env', version: 1 },
      'outlierDetection.enabled': options,
      'outlierDetection.interval': options,
    });
  });
});

describe('faultInjection layering', () => {
  const own = { layer: 'options.services', version: 1 };
  const defaults = { layer: 'options.defaults', version: 1 };

  it('keeps the lower layer’s abort.percent when a higher one sets only abort.status', async () => {
    const c = await configOf({
      env: {},
      defaults: { faultInjection: { abort: { percent: 0, status: 418 } } },
      services: { api: { faultInjection: { abort: { status: 500 } } } },
    });
    expect(c.resilience.faultInjection?.abort).toEqual({ percent: 0, status: 500 });
    expect(c.sources['faultInjection.abort.percent']).toEqual(defaults);
    expect(c.sources['faultInjection.abort.status']).toEqual(own);
  });

  it('keeps the lower layer’s abort.status when a higher one sets only abort.percent', async () => {
    const c = await configOf({
      env: {},
      defaults: { faultInjection: { abort: { percent: 100, status: 429 } } },
      services: { api: { faultInjection: { abort: { percent: 50 } } } },
    });
    expect(c.resilience.faultInjection?.abort).toEqual({ percent: 50, status: 429 });
  });

  it('keeps the lower layer’s delay.percent when a higher one sets only delay.duration', async () => {
    const c = await configOf({
      env: {},
      defaults: { faultInjection: { delay: { percent: 5, duration: '1s' } } },
      services: { api: { faultInjection: { delay: { duration: '2s' } } } },
    });
    expect(c.resilience.faultInjection?.delay).toEqual({ percent: 5, durationMs: 2000 });
    expect(c.sources['faultInjection.delay.percent']).toEqual(defaults);
  });

  it('applies the built-in percent (100) and status (503) where no layer sets them', async () => {
    const c = await configOf({
      env: {},
      defaults: { faultInjection: { header: 'x-fault' } },
      services: { api: { faultInjection: { abort: {}, delay: { duration: '10ms' } } } },
    });
    expect(c.resilience.faultInjection).toMatchObject({
      abort: { percent: 100, status: 503 },
      delay: { percent: 100, durationMs: 10 },
      header: 'x-fault',
    });
  });
});

describe('provenance of a value derived from another setting (probe18 A)', () => {
  it('retry.backoff.max that follows the base comes from where the base came from', async () => {
    const c = await configOf({ env: { MESH_RETRY_BACKOFF_BASE: '1s' } });
    expect(c.resilience.retry?.backoff).toEqual({ baseMs: 1000, maxMs: 10_000 });
    expect(c.sources['retry.backoff.max']).toEqual({ layer: 'env', version: 1 });
    // Set by a layer of its own, it is that layer's.
    const own = await configOf({
      env: { MESH_RETRY_BACKOFF_BASE: '1s' },
      services: { api: { retry: { backoff: { max: '20s' } } } },
    });
    expect(own.sources['retry.backoff.max']).toEqual({ layer: 'options.services', version: 1 });
  });

  it('rateLimit.burst that follows the rate comes from where the rate came from', async () => {
    const c = await configOf({ env: {}, services: { api: { rateLimit: { rps: 2.5 } } } });
    expect(c.resilience.rateLimit).toEqual({ rps: 2.5, burst: 3 });
    expect(c.sources['rateLimit.burst']).toEqual({ layer: 'options.services', version: 1 });
  });
});

describe('the version a setting came from, across document versions (probe 10: every setting showed the version in force)', () => {
  it('names the version that last changed each setting, as Envoy names the version that last changed a resource', async () => {
    const kv = (version: number) => ({ layer: 'kv.services', version });
    const source = createConfigSource('kv', {
      defaults: { timeout: '3s' },
      services: {
        api: { endpoints: '127.0.0.1:1', timeout: '1s', retry: { maxRetries: 2, retryOn: '5xx' } },
      },
    });
    const mesh = createMesh({ env: {}, configSource: source });
    try {
      // v2 changes one field of retry; the endpoints change too (not a setting).
      source.update({
        defaults: { timeout: '3s' },
        services: {
          api: { endpoints: '127.0.0.1:2', timeout: '1s', retry: { maxRetries: 3, retryOn: '5xx' } },
        },
      });
      let s = mesh.config('api').sources;
      expect(s.timeout).toEqual(kv(1));
      expect(s['retry.retryOn']).toEqual(kv(1));
      expect(s['retry.maxRetries']).toEqual(kv(2));
      // v3 changes the timeout back and forth: a value written again after a change is the later version's.
      source.update({
        services: {
          api: { endpoints: '127.0.0.1:2', timeout: '2s', retry: { maxRetries: 3, retryOn: '5xx' } },
        },
      });
      source.update({
        services: {
          api: { endpoints: '127.0.0.1:2', timeout: '1s', retry: { maxRetries: 3, retryOn: '5xx' } },
        },
      });
      s = mesh.config('api').sources;
      expect(s.timeout).toEqual(kv(4));
      expect(s['retry.maxRetries']).toEqual(kv(2));
      expect(s['retry.retryOn']).toEqual(kv(1));
      // The defaults layer left the document at v3 and is no source any more.
      expect(Object.values(s).some((v) => v.layer === 'kv.defaults')).toBe(false);
      // A rejected version changes no provenance.
      source.update({ services: { api: { endpoints: '127.0.0.1:2', timeout: 'soon' } } });
      expect(mesh.config('api').sources).toEqual(s);
    } finally {
      await mesh.close();
    }
  });
});
