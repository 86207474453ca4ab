import { createMesh, MeshError } from 'proxyless';
import { flushPromises, manualResolver, VirtualClock } from 'proxyless/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

/**
 * A registry failure before its first answer is not an answer: the first calls keep waiting for
 * one (the resolver retries), up to the resolve timeout. Before, the failure released them into an
 * empty set and each failed at once with a misleading MESH_NO_ENDPOINTS.
 */
describe('a registry error before the first answer', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer('a', (_req, res) => res.end('ok'));
  });
  afterAll(async () => {
    await server.close();
  });
  const unavailable = () =>
    new MeshError('MESH_REGISTRY_UNAVAILABLE', 'consul: 500 No cluster leader', {
      details: { service: 'payments' },
    });

  it('keeps the first call waiting; the retried answer serves it', async () => {
    const registry = manualResolver({ services: ['payments'] });
    const mesh = createMesh({ env: {}, resolvers: [registry] });
    try {
      const call = mesh.request('http://payments/');
      registry.fail('payments', unavailable());
      // The failure is delivered and handled before the retry answers.
      await flushPromises();
      await new Promise<void>((resolve) => setImmediate(resolve));
      // The resolver's retry answers.
      const port = Number(server.address.split(':')[1]);
      registry.set('payments', [{ address: '127.0.0.1', port }]);
      const res = await call;
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('ok');
    } finally {
      await mesh.close();
    }
  });

  it('with no answer by the resolve timeout, fails naming the registry error as the cause', async () => {
    const clock = new VirtualClock();
    const registry = manualResolver({ services: ['payments'], clock });
    const mesh = createMesh({ env: {}, resolvers: [registry], clock, resolveTimeoutMs: 5000 });
    try {
      const call = mesh.request('http://payments/').then(
        () => undefined,
        (e: unknown) => e,
      );
      registry.fail('payments', unavailable());
      await clock.advance(4999);
      await clock.advance(1);
      const error = (await call) as MeshError;
      expect(error.code).toBe('MESH_NO_ENDPOINTS');
      expect(error.message).toContain('registry failed');
      expect((error.cause as MeshError).code).toBe('MESH_REGISTRY_UNAVAILABLE');
    } finally {
      await mesh.destroy();
    }
  });

  it('a refused answer (every key invalid) fails the waiting call now, and the next at once, naming it; an answer clears it', async () => {
    // Before: each first call waited out the resolve timeout (5 s) though the registry had
    // answered: a payload error is final until the registry changes.
    const clock = new VirtualClock();
    const registry = manualResolver({ services: ['payments'], clock });
    const mesh = createMesh({ env: {}, resolvers: [registry], clock, resolveTimeoutMs: 5000 });
    const refused = new MeshError(
      'MESH_REGISTRY_PAYLOAD_INVALID',
      'etcd service "payments": port: expected an integer 1..65535, got 70000',
      { details: { service: 'payments' } },
    );
    try {
      const waiting = mesh.request('http://payments/').then(
        () => undefined,
        (e: unknown) => e,
      );
      await flushPromises();
      registry.fail('payments', refused);
      // No time passes on the clock: the call fails on the refusal, not on the timeout.
      const error = (await waiting) as MeshError;
      expect(error.code).toBe('MESH_NO_ENDPOINTS');
      expect(error.message).toContain("registry's answer was refused");
      expect((error.cause as MeshError).code).toBe('MESH_REGISTRY_PAYLOAD_INVALID');
      await expect(mesh.request('http://payments/')).rejects.toMatchObject({ code: 'MESH_NO_ENDPOINTS' });
      expect(clock.now()).toBe(0);
      // The registry is mended: the next call is served.
      const port = Number(server.address.split(':')[1]);
      registry.set('payments', [{ address: '127.0.0.1', port }]);
      await flushPromises();
      expect((await mesh.request('http://payments/')).statusCode).toBe(200);
    } finally {
      await mesh.close();
    }
  });

  it('a request the registry refuses as misconfigured (CONSUL_NAMESPACE on Consul CE) fails the waiting call now too', async () => {
    const clock = new VirtualClock();
    const registry = manualResolver({ services: ['api'], clock });
    const mesh = createMesh({ env: {}, resolvers: [registry], clock, resolveTimeoutMs: 5000 });
    try {
      const waiting = mesh.request('http://api/').then(
        () => undefined,
        (e: unknown) => e,
      );
      await flushPromises();
      // Before: the call waited the 5 s resolve timeout though Consul had answered 400.
      registry.fail(
        'api',
        new MeshError('MESH_CONFIG_INVALID', 'CONSUL_NAMESPACE: Consul CE has no namespaces, got "team-a"', {
          details: { field: 'CONSUL_NAMESPACE', value: 'team-a' },
        }),
      );
      const error = (await waiting) as MeshError;
      expect(error.code).toBe('MESH_NO_ENDPOINTS');
      expect((error.cause as MeshError).code).toBe('MESH_CONFIG_INVALID');
      expect(clock.now()).toBe(0);
    } finally {
      await mesh.close();
    }
  });
});
