import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkConfigDocument, createMesh } from '../index.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function fileWith(doc: unknown): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'proxyless-reach-'));
  dirs.push(dir);
  const file = path.join(dir, 'mesh.json');
  writeFileSync(file, JSON.stringify(doc));
  return file;
}

describe('a setting for one service beats a setting for every service (#10 layering)', () => {
  it("the document's defaults do not turn back on what code turned off for one service", async () => {
    const file = fileWith({
      defaults: {
        retry: { maxRetries: 3 },
        circuitBreaker: { resetTimeout: '10s' },
        outlierDetection: { interval: '5s' },
      },
    });
    const mesh = createMesh({
      env: { MESH_CONFIG_FILE: file },
      services: {
        payments: {
          endpoints: '127.0.0.1:1',
          retry: { maxRetries: 0 },
          circuitBreaker: false,
          outlierDetection: { enabled: false },
        },
      },
    });
    try {
      const c = mesh.config('payments');
      const own = { layer: 'options.services', version: 1 };
      expect(c.resilience.retry?.maxRetries ?? 0).toBe(0);
      expect(c.resilience.circuitBreaker).toBeUndefined();
      expect(c.balancer.outlierDetection.enabled).toBe(false);
      expect(c.sources['retry.maxRetries']).toEqual(own);
      expect(c.sources.circuitBreaker).toEqual(own);
      expect(c.sources['outlierDetection.enabled']).toEqual(own);
      // What the service leaves unset still comes from the document's defaults.
      expect(c.sources['outlierDetection.interval']).toEqual({ layer: 'file.defaults', version: 1 });
      // Another service, with no settings of its own, gets the document's defaults.
      expect(mesh.config('orders').resilience.retry?.maxRetries).toBe(3);
    } finally {
      await mesh.close();
    }
  });

  it("the document's entry for a service still beats code's entry for it (same reach: the document wins)", async () => {
    const file = fileWith({ services: { payments: { retry: { maxRetries: 1 } } } });
    const mesh = createMesh({
      env: { MESH_CONFIG_FILE: file },
      services: { payments: { endpoints: '127.0.0.1:1', retry: { maxRetries: 0 }, perTryTimeout: '1s' } },
    });
    try {
      const c = mesh.config('payments');
      expect(c.resilience.retry?.maxRetries).toBe(1);
      expect(c.sources['retry.maxRetries']).toEqual({ layer: 'file.services', version: 1 });
    } finally {
      await mesh.close();
    }
  });
});

describe('circuitBreaker.maxPendingRequests from the defaults, with a service that has no queue (#10 one owner)', () => {
  const defaults = { concurrencyLimit: { max: 100, queue: 50 }, circuitBreaker: { maxPendingRequests: 20 } };
  const ep = '127.0.0.1:80';

  it.each([
    ['concurrencyLimit: false', { concurrencyLimit: false }],
    ['concurrencyLimit: { queue: 0 }', { concurrencyLimit: { queue: 0 } }],
    [
      'concurrencyLimit: false with maxPendingRequests: 0',
      { concurrencyLimit: false, circuitBreaker: { maxPendingRequests: 0 } },
    ],
  ])('a service may turn the queue off: %s', async (_what, svc) => {
    const doc = { defaults, services: { p: { endpoints: ep, ...svc }, q: { endpoints: ep } } };
    expect(() => checkConfigDocument(doc)).not.toThrow();
    const mesh = createMesh({ env: { MESH_CONFIG_FILE: fileWith(doc) } });
    try {
      const cb = mesh.config('p').resilience.circuitBreaker;
      expect(cb).toBeDefined();
      expect(cb?.maxPendingRequests).toBeUndefined();
      // In force from no layer: its provenance goes with it (probe20 defect 4).
      expect(mesh.config('p').sources['circuitBreaker.maxPendingRequests']).toBeUndefined();
      expect(mesh.config('q').sources['circuitBreaker.maxPendingRequests']).toEqual({
        layer: 'file.defaults',
        version: 1,
      });
      // A service that keeps the queue keeps the threshold.
      expect(mesh.config('q').resilience.circuitBreaker?.maxPendingRequests).toBe(20);
    } finally {
      await mesh.close();
    }
  });

  it('the same layer setting the threshold and taking the queue away is still an error', () => {
    expect(() =>
      checkConfigDocument({
        defaults,
        services: {
          p: { endpoints: ep, concurrencyLimit: false, circuitBreaker: { maxPendingRequests: 5 } },
        },
      }),
    ).toThrow(/circuitBreaker\.maxPendingRequests/);
    expect(() => checkConfigDocument({ defaults: { circuitBreaker: { maxPendingRequests: 20 } } })).toThrow(
      /circuitBreaker\.maxPendingRequests/,
    );
  });
});

