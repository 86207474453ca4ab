import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Issues, MeshError } from '@proxyless/core';
import { VirtualClock } from '@proxyless/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { createMesh, type MeshEvent } from '../mesh.js';
import { checkConfigDocument } from './check.js';
import { changedRoles, POLICY_ROLES } from './effective.js';
import { POLICY_KEYS } from './schema.js';
import { envConfigSource, optionsConfigSource } from './source.js';
import { ConfigStore } from './store.js';

function store(
  options: Parameters<typeof optionsConfigSource>[0] = {},
  env: Record<string, string> = {},
): ConfigStore {
  const issues = new Issues();
  const s = new ConfigStore(optionsConfigSource(options).current(), envConfigSource(env).current(), issues);
  issues.throwIfAny('test');
  return s;
}

function apply(s: ConfigStore, document: unknown, version: number, live: string[] = ['api']) {
  const r = s.validate({ source: 'file', version, document }, 'doc');
  if (r instanceof MeshError) throw r;
  return s.swap(r.layers, live);
}

describe('effective config (#10)', () => {
  it('records the layer and version each setting came from', () => {
    const s = store(
      { defaults: { retry: { maxRetries: 1 } }, services: { api: { timeout: '2s' } } },
      { MESH_RETRY_BACKOFF_BASE: '10ms' },
    );
    apply(s, { defaults: { hedge: true }, services: { api: { retry: { maxRetries: 3 } } } }, 7);
    const c = s.effective('api');
    expect(c.resilience.retry?.maxRetries).toBe(3);
    expect(c.resilience.retry?.backoff.baseMs).toBe(10);
    expect(c.resilience.timeoutMs).toBe(2000);
    expect(c.sources['retry.maxRetries']).toEqual({ layer: 'file.services', version: 7 });
    expect(c.sources['retry.backoff.base']).toEqual({ layer: 'env', version: 1 });
    expect(c.sources.timeout).toEqual({ layer: 'options.services', version: 1 });
    expect(c.sources.hedge).toEqual({ layer: 'file.defaults', version: 7 });
    // Not set anywhere: a built-in default, not listed.
    expect(c.sources['circuitBreaker.maxRequests']).toBeUndefined();
  });

  it('a section switched off later forgets the sources of its fields', () => {
    const s = store({ services: { api: { retry: { maxRetries: 1 } } } });
    apply(s, { services: { api: { retry: false } } }, 2);
    const c = s.effective('api');
    expect(c.resilience.retry).toBeUndefined();
    expect(c.sources.retry).toEqual({ layer: 'file.services', version: 2 });
    expect(c.sources['retry.maxRetries']).toBeUndefined();
  });

  it('a later `true` keeps the sources of the fields lower layers set (it keeps their values)', () => {
    const s = store(
      {
        defaults: { concurrencyLimit: { max: 7 } },
        services: { api: { retry: true, loadBalancer: true, concurrencyLimit: true } },
      },
      { MESH_RETRIES: '5', MESH_LB_POLICY: 'maglev' },
    );
    const c = s.effective('api');
    expect(c.resilience.retry?.maxRetries).toBe(5);
    expect(c.sources['retry.maxRetries']).toEqual({ layer: 'env', version: 1 });
    expect(c.sources['loadBalancer.policy']).toEqual({ layer: 'env', version: 1 });
    expect(c.sources['concurrencyLimit.max']).toEqual({ layer: 'options.defaults', version: 1 });
    expect(c.sources.retry).toEqual({ layer: 'options.services', version: 1 });
  });

  it('a replaced hashOn forgets the fields of the one below; a leaf value forgets what was under it', () => {
    const s = store({ defaults: { loadBalancer: { policy: 'ring_hash', hashOn: { header: 'x-user' } } } });
    apply(s, { services: { api: { loadBalancer: { hashOn: 'source' } } } }, 3);
    const c = s.effective('api');
    expect(c.balancer.loadBalancer.hashOn).toBe('source');
    expect(c.sources['loadBalancer.hashOn']).toEqual({ layer: 'file.services', version: 3 });
    expect(c.sources['loadBalancer.hashOn.header']).toBeUndefined();
  });

  it('an object over a lower layer’s `false` turns every section back on, outlier detection included', () => {
    const s = store({ defaults: { outlierDetection: false, circuitBreaker: false, retry: false } });
    apply(
      s,
      {
        services: {
          api: {
            outlierDetection: { consecutive5xx: 3 },
            circuitBreaker: { volumeThreshold: 5 },
            retry: { maxRetries: 1 },
          },
        },
      },
      2,
    );
    const c = s.effective('api');
    expect(c.balancer.outlierDetection.enabled).toBe(true);
    expect(c.balancer.outlierDetection.consecutive5xx).toBe(3);
    expect(c.resilience.circuitBreaker?.volumeThreshold).toBe(5);
    expect(c.resilience.retry?.maxRetries).toBe(1);
    // `enabled: false` in the object still turns it off.
    apply(s, { services: { api: { outlierDetection: { enabled: false, consecutive5xx: 3 } } } }, 3);
    expect(s.effective('api').balancer.outlierDetection.enabled).toBe(false);
  });

  it('defaults: no overall timeout, unbounded concurrent retries', () => {
    const c = store().effective('api');
    expect(c.resilience.timeoutMs).toBe(0);
    expect(c.resilience.circuitBreaker?.maxRetries).toBe(4_294_967_295);
  });

  it('warns, without rejecting, when perTryTimeout exceeds timeout', () => {
    const s = store();
    const r = s.validate(
      { source: 'file', version: 1, document: { services: { api: { timeout: '1s', perTryTimeout: '2s' } } } },
      'doc',
    );
    if (r instanceof MeshError) throw r;
    expect(r.warnings).toEqual([
      expect.objectContaining({ service: 'api', field: 'perTryTimeout', value: 2000 }),
    ]);
  });
});

