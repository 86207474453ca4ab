import { LOAD_BALANCER_POLICIES } from '@proxyless/balancer';
import { createMesh, type Mesh } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

/** Every load-balancing policy, end to end through mesh.fetch over three real servers. */
describe('every load-balancing policy through mesh.fetch (#5)', () => {
  let servers: TestServer[];
  const meshes: Mesh[] = [];
  beforeAll(async () => {
    servers = await Promise.all(['a', 'b', 'c'].map((n) => startServer(n)));
  });
  afterAll(async () => {
    await Promise.all(meshes.map((m) => m.close()));
    await Promise.all(servers.map((s) => s.close()));
  });

  function meshWith(loadBalancer: Record<string, unknown>, weights = [1, 1, 1]): Mesh {
    const m = createMesh({
      env: {},
      services: {
        api: {
          endpoints: servers.map((s, i) => ({ address: '127.0.0.1', port: s.port, weight: weights[i]! })),
          loadBalancer: loadBalancer as Record<string, string>,
        },
      },
    });
    meshes.push(m);
    return m;
  }

  async function counts(
    m: Mesh,
    n: number,
    headers: (i: number) => Record<string, string> = () => ({}),
  ): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const res = await m.fetch('http://api/', { headers: headers(i) });
      expect(res.status).toBe(200);
      const who = await res.text();
      out.set(who, (out.get(who) ?? 0) + 1);
    }
    return out;
  }

  it('peak_ewma serves every request and measures each endpoint it used', async () => {
    const m = meshWith({ policy: 'peak_ewma' });
    const c = await counts(m, 60);
    expect([...c.values()].reduce((a, n) => a + n, 0)).toBe(60);
    const used = m.stats('api')!.endpoints.filter((e) => e.requests > 0);
    expect(used.length).toBeGreaterThan(0);
    expect(used.every((e) => e.ewmaMs !== undefined)).toBe(true);
  });

  // peak_ewma is left out: with one request at a time it rightly keeps to the fastest endpoint.
  it.each(LOAD_BALANCER_POLICIES.filter((p) => !['ring_hash', 'maglev', 'peak_ewma'].includes(p)))(
    '%s spreads sequential requests over all three endpoints',
    async (policy) => {
      const c = await counts(meshWith({ policy }), 60);
      expect([...c.keys()].sort()).toEqual(['a', 'b', 'c']);
      expect(meshes.at(-1)!.stats('api')?.policy).toBe(policy);
    },
  );

  it('weighted_round_robin honours endpoint weights 1:2:3 exactly over a full cycle', async () => {
    const c = await counts(meshWith({ policy: 'weighted_round_robin' }, [1, 2, 3]), 60);
    expect([c.get('a'), c.get('b'), c.get('c')]).toEqual([10, 20, 30]);
  });

  it("round_robin (the default) honours weights 1:2:3 as Envoy's ROUND_ROBIN does, and =n weights from MESH_ENDPOINTS_*", async () => {
    const c = await counts(meshWith({ policy: 'round_robin' }, [1, 2, 3]), 60);
    expect([c.get('a'), c.get('b'), c.get('c')]).toEqual([10, 20, 30]);
    const fromEnv = createMesh({
      env: {
        MESH_ENDPOINTS_API: servers
          .map((s, i) => `127.0.0.1:${s.port}=${i === 0 ? 1 : i === 1 ? 1 : 8}`)
          .join(','),
      },
    });
    meshes.push(fromEnv);
    const e = await counts(fromEnv, 50);
    expect([e.get('a'), e.get('b'), e.get('c')]).toEqual([5, 5, 40]);
  });

  it.each(['ring_hash', 'maglev'])(
    '%s sends one key to one endpoint and spreads many keys',
    async (policy) => {
      const m = meshWith({ policy, hashOn: { header: 'x-user' } });
      const sticky = await counts(m, 20, () => ({ 'x-user': 'user-42' }));
      expect(sticky.size).toBe(1);
      const spread = await counts(m, 90, (i) => ({ 'x-user': `user-${i}` }));
      expect(spread.size).toBe(3);
    },
  );
});
