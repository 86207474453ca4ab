import { createConfigSource, createMesh, type Mesh, type MeshEvent } from 'proxyless';
import { VirtualClock } from 'proxyless/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';
import { nextEvent } from '../../support/mesh-events.js';

/**
 * A rate limit's token bucket is never refilled by the mesh's own housekeeping: neither an idle
 * destination's eviction (before, the destination built again started with a full bucket) nor a
 * config reload changing `rps` or `burst` (before, the stage was built anew, full).
 */
describe('rate-limit tokens survive eviction and reloads', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer('api', (req, res) => {
      req.resume();
      res.end('ok');
    });
  });
  afterAll(async () => {
    await server.close();
  });

  /** How many of `n` calls are admitted now (the others fail with MESH_RATE_LIMITED). */
  const admitted = async (mesh: Mesh, n: number): Promise<number> => {
    let ok = 0;
    for (let i = 0; i < n; i++) {
      try {
        const res = await mesh.request('http://api/');
        await res.body.text();
        ok++;
      } catch (e) {
        expect(e).toMatchObject({ code: 'MESH_RATE_LIMITED' });
      }
    }
    return ok;
  };
  const removed = (mesh: Mesh) => nextEvent(mesh, (e) => e.type === 'service_removed');

  it('an idle eviction keeps the bucket: 301 tokens 301 s after draining 1000, not 1000', async () => {
    const clock = new VirtualClock(0);
    const mesh = createMesh({
      clock,
      env: {},
      services: { api: { endpoints: server.address, rateLimit: { rps: 1, burst: 1000 } } },
    });
    try {
      expect(await admitted(mesh, 1000)).toBe(1000);
      const evicted = removed(mesh);
      await clock.advance(301_000);
      await evicted;
      expect(await admitted(mesh, 1000)).toBe(301);
    } finally {
      await mesh.close();
    }
  });

  it('a slow bucket: no call before its next token is due, however often it is evicted', async () => {
    const clock = new VirtualClock(0);
    const mesh = createMesh({
      clock,
      env: {},
      destinationIdleTimeoutMs: 60_000,
      services: { api: { endpoints: server.address, rateLimit: { rps: 0.001 } } },
    });
    try {
      expect(await admitted(mesh, 2)).toBe(1);
      const evicted = removed(mesh);
      await clock.advance(61_000);
      await evicted;
      await expect(mesh.request('http://api/')).rejects.toMatchObject({
        code: 'MESH_RATE_LIMITED',
        details: { retryAfterMs: 939_000 },
      });
      const again = removed(mesh);
      await clock.advance(900_000);
      await again;
      await clock.advance(38_999);
      expect(await admitted(mesh, 1)).toBe(0);
      await clock.advance(1);
      expect(await admitted(mesh, 2)).toBe(1);
    } finally {
      await mesh.close();
    }
  });

  it('at most 1,024 buckets are kept: past that, an idle destination with an empty bucket stays until one fills', async () => {
    const clock = new VirtualClock(0);
    const n = 1025;
    const services: Record<string, { endpoints: string; rateLimit: { rps: number; burst: number } }> = {};
    for (let i = 0; i < n; i++)
      services[`s${i}`] = { endpoints: server.address, rateLimit: { rps: 0.01, burst: 1 } };
    const mesh = createMesh({ clock, env: {}, destinationIdleTimeoutMs: 60_000, services });
    const removedServices: string[] = [];
    const sub = mesh.onEvent((e) => {
      if (e.type === 'service_removed') removedServices.push(e.service);
    });
    try {
      // Each service spends its one token (the origin names the service).
      for (let i = 0; i < n; i++) {
        const res = await mesh.request(`http://s${i}/`);
        await res.body.text();
      }
      // The sweep at 60 s: 1,024 destinations go with their empty buckets kept; the last one stays.
      await clock.advance(61_000);
      expect(removedServices.length).toBe(1024);
      expect(removedServices).not.toContain(`s${n - 1}`);
      // The sweep at 90 s: no kept bucket is full yet (0.9 token), so still no room for it.
      await clock.advance(30_000);
      expect(removedServices).not.toContain(`s${n - 1}`);
      // It still has its own empty bucket, and an evicted one comes back with the bucket kept.
      await expect(mesh.request(`http://s${n - 1}/`)).rejects.toMatchObject({ code: 'MESH_RATE_LIMITED' });
      await expect(mesh.request('http://s0/')).rejects.toMatchObject({ code: 'MESH_RATE_LIMITED' });
      // By the sweep at 180 s the kept buckets are full again (a token per 100 s) and dropped, and
      // the destination that stayed, idle since 91 s with a full bucket, goes too.
      await clock.advance(60_000);
      expect(removedServices).not.toContain(`s${n - 1}`);
      await clock.advance(30_000);
      expect(removedServices).toContain(`s${n - 1}`);
    } finally {
      sub.dispose();
      await mesh.close();
    }
  }, 60_000);

  it('a reload while the destination is evicted applies to the bucket kept', async () => {
    const clock = new VirtualClock(0);
    const source = createConfigSource('cfg', {
      services: { api: { endpoints: server.address, rateLimit: { rps: 1, burst: 1000 } } },
    });
    const mesh = createMesh({ clock, env: {}, destinationIdleTimeoutMs: 60_000, configSource: source });
    try {
      expect(await admitted(mesh, 1000)).toBe(1000);
      const evicted = removed(mesh);
      await clock.advance(60_000);
      await evicted;
      await clock.advance(1000);
      // 61 tokens at the old rate; from now on 1 per 1000 s.
      const applied = nextEvent(mesh, (e) => e.type === 'config_applied');
      source.update({
        services: { api: { endpoints: server.address, rateLimit: { rps: 0.001, burst: 1000 } } },
      });
      await applied;
      await clock.advance(139_000);
      expect(await admitted(mesh, 100)).toBe(61);
    } finally {
      await mesh.close();
    }
  });

  it('a reload changing rps or burst keeps the tokens, and reports the stage changed in place', async () => {
    const clock = new VirtualClock(0);
    const services = (rateLimit: { rps: number; burst: number }, extra = {}) => ({
      services: { api: { endpoints: server.address, rateLimit }, ...extra },
    });
    const source = createConfigSource('cfg', services({ rps: 2, burst: 3 }));
    const mesh = createMesh({ clock, env: {}, configSource: source });
    const reload = async (doc: ReturnType<typeof services>) => {
      const applied = nextEvent(mesh, (e) => e.type === 'config_applied');
      source.update(doc);
      return (await applied) as Extract<MeshEvent, { type: 'config_applied' }>;
    };
    try {
      expect(await admitted(mesh, 5)).toBe(3);
      // rps 2 → 3 with an empty bucket: nothing more at the same instant.
      const first = await reload(services({ rps: 3, burst: 3 }));
      expect(first.rebuilt.get('api')).toEqual(['rateLimit']);
      expect(await admitted(mesh, 3)).toBe(0);
      // 250 ms at the new rate: 0.75 token; 334 ms: one.
      await clock.advance(250);
      expect(await admitted(mesh, 1)).toBe(0);
      await clock.advance(84);
      expect(await admitted(mesh, 2)).toBe(1);
      // burst 3 → 1 after a long idle: the stored tokens are capped at the new burst.
      await clock.advance(10_000);
      await reload(services({ rps: 3, burst: 1 }));
      expect(await admitted(mesh, 3)).toBe(1);
      // burst 1 → 2 with an empty bucket: no token appears.
      await reload(services({ rps: 3, burst: 2 }));
      expect(await admitted(mesh, 2)).toBe(0);
      // An unrelated change keeps the bucket as it is.
      await clock.advance(1000);
      await reload(services({ rps: 3, burst: 2 }, { other: { endpoints: server.address } }));
      expect(await admitted(mesh, 3)).toBe(2);
    } finally {
      await mesh.close();
    }
  });
});