describe('diff before build (#10)', () => {
  it('an unchanged document changes no role', () => {
    const s = store();
    const doc = { services: { api: { retry: { maxRetries: 3 } } } };
    expect(apply(s, doc, 1).get('api')).toEqual(expect.arrayContaining(['retry']));
    expect(apply(s, doc, 2).size).toBe(0);
    // The same values from another layer are no change either.
    expect(apply(s, { defaults: { retry: { maxRetries: 3 } } }, 3).size).toBe(0);
  });

  it('names only the roles whose section changed, only for the services it touches', () => {
    const s = store();
    apply(s, { services: { api: { retry: { maxRetries: 3 } }, web: {} } }, 1, ['api', 'web']);
    const changed = apply(
      s,
      {
        services: {
          api: { retry: { maxRetries: 3 }, loadBalancer: { policy: 'random' }, timeout: '1s' },
          web: {},
        },
      },
      2,
      ['api', 'web'],
    );
    expect(changed.get('api')).toEqual(['loadBalancer', 'timeout']);
    expect(changed.has('web')).toBe(false);
  });

  it('changedRoles with no previous config rebuilds everything', () => {
    expect(changedRoles(undefined, store().effective('api'))).toEqual([...POLICY_ROLES]);
  });
});

describe('mesh.config and the config file as a source (#10)', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('applies a new version atomically, rebuilds only changed services, keeps the last good one', async () => {
    dir = mkdtempSync(join(tmpdir(), 'proxyless-config-'));
    const path = join(dir, 'mesh.json');
    const write = (doc: unknown): void => writeFileSync(path, JSON.stringify(doc));
    write({ services: { api: { endpoints: '127.0.0.1:1', retry: { maxRetries: 1 } } } });
    const mesh = createMesh({ env: {}, configFile: path, clock: new VirtualClock() });
    const events: MeshEvent[] = [];
    mesh.onEvent((e) => events.push(e));
    expect(mesh.config('api').sources['retry.maxRetries']).toEqual({ layer: 'file.services', version: 1 });
    const reload = async (doc: unknown): Promise<void> => {
      write(doc);
      // The file is watched too; reloading now makes the test independent of fs events.
      await mesh.reloadConfig();
    };
    // A rejected version: the reload rejects with the error the event carries.
    await expect(
      reload({ services: { api: { endpoints: '127.0.0.1:1', retry: { maxRetries: 'x' } } } }),
    ).rejects.toThrow('services.api.retry.maxRetries');
    await reload({ services: { api: { endpoints: '127.0.0.1:1', retry: { maxRetries: 4 } } } });
    await mesh.close();
    const rejected = events.find((e) => e.type === 'config_rejected');
    expect(rejected && rejected.type === 'config_rejected' && rejected.error.message).toContain(
      'services.api.retry.maxRetries',
    );
    const applied = events.filter((e) => e.type === 'config_applied');
    expect(applied).toHaveLength(1);
    expect(applied[0]).toMatchObject({ source: 'file', version: 3 });
  });
});

