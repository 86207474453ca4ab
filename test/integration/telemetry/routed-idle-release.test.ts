/**
 * Idle release of a routed service's destinations (probe46). A routing subset's breaker and panic
 * series (labelled `target`) go with the subset's destination when it is released idle, while the
 * service and its other subsets keep theirs; and a routed service released as a whole is removed
 * once — before, its own destination and its last target each fired `service_removed`, and the
 * own destination's removal fired even while a target of the service was still in use, and the
 * own destination was released while a call through a subset streamed (the service missing from
 * `mesh.services()` and `mesh.stats()` while it took calls).
 */
import { Registry } from 'prom-client';
import { createConfigSource, createMesh, type Mesh, type MeshOptions } from 'proxyless';
import { VirtualClock } from 'proxyless/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';
import { versionHeaderRouter, versionResolver } from '../routing/scenario.js';

describe("a routed service's idle release", () => {
  let v1: TestServer;
  let v2: TestServer;
  let endStream: (() => void) | undefined;
  beforeAll(async () => {
    v1 = await startServer('v1');
    v2 = await startServer('v2', (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain' });
      // `/stream`: the body stays open until the test ends it.
      if (req.url === '/stream') {
        res.write('v2 ');
        endStream = () => res.end('end');
      } else res.end('v2');
    });
  });
  afterAll(async () => {
    await Promise.all([v1.close(), v2.close()]);
  });

  /** `web` over v1 and v2, its resolver's subsets, and (`router`) the x-version header's route to v2. */
  const routes = (router = true) => {
    const endpoint = (version: string, s: TestServer) => {
      const [address, port] = s.address.split(':');
      return { address: address!, port: Number(port), metadata: { version } };
    };
    return {
      services: { web: { endpoints: [endpoint('v1', v1), endpoint('v2', v2)] } },
      configEntries: [
        { Kind: 'service-defaults', Name: 'web', Protocol: 'http' } as const,
        versionResolver(),
        ...(router ? [versionHeaderRouter()] : []),
      ],
    };
  };

  const routedMesh = (
    clock: VirtualClock,
    registry: Registry,
    source = createConfigSource('routes', routes()),
  ): Mesh =>
    createMesh({
      env: {},
      clock,
      destinationIdleTimeoutMs: 300,
      metrics: { registry },
      configSource: source,
    } as MeshOptions & { destinationIdleTimeoutMs: number });

  /** The services `mesh` reports removed, in order. */
  const removals = (mesh: Mesh): string[] => {
    const removed: string[] = [];
    mesh.onEvent((e) => {
      if (e.type === 'service_removed') removed.push(e.service);
    });
    return removed;
  };

  /** A routed mesh on a virtual clock, with its registry and the services it reports removed. */
  const withRoutedMesh = async (
    test: (ctx: { clock: VirtualClock; registry: Registry; mesh: Mesh; removed: string[] }) => Promise<void>,
  ): Promise<void> => {
    const clock = new VirtualClock(0);
    const registry = new Registry();
    const mesh = routedMesh(clock, registry);
    try {
      await test({ clock, registry, mesh, removed: removals(mesh) });
    } finally {
      endStream?.();
      await mesh.close();
    }
  };

  const call = async (mesh: Mesh, headers: Record<string, string> = {}): Promise<string> =>
    (await mesh.request('http://web/', { headers })).body.text();

  /** The breaker series of `web` at 1, as `target:state` (`-`: the service's own destination). */
  const breakers = async (registry: Registry): Promise<string[]> =>
    ((await registry.getMetricsAsJSON()).find((m) => m.name === 'mesh_circuit_breaker_state')?.values ?? [])
      .filter((v) => v.labels.service === 'web' && v.value === 1)
      .map((v) => `${v.labels.target ?? '-'}:${v.labels.state}`)
      .sort();

  it("an idle subset's series go with its destination; the busy subset and the service keep theirs", async () => {
    await withRoutedMesh(async ({ clock, registry, mesh, removed }) => {
      expect([await call(mesh), await call(mesh, { 'x-version': '2' })]).toEqual(['v1', 'v2']);
      expect(await breakers(registry)).toEqual([
        '-:closed',
        'v1.web.default.default.dc1:closed',
        'v2.web.default.default.dc1:closed',
      ]);
      // v1 keeps taking calls (every 100 ms, idle timeout 300 ms); v2 takes none for 3 s.
      for (let i = 0; i < 30; i++) {
        await clock.advance(100);
        expect(await call(mesh)).toBe('v1');
      }
      expect(Object.keys(mesh.stats('web')?.targets ?? {})).toEqual(['v1.web.default.default.dc1']);
      expect(await breakers(registry)).toEqual(['-:closed', 'v1.web.default.default.dc1:closed']);
      expect(removed).toEqual([]);
      // Called again, v2's destination and its series come back.
      expect(await call(mesh, { 'x-version': '2' })).toBe('v2');
      expect(await breakers(registry)).toContain('v2.web.default.default.dc1:closed');
    });
  });

  it('a routed service idle as a whole is removed once, with every series of its subsets', async () => {
    await withRoutedMesh(async ({ clock, registry, mesh, removed }) => {
      expect([await call(mesh), await call(mesh, { 'x-version': '2' })]).toEqual(['v1', 'v2']);
      for (let i = 0; i < 5; i++) await clock.advance(1000);
      expect(removed).toEqual(['web']);
      expect(await breakers(registry)).toEqual([]);
      expect(mesh.stats('web')).toBeUndefined();
    });
  });

  it('is not removed while a call to one of its subsets still streams: its call series keep counting it', async () => {
    await withRoutedMesh(async ({ clock, registry, mesh, removed }) => {
      const attempts = async (): Promise<number> =>
        ((await registry.getMetricsAsJSON()).find((m) => m.name === 'mesh_attempts_total')?.values ?? [])
          .filter((v) => v.labels.service === 'web')
          .reduce((n, v) => n + v.value, 0);
      expect(await call(mesh)).toBe('v1');
      const res = await mesh.request('http://web/stream', { headers: { 'x-version': '2' } });
      const chunks: string[] = [];
      const ended = (async () => {
        for await (const c of res.body) chunks.push(String(c));
      })();
      // The service's own destination and v1's are idle; v2's call streams on: the service stays
      // built and listed, its stats counting the call.
      for (let i = 0; i < 5; i++) await clock.advance(1000);
      expect(removed).toEqual([]);
      expect(mesh.services()).toEqual(['web']);
      expect(mesh.stats('web')?.inFlight).toBe(1);
      // An attempt is counted when its exchange ends: the stream's, into the series kept.
      expect(await attempts()).toBe(1);
      endStream?.();
      await ended;
      expect(chunks.join('')).toBe('v2 end');
      expect(await attempts()).toBe(2);
      // Once the stream ended and v2 is idle too, the service goes: once.
      for (let i = 0; i < 3; i++) await clock.advance(1000);
      expect(removed).toEqual(['web']);
    });
  });

  it('is not removed while a call streams through a target a new config version no longer routes to', async () => {
    const clock = new VirtualClock(0);
    const source = createConfigSource('routes', routes());
    const mesh = routedMesh(clock, new Registry(), source);
    const removed = removals(mesh);
    try {
      const res = await mesh.request('http://web/stream', { headers: { 'x-version': '2' } });
      const body = res.body.text();
      // The router goes: v2 is no target of web's chain any more, and its call streams on.
      const applied = new Promise<void>((resolve) => {
        mesh.onEvent((e) => {
          if (e.type === 'config_applied') resolve();
        });
      });
      source.update(routes(false));
      await applied;
      for (let i = 0; i < 5; i++) await clock.advance(1000);
      expect(removed).toEqual([]);
      expect(mesh.services()).toEqual(['web']);
      expect(mesh.stats('web')?.inFlight).toBe(1);
      endStream?.();
      expect(await body).toBe('v2 end');
      expect(mesh.stats('web')?.inFlight).toBe(0);
      for (let i = 0; i < 3; i++) await clock.advance(1000);
      expect(removed).toEqual(['web']);
    } finally {
      endStream?.();
      await mesh.close();
    }
  });
});
