import { createMesh, MeshError } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConsulDouble, startConsulDouble } from '../../consul-double/server.js';
import { startServer, type TestServer } from '../../support/http-server.js';
import { nextEvent } from '../../support/mesh-events.js';

describe('createMesh with CONSUL_HTTP_ADDR (Consul API double)', () => {
  let consul: ConsulDouble;
  let servers: TestServer[];
  beforeAll(async () => {
    consul = await startConsulDouble();
    servers = await Promise.all(['a', 'b'].map((n) => startServer(n)));
  });
  afterAll(async () => {
    await consul.close();
    await Promise.all(servers.map((s) => s.close()));
  });

  it('registers through mesh.register() and discovers through mesh.fetch, selected by CONSUL_HTTP_ADDR alone', async () => {
    const env = { CONSUL_HTTP_ADDR: consul.address };
    const providers = servers.map(() => createMesh({ env }));
    const client = createMesh({ env });
    try {
      await Promise.all(
        servers.map((s, i) =>
          providers[i]!.register({
            service: 'orders',
            id: `orders-${s.name}`,
            address: '127.0.0.1',
            port: s.port,
            weights: { passing: 1, warning: 1 },
            check: { kind: 'ttl', ttlMs: 10_000 },
          }),
        ),
      );
      const seen = new Set<string>();
      for (let i = 0; i < 6; i++) {
        const res = await client.fetch('http://orders.service.consul/');
        expect(res.status).toBe(200);
        seen.add(await res.text());
      }
      expect([...seen].sort()).toEqual(['a', 'b']);
      expect(client.endpoints('orders')?.source).toBe('consul');
      // Closing a provider's mesh deregisters its instance.
      await providers[0]!.close();
      expect(Object.keys(consul.agentServices())).toEqual(['orders-b']);
    } finally {
      await Promise.all(providers.map((p) => p.close()));
      await client.close();
    }
  });

  it('answers Consul DNS-style tagged names: v2.<name>.service.consul reaches only instances tagged v2', async () => {
    const env = { CONSUL_HTTP_ADDR: consul.address };
    const provider = createMesh({ env });
    const client = createMesh({ env });
    try {
      await provider.register({
        service: 'carts',
        id: 'carts-a',
        address: '127.0.0.1',
        port: servers[0]!.port,
        tags: ['v1'],
      });
      await provider.register({
        service: 'carts',
        id: 'carts-b',
        address: '127.0.0.1',
        port: servers[1]!.port,
        tags: ['v2'],
      });
      const answers = new Set<string>();
      for (let i = 0; i < 6; i++)
        answers.add(await (await client.fetch('http://v2.carts.service.consul/')).text());
      expect([...answers]).toEqual(['b']);
      expect(client.endpoints('v2.carts')?.endpoints.map((e) => e.id)).toEqual(['carts-b']);
      const all = new Set<string>();
      for (let i = 0; i < 6; i++) all.add(await (await client.fetch('http://carts.service.consul/')).text());
      expect([...all].sort()).toEqual(['a', 'b']);
    } finally {
      await provider.close();
      await client.close();
    }
  });

  it('rejects bad Consul variables at createMesh, naming each', () => {
    expect(() =>
      createMesh({ env: { CONSUL_HTTP_ADDR: 'ftp://x:1', MESH_CONSUL_ONLY_PASSING: 'sometimes' } }),
    ).toThrow(
      /CONSUL_HTTP_ADDR[\s\S]*MESH_CONSUL_ONLY_PASSING|MESH_CONSUL_ONLY_PASSING[\s\S]*CONSUL_HTTP_ADDR/,
    );
  });

  it('fails calls at once while Consul refuses the ACL token, and serves them once the token is granted', async () => {
    // A refused token waited out the resolve timeout (here 120 s, past the test's timeout) on
    // every call to a new service.
    const tokens: Record<string, { policy: 'read' | 'write' }> = { admin: { policy: 'write' } };
    const d = await startConsulDouble({ acl: { defaultPolicy: 'deny', tokens } });
    const provider = createMesh({ env: { CONSUL_HTTP_ADDR: d.address, CONSUL_HTTP_TOKEN: 'admin' } });
    const client = createMesh({
      env: { CONSUL_HTTP_ADDR: d.address, CONSUL_HTTP_TOKEN: 'late-token' },
      resolveTimeoutMs: 120_000,
    });
    try {
      await provider.register({
        service: 'ledger',
        id: 'ledger-a',
        address: '127.0.0.1',
        port: servers[0]!.port,
      });
      const error = await client.request('http://ledger.service.consul/').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(MeshError.is(error, 'MESH_NO_ENDPOINTS')).toBe(true);
      const cause = (error as MeshError).cause as MeshError;
      expect(cause.details).toMatchObject({ status: 403, reason: 'access_denied' });
      expect(cause.message).toMatch(/ACL not found.*CONSUL_HTTP_TOKEN/);

      const served = nextEvent(
        client,
        (e) => e.type === 'endpoints_changed' && e.service === 'ledger' && e.set.endpoints.length === 1,
      );
      tokens['late-token'] = { policy: 'read' };
      await served;
      const res = await client.request('http://ledger.service.consul/');
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('a');
    } finally {
      await client.close();
      await provider.close();
      await d.close();
    }
  });
});
