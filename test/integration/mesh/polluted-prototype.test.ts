/**
 * An enumerable property on `Object.prototype` (left by a prototype-pollution bug elsewhere in the
 * application) reaches neither the mesh's calls nor its metrics: prom-client checks labels with a
 * `for…in`, so the first call to a service failed inside `Gauge.set` (the breaker series set as its
 * destination is built), with no `MeshError` code, while plain undici was unaffected.
 */
import { Registry } from 'prom-client';
import { createMesh } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nameHandler, startServer, type TestServer } from '../../support/http-server.js';

describe('Object.prototype with an enumerable property', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer('a', nameHandler);
  });
  afterAll(async () => {
    await server.close();
  });

  it('fails no call and adds no label to the metrics', async () => {
    const registry = new Registry();
    const mesh = createMesh({
      env: {},
      metrics: { registry },
      services: { svc: { endpoints: server.address, circuitBreaker: { maxRequests: 10 } } },
    });
    const proto = Object.prototype as Record<string, unknown>;
    try {
      proto.polluted = 'x';
      const r = await mesh.request('http://svc/p');
      expect(r.statusCode).toBe(200);
      await r.body.text();
      const f = await mesh.fetch('http://svc/q');
      expect(f.status).toBe(200);
      await f.text();
      delete proto.polluted;
      const text = await registry.metrics();
      expect(text).toContain('mesh_circuit_breaker_state{service="svc",state="closed"} 1');
      expect(text).not.toContain('polluted');
    } finally {
      delete proto.polluted;
      await mesh.close();
    }
  });
});