describe('options and env checked whole at createMesh (#10)', () => {
  const problems = (run: () => unknown): string[] => {
    try {
      run();
    } catch (error) {
      if (!MeshError.is(error, 'MESH_CONFIG_INVALID')) throw error;
      return (error.details.issues ?? []).map((i) => `${i.field}=${JSON.stringify(i.value)}`);
    }
    return [];
  };

  it('lists bad endpoints (env and options) with every other problem in one error', () => {
    expect(
      problems(() =>
        createMesh({
          env: { MESH_ENDPOINTS_PAYMENTS: 'nope', MESH_RETRIES: 'three' },
          services: { p: { endpoints: 'also-nope' } },
        }),
      ).sort(),
    ).toEqual([
      'MESH_ENDPOINTS_PAYMENTS="nope"',
      'MESH_RETRIES="three"',
      'options.services.p.endpoints="also-nope"',
    ]);
  });

  it('validates the options a JavaScript caller can get wrong, naming each (NaN quoted as NaN)', () => {
    const bad = (options: Record<string, unknown>): string[] =>
      problems(() => createMesh({ env: {}, ...options } as never));
    expect(bad({ resolveTimeoutMs: -1 })).toEqual(['options.resolveTimeoutMs=-1']);
    expect(() => createMesh({ env: {}, resolveTimeoutMs: Number.NaN })).toThrow(/resolveTimeoutMs.*got NaN/);
    expect(bad({ registry: 'consull' })).toEqual(['options.registry="consull"']);
    expect(() => createMesh({ env: {}, registry: 'consull' as never })).toThrow(/did you mean "consul"/);
    expect(bad({ hostHeader: 'Endpoint' })).toEqual(['options.hostHeader="Endpoint"']);
    expect(bad({ passthrough: 'no' })).toEqual(['options.passthrough="no"']);
  });

  it('lists telemetry settings with every other problem, and leaves nothing running', () => {
    expect(
      problems(() => createMesh({ env: { MESH_ADMIN_PORT: 'abc', MESH_RETRIES: 'three' } })).sort(),
    ).toEqual(['MESH_ADMIN_PORT="abc"', 'MESH_RETRIES="three"']);
  });

  it('rejects service names and entries the document would reject, and non-object sections', () => {
    const bad = (services: unknown, defaults?: unknown): string[] =>
      problems(() => createMesh({ env: {}, services, defaults } as never));
    expect(bad({ 'a b': {} })).toEqual(['options.services.a b="a b"']);
    expect(bad({ Pay: {}, pay: {} })).toEqual(['options.services.pay="pay"']);
    expect(bad({ a: 5 })).toEqual(['options.services.a=5']);
    expect(bad({ a: null })).toEqual(['options.services.a=null']);
    expect(bad(5)).toEqual(['options.services=5']);
    expect(bad({}, 5)).toEqual(['options.defaults=5']);
  });

  // A misspelt key of a service entry in code lists the keys a service entry takes, `endpoints`
  // included, as the same entry in a document does (probe30 config defect 4).
  const issueOf = (run: () => unknown, field: string) => {
    try {
      run();
    } catch (error) {
      if (!MeshError.is(error, 'MESH_CONFIG_INVALID')) throw error;
      return error.details.issues?.find((i) => i.field === field);
    }
    return undefined;
  };
  const SERVICE_KEYS = `endpoints, ${POLICY_KEYS.join(', ')}`;
  it.each([
    [
      'createMesh services',
      () => createMesh({ env: {}, services: { payments: { retyr: {} } } } as never),
      'options.services.payments.retyr',
      `no such field (did you mean "retry"?); known: ${SERVICE_KEYS}`,
    ],
    [
      'checkConfigDocument services option',
      () => checkConfigDocument({}, { services: { payments: { endpointss: 'a:1' } } } as never),
      'options.services.payments.endpointss',
      `no such field (did you mean "endpoints"?); known: ${SERVICE_KEYS}`,
    ],
    [
      'a document service entry',
      () => checkConfigDocument({ services: { payments: { retyr: {} } } }),
      'services.payments.retyr',
      `no such field (did you mean "retry"?); known: ${SERVICE_KEYS}`,
    ],
    [
      'createMesh defaults (no endpoints there)',
      () => createMesh({ env: {}, defaults: { retyr: {} } } as never),
      'options.defaults.retyr',
      `no such field (did you mean "retry"?); known: ${POLICY_KEYS.join(', ')}`,
    ],
  ])('%s: a misspelt key lists the known keys', (_what, run, field, expected) => {
    expect(issueOf(run, field)).toEqual({ field, expected, value: expect.anything() });
  });
});
