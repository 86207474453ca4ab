/**
 * Fault injection answers with a final status only (Envoy's `http_status` is 200..599): a 1xx in
 * the config is an error naming it, and a 1xx in the `x-mesh-fault` header is ignored as any bad
 * part is. A 204, a 304 or the answer to a HEAD carries no body. Real loopback server.
 */
import { createMesh, MeshError } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startServer('a');
});
afterAll(() => server.close());

describe('fault injection statuses', () => {
  it.each([100, 101, 103, 199])('refuses abort.status %i, naming it', (status) => {
    let error: unknown;
    try {
      createMesh({
        env: {},
        services: { api: { endpoints: server.address, faultInjection: { abort: { status } } } },
      });
    } catch (e) {
      error = e;
    }
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    expect((error as MeshError).message).toContain('services.api.faultInjection.abort.status');
    expect((error as MeshError).message).toContain(String(status));
  });

  it('ignores a 1xx abort in the fault header: the call goes to the endpoint', async () => {
    const mesh = createMesh({
      env: {},
      services: { api: { endpoints: server.address, faultInjection: { header: 'x-mesh-fault' } } },
    });
    try {
      const before = server.requests;
      const r = await mesh.request('http://api/', { headers: { 'x-mesh-fault': 'abort=100' } });
      expect(r.statusCode).toBe(200);
      expect(await r.body.text()).toBe('a');
      expect(server.requests).toBe(before + 1);
      const forced = await mesh.request('http://api/', { headers: { 'x-mesh-fault': 'abort=503' } });
      expect(forced.statusCode).toBe(503);
      await forced.body.dump();
    } finally {
      await mesh.close();
    }
  });

  it('answers 204, 304 and HEAD without a body', async () => {
    for (const [status, method] of [
      [204, 'GET'],
      [304, 'GET'],
      [503, 'HEAD'],
    ] as const) {
      const mesh = createMesh({
        env: {},
        services: { api: { endpoints: server.address, faultInjection: { abort: { status } } } },
      });
      try {
        const r = await mesh.request('http://api/', { method });
        expect(r.statusCode).toBe(status);
        expect(r.headers['x-mesh-fault']).toBe('abort');
        expect(await r.body.text()).toBe('');
      } finally {
        await mesh.close();
      }
    }
  });
});