describe("a document's endpoints shadowed by code or MESH_ENDPOINTS_* (probe18 defect 3)", () => {
  const doc = {
    services: {
      payments: { endpoints: '10.0.0.2:8080', retry: { maxRetries: 4 } },
      orders: { endpoints: '10.0.0.3:80' },
    },
  };

  it('are warned, naming what gives the endpoints instead; lists nothing shadows are not', () => {
    const warnings = checkConfigDocument(doc, { env: { MESH_ENDPOINTS_PAYMENTS: '10.0.0.1:8080' } });
    expect(warnings).toEqual([
      expect.objectContaining({
        field: 'services.payments.endpoints',
        value: '10.0.0.2:8080',
        expected: expect.stringContaining('MESH_ENDPOINTS_PAYMENTS gives'),
      }),
    ]);
    const byCode = checkConfigDocument(doc, { services: { Payments: { endpoints: '10.0.0.9:1' } } });
    expect(byCode.map((w) => w.field)).toEqual(['services.payments.endpoints']);
    expect(byCode[0]?.expected).toContain('createMesh({ services: { Payments: { endpoints } } })');
    expect(checkConfigDocument(doc)).toEqual([]);
  });

  it('the mesh says so on a reload', async () => {
    const file = fileWith(doc);
    const mesh = createMesh({ env: { MESH_CONFIG_FILE: file, MESH_ENDPOINTS_PAYMENTS: '10.0.0.1:8080' } });
    try {
      const events: { type: string; issue?: { field: string } }[] = [];
      mesh.onEvent((e) => events.push(e as { type: string; issue?: { field: string } }));
      writeFileSync(file, JSON.stringify({ services: { payments: { endpoints: '10.0.0.4:8080' } } }));
      await mesh.reloadConfig();
      // At start (delivered once a listener can hear it), and for the new list of the reload.
      const warned = events.filter((e) => e.type === 'config_warning');
      expect(warned.map((e) => e.issue?.field)).toEqual([
        'services.payments.endpoints',
        'services.payments.endpoints',
      ]);
      expect(warned.map((e) => (e.issue as { value?: unknown } | undefined)?.value)).toEqual([
        '10.0.0.2:8080',
        '10.0.0.4:8080',
      ]);
    } finally {
      await mesh.close();
    }
  });
});

describe('a MESH_ENDPOINTS_* variable shadowed by code options', () => {
  it('is warned once, naming the option that gives the endpoints instead', async () => {
    const env = { MESH_ENDPOINTS_ORDER_SERVICE: '127.0.0.1:7', MESH_ENDPOINTS_PAYMENTS: '127.0.0.1:6' };
    const services = { 'Order-Service': { endpoints: '127.0.0.1:8' } };
    const warnings = checkConfigDocument({ services: {} }, { env, services });
    expect(warnings).toEqual([
      expect.objectContaining({
        field: 'MESH_ENDPOINTS_ORDER_SERVICE',
        value: '127.0.0.1:7',
        expected: expect.stringContaining(
          "createMesh({ services: { Order-Service: { endpoints } } }) gives this service's endpoints",
        ),
      }),
    ]);
    const mesh = createMesh({ env, services });
    try {
      const events: { type: string; issue?: { field: string } }[] = [];
      mesh.onEvent((e) => events.push(e as { type: string; issue?: { field: string } }));
      await Promise.resolve();
      expect(events.filter((e) => e.type === 'config_warning').map((e) => e.issue?.field)).toEqual([
        'MESH_ENDPOINTS_ORDER_SERVICE',
      ]);
    } finally {
      await mesh.close();
    }
  });
});
