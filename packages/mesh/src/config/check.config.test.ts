import { MeshError } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import { createMesh } from '../index.js';
import { checkConfigDocument } from './check.js';
import { createConfigSource } from './source.js';

function issuesOf(document: unknown): string[] {
  try {
    checkConfigDocument(document);
  } catch (error) {
    if (!MeshError.is(error, 'MESH_CONFIG_INVALID')) throw error;
    return (error.details.issues ?? []).map((i) => `${i.field}=${JSON.stringify(i.value)}`);
  }
  return [];
}

describe('checkConfigDocument (#10)', () => {
  it('gives the warnings of a valid document', () => {
    const warnings = checkConfigDocument({
      services: { api: { endpoints: '10.0.0.1:80', timeout: '1s', perTryTimeout: '2s' } },
    });
    expect(warnings).toEqual([expect.objectContaining({ service: 'api', field: 'perTryTimeout' })]);
  });

  it("warns of a setting nothing in force reads: another policy's field, maxRetries with retries off", () => {
    const warned = (policy: Record<string, unknown>) =>
      checkConfigDocument({ services: { api: { endpoints: '10.0.0.1:80', ...policy } } }).map(
        (w) => `${w.field}=${JSON.stringify(w.value)}`,
      );
    expect(warned({ loadBalancer: { policy: 'round_robin', hashOn: { header: 'x-user' } } })).toEqual([
      'loadBalancer.hashOn={"header":"x-user"}',
    ]);
    expect(warned({ loadBalancer: { choiceCount: 3 } })).toEqual(['loadBalancer.choiceCount=3']);
    expect(warned({ loadBalancer: { policy: 'maglev', minRingSize: 2048, decayTime: '5s' } })).toEqual([
      'loadBalancer.decayTime=5000',
      'loadBalancer.minRingSize=2048',
    ]);
    expect(warned({ loadBalancer: { policy: 'ring_hash', slowStart: { window: '10s' } } })).toEqual([
      'loadBalancer.slowStart={"window":10000}',
    ]);
    expect(warned({ retry: false, circuitBreaker: { maxRetries: 3 } })).toEqual([
      'circuitBreaker.maxRetries=3',
    ]);
    // Read by the policy in force: no warning.
    expect(
      warned({ loadBalancer: { policy: 'ring_hash', hashOn: { header: 'x' }, minRingSize: 2048 } }),
    ).toEqual([]);
    expect(warned({ loadBalancer: { policy: 'peak_ewma', choiceCount: 3, decayTime: '5s' } })).toEqual([]);
    expect(warned({ circuitBreaker: { maxRetries: 3 } })).toEqual([]);
    // Only what a service's own entry sets: the defaults (and the environment) hold for services of
    // every policy, so what they set for some policy is no warning for a service on another one.
    const layered = checkConfigDocument({
      defaults: { loadBalancer: { policy: 'ring_hash', hashOn: { header: 'x-user' }, choiceCount: 3 } },
      services: {
        api: { endpoints: '10.0.0.1:80', loadBalancer: { policy: 'least_request' } },
        b: { endpoints: '10.0.0.1:80', loadBalancer: { policy: 'round_robin', tableSize: 101 } },
      },
    });
    expect(layered).toEqual([expect.objectContaining({ service: 'b', field: 'loadBalancer.tableSize' })]);
  });

  it('a policy shared by many services is parsed once, yet every bad copy is reported at its path', () => {
    const bad = { retry: { maxRetries: -1 } };
    expect(issuesOf({ services: { a: bad, b: { ...bad }, c: { retry: { maxRetries: 1 } } } })).toEqual([
      'services.a.retry.maxRetries=-1',
      'services.b.retry.maxRetries=-1',
    ]);
  });

  it('a valid policy seen before does not hide problems of its service entry', () => {
    const ok = { retry: { maxRetries: 1 } };
    expect(
      issuesOf({
        services: { a: { ...ok, endpoints: '10.0.0.1:80' }, b: { ...ok, endpoints: 'nope' } },
      }),
    ).toEqual(['services.b.endpoints="nope"']);
  });

  it('a rule across layers is checked for every service with the same policy', () => {
    const p = { circuitBreaker: { maxPendingRequests: 5 } };
    const found = issuesOf({ services: { a: p, b: { ...p } } });
    expect(found).toHaveLength(2);
    expect(found).toEqual([
      'services.a.circuitBreaker.maxPendingRequests=5',
      'services.b.circuitBreaker.maxPendingRequests=5',
    ]);
  });

  it.each([
    [
      'a variable',
      { MESH_RATE_LIMIT: '10' },
      '(all layers merged; set through MESH_RATE_LIMIT=10, which rateLimit: false in file.defaults discards)',
    ],
    [
      'the options’ defaults',
      {},
      '(all layers merged; rateLimit: false in file.defaults discards what the layers below it set)',
    ],
  ])('names the section’s `false` that discarded what %s set, not only what it hid', (_what, env, note) => {
    const problem = (defaults: Record<string, unknown>) => {
      try {
        checkConfigDocument(
          { defaults, services: { payments: { endpoints: '127.0.0.1:9', rateLimit: { burst: 5 } } } },
          { env, ...(Object.keys(env).length === 0 ? { defaults: { rateLimit: { rps: 10 } } } : {}) },
        );
      } catch (e) {
        return (e as MeshError).details.issues?.[0];
      }
      return undefined;
    };
    const issue = problem({ rateLimit: false });
    expect(issue?.field).toBe('services.payments.rateLimit.rps');
    expect(issue?.expected.endsWith(note)).toBe(true);
    // Nothing below the `false` set the section: the `false` is not named.
    const own = problem({ healthCheck: false });
    expect(own?.expected ?? '').not.toContain('false in');
  });

  it('a merged-layer problem of the defaults is said once, naming the variables that set its section', () => {
    let error: unknown;
    try {
      checkConfigDocument(
        { services: { a: {}, b: { timeout: '1s' } } },
        { env: { MESH_RATE_LIMIT_BURST: '5' } },
      );
    } catch (e) {
      error = e;
    }
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    const issues = (error as MeshError).details.issues ?? [];
    // Before: once for the defaults and once more for each of a and b, naming no variable.
    expect(issues).toHaveLength(1);
    expect(issues[0]?.field).toBe('defaults.rateLimit.rps');
    expect(issues[0]?.expected).toMatch(/\(all layers merged; set through MESH_RATE_LIMIT_BURST=5\)$/);
  });

  it('words a config-entry problem as Consul does, at start as at run time', () => {
    const doc = {
      services: { web: {} },
      configEntries: [
        { Kind: 'service-defaults', Name: 'web', Protocol: 'http' },
        { Kind: 'service-splitter', Name: 'web', Splits: [{ Weight: 95 }] },
      ],
    };
    expect(() => checkConfigDocument(doc)).toThrow(
      /service-splitter\/web Splits: the sum of all split weights must be 100, not 95$/,
    );
    // Before: "expected the sum of all split weights must be 100, not 95, got undefined".
    expect(() => checkConfigDocument(doc)).not.toThrow(/expected the sum|got undefined/);
  });

  it('checks the document over the options and environment layers', () => {
    // maxPendingRequests needs a concurrency limit with a queue: given by the options' defaults, it is valid.
    const doc = { services: { a: { circuitBreaker: { maxPendingRequests: 5 } } } };
    expect(() =>
      checkConfigDocument(doc, { defaults: { concurrencyLimit: { max: 10, queue: 20 } } }),
    ).not.toThrow();
    expect(() => checkConfigDocument(doc, { defaults: { concurrencyLimit: { max: 10 } } })).toThrow(
      /circuitBreaker\.maxPendingRequests/,
    );
    expect(() => checkConfigDocument({}, { env: { MESH_RETRIES: 'three' } })).toThrow(/MESH_RETRIES/);
  });

  describe('every problem of a document at once, as createMesh reports them (defect 1)', () => {
    const entries = [
      { Kind: 'service-defaults', Name: 'web', Protocol: 'http' },
      { Kind: 'service-resolver', Name: 'web', Subsets: { v1: { Filter: 'Service.Meta.version == "v1"' } } },
    ];
    const problems = (run: () => unknown): string[] => {
      try {
        run();
      } catch (error) {
        if (!MeshError.is(error, 'MESH_CONFIG_INVALID')) throw error;
        return (error.details.issues ?? []).map((i) => `${i.field}: ${i.message ?? i.expected}`);
      }
      return [];
    };
    const fromMesh = (document: unknown) =>
      problems(() => {
        const mesh = createMesh({ env: {}, configSource: createConfigSource('kv', document as never) });
        void mesh.close();
      });

    it('a bad service setting and a bad config entry', () => {
      const document = {
        services: { web: { endpoints: '127.0.0.1:1', timeout: 'soon' } },
        configEntries: [
          ...entries,
          { Kind: 'service-splitter', Name: 'web', Splits: [{ Weight: 95, ServiceSubset: 'v1' }] },
        ],
      };
      // Before: checkConfigDocument reported only the timeout.
      expect(issuesOf(document)).toEqual([
        'services.web.timeout="soon"',
        'service-splitter/web Splits=undefined',
      ]);
      expect(() => checkConfigDocument(document)).toThrow(
        /^config document \(version 1\): 2 problems:\n {2}services\.web\.timeout: expected a duration.*\n {2}service-splitter\/web Splits: the sum of all split weights must be 100, not 95$/,
      );
      expect(problems(() => checkConfigDocument(document))).toEqual(fromMesh(document));
    });

    it('weights that do not sum to 100 and an undefined subset in the same splitter', () => {
      const document = {
        services: { web: { endpoints: '127.0.0.1:1' } },
        configEntries: [
          ...entries,
          {
            Kind: 'service-splitter',
            Name: 'web',
            Splits: [
              { Weight: 90, ServiceSubset: 'v1' },
              { Weight: 5, ServiceSubset: 'v9' },
            ],
          },
        ],
      };
      // Before: only the weights; the subset once they were fixed.
      expect(problems(() => checkConfigDocument(document))).toEqual([
        'service-splitter/web Splits: the sum of all split weights must be 100, not 95',
        'service-splitter/web Splits[1]: service "web" does not have a subset named "v9"',
      ]);
      expect(() => checkConfigDocument(document)).toThrow(
        'config entries: 2 problems:\n  service-splitter/web Splits: the sum of all split weights must be 100, not 95\n  service-splitter/web Splits[1]: service "web" does not have a subset named "v9"',
      );
      expect(fromMesh(document)).toEqual(problems(() => checkConfigDocument(document)));
    });
  });
});

