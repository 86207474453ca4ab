/**
 * One error lists every problem (issue #10, probe of reloads): a value refused on its own in one
 * service did hide a rule across layers another service breaks, at start-up, in
 * checkConfigDocument and in a rejected reload (`config_rejected`).
 */
import { MeshError } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import type { MeshEvent } from '../api.js';
import { createMesh } from '../mesh.js';
import { checkConfigDocument } from './check.js';
import { createConfigSource } from './source.js';

const env = { MESH_RETRY_BACKOFF_BASE: '100ms' };
const BOTH = {
  services: {
    s17: { endpoints: '127.0.0.1:1', retry: { maxRetries: 99 } },
    // Valid on its own; below the 100ms base the environment sets once the layers are merged.
    s33: { endpoints: '127.0.0.1:2', retry: { backoff: { max: '50ms' } } },
  },
};
const FIELDS = ['services.s17.retry.maxRetries', 'services.s33.retry.backoff.max'];

function fieldsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    if (MeshError.is(error, 'MESH_CONFIG_INVALID')) return (error.details.issues ?? []).map((i) => i.field);
    throw error;
  }
  return [];
}

describe('every problem of a document at once (#10)', () => {
  it('checkConfigDocument lists the refused value and the broken rule across layers', () => {
    expect(fieldsOf(() => checkConfigDocument(BOTH, { env }))).toEqual(FIELDS);
    // The rule across layers: its full path, and what it expects says the layers were merged.
    expect(() => checkConfigDocument(BOTH, { env })).toThrow(
      'services.s33.retry.backoff.max: expected a duration ≥ retry.backoff.base (100ms) (all layers merged; set through MESH_RETRY_BACKOFF_BASE=100ms), got "50ms"',
    );
  });

  it('createMesh lists both', () => {
    expect(fieldsOf(() => createMesh({ env, configSource: createConfigSource('kv', BOTH) }))).toEqual(FIELDS);
  });

  it('a rejected reload lists both, and the version in force stays', async () => {
    const source = createConfigSource('kv', { services: { s33: { endpoints: '127.0.0.1:2' } } });
    const mesh = createMesh({ env, configSource: source });
    try {
      const events: MeshEvent[] = [];
      mesh.onEvent((e) => events.push(e));
      source.update(BOTH);
      const rejected = events.find((e) => e.type === 'config_rejected');
      expect(
        rejected?.type === 'config_rejected' && rejected.error.details.issues?.map((i) => i.field),
      ).toEqual(FIELDS);
      expect(mesh.config('s33').resilience.retry?.backoff.maxMs).not.toBe(50);
    } finally {
      await mesh.close();
    }
  });

  it('a service whose own value is refused is not also checked across layers (no made-up problems)', () => {
    const doc = {
      services: { s9: { endpoints: '127.0.0.1:1', retry: { backoff: { base: 'x', max: '50ms' } } } },
    };
    expect(fieldsOf(() => checkConfigDocument(doc, { env }))).toEqual(['services.s9.retry.backoff.base']);
  });

  it('a refused value checks the rules across layers of the other sections of its scope (probe31 sources 5)', () => {
    const doc = {
      defaults: { timeout: 'soon' },
      services: {
        pay: {
          endpoints: '127.0.0.1:1',
          retry: { maxRetries: 11 },
          circuitBreaker: { maxPendingRequests: 3 },
        },
        ship: {
          endpoints: '127.0.0.1:2',
          loadBalancer: { minRingSize: 100, maxRingSize: 10 },
          healthCheck: { interval: '1s' },
        },
      },
    };
    expect(fieldsOf(() => checkConfigDocument(doc, { env: {} })).sort()).toEqual([
      'defaults.timeout',
      'services.pay.circuitBreaker.maxPendingRequests',
      'services.pay.retry.maxRetries',
      'services.ship.healthCheck.path',
      'services.ship.loadBalancer.minRingSize',
    ]);
  });

  it.each([
    ['a refused concurrencyLimit of the service', { concurrencyLimit: { max: 0, queue: 5 } }, {}],
    ['a refused concurrencyLimit in defaults', {}, { concurrencyLimit: { max: 0, queue: 5 } }],
    [
      'a misspelt key of the service (it may be the section meant)',
      { concurrencyLimt: { max: 5, queue: 5 } },
      {},
    ],
  ] as const)('%s hides the queue rule it bears on (no made-up problem)', (_, own, defaults) => {
    const doc = {
      defaults,
      services: { pay: { endpoints: '127.0.0.1:1', circuitBreaker: { maxPendingRequests: 3 }, ...own } },
    };
    const fields = fieldsOf(() => checkConfigDocument(doc, { env: {} }));
    expect(fields).not.toContain('services.pay.circuitBreaker.maxPendingRequests');
    expect(fields.length).toBeGreaterThan(0);
  });

  it('a misspelt section hides only the rules of the section it is nearest to (probe 10: healtCheck hid rateLimit and the queue)', () => {
    const doc = {
      services: {
        pay: {
          endpoints: '127.0.0.1:1',
          healtCheck: {},
          rateLimit: { burst: 2 },
          circuitBreaker: { maxPendingRequests: 3 },
        },
      },
    };
    expect(fieldsOf(() => checkConfigDocument(doc, { env: {} })).sort()).toEqual([
      'services.pay.circuitBreaker.maxPendingRequests',
      'services.pay.healtCheck',
      'services.pay.rateLimit.rps',
    ]);
  });

  it('a rule across layers quotes a duration as the document writes it (probe 10: "30s" was got 30000)', () => {
    const doc = {
      services: {
        pay: {
          endpoints: '127.0.0.1:1',
          outlierDetection: { baseEjectionTime: '1m', maxEjectionTime: '30s' },
          healthCheck: { path: '/h', interval: '1s', timeout: '1.5s' },
        },
      },
    };
    let error: unknown;
    try {
      checkConfigDocument(doc, { env: {} });
    } catch (e) {
      error = e;
    }
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    const issues = (error as MeshError).details.issues ?? [];
    expect(issues.map((i) => [i.field, i.value])).toEqual([
      ['services.pay.outlierDetection.maxEjectionTime', '30s'],
      ['services.pay.healthCheck.timeout', '1.5s'],
    ]);
    expect((error as MeshError).message).toContain(
      'services.pay.outlierDetection.maxEjectionTime: expected at least outlierDetection.baseEjectionTime (60000ms) (all layers merged), got "30s"',
    );
  });

  it.each(['__proto__', '_a', 'a-'])(
    'a service name %s is refused saying it must start and end with a letter or digit (probe 10: the reason given was wrong)',
    (name) => {
      const doc = JSON.parse(`{"services":{${JSON.stringify(name)}:{"endpoints":"127.0.0.1:1"}}}`) as object;
      expect(() => checkConfigDocument(doc, { env: {} })).toThrow(
        `services.${name}: expected a service name of letters, digits, \`-\`, \`_\` and \`.\` that starts and ends with a letter or digit, got "${name}"`,
      );
    },
  );
});