describe('outlierDetection.baseEjectionTime above 300 s with no maxEjectionTime (Envoy accepts it)', () => {
  it('is accepted from the environment and from a document; the cap is baseEjectionTime', async () => {
    expect(
      checkConfigDocument({
        services: { p: { endpoints: '10.0.0.1:80', outlierDetection: { baseEjectionTime: '600s' } } },
      }),
    ).toEqual([]);
    const mesh = createMesh({
      env: { MESH_OUTLIER_BASE_EJECTION_TIME: '10m' },
      services: { p: { endpoints: '127.0.0.1:1' } },
    });
    try {
      const od = mesh.config('p').balancer.outlierDetection;
      expect([od.baseEjectionTime, od.maxEjectionTime]).toEqual([600_000, 600_000]);
    } finally {
      await mesh.close();
    }
  });
});

describe('a fixed hedge delay at or above perTryTimeout', () => {
  it('is warned, as one at or above timeout is: no hedge is ever sent', async () => {
    const doc = {
      services: { s: { endpoints: '10.0.0.1:80', perTryTimeout: '100ms', hedge: { delay: '200ms' } } },
    };
    expect(checkConfigDocument(doc).map((w) => [w.field, w.service])).toEqual([['hedge.delay', 's']]);
    const mesh = createMesh({ env: {}, configSource: createConfigSource('kv', doc) });
    try {
      expect(mesh.config('s').warnings.map((w) => w.field)).toEqual(['hedge.delay']);
    } finally {
      await mesh.close();
    }
  });
});
