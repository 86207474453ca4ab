import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { VirtualClock } from '@proxyless/core/testing';
import { Registry } from 'prom-client';
import { createMesh, type Mesh } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer, until } from '../../support/http-server.js';
import { nextEvent } from '../../support/mesh-events.js';

/** `{ labelValue: value }` of one gauge's series for `service`, keyed by `label`. */
async function series(
  registry: Registry,
  name: string,
  service: string,
  label = 'state',
): Promise<Record<string, number>> {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const out: Record<string, number> = {};
  for (const v of (await metric.get()).values) {
    if (v.labels.service === service) out[String(v.labels[label] ?? '')] = v.value;
  }
  return out;
}

/** A loopback port nothing listens on (connects to it are refused). */
async function refusedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** One endpoint of `service` as the admin server's `/clusters` shows it. */
async function clustersEndpoint(
  mesh: Mesh,
  service: string,
  id: string,
): Promise<{ id: string; health?: string; unreachable?: boolean } | undefined> {
  const url = await mesh.admin();
  const clusters = (await (await fetch(`${url}/clusters`)).json()) as {
    services: Array<{
      name: string;
      endpoints: Array<{ id: string; health?: string; unreachable?: boolean }>;
    }>;
  };
  return clusters.services.find((s) => s.name === service)?.endpoints.find((e) => e.id === id);
}

async function call(mesh: Mesh, url: string): Promise<void> {
  const res = await mesh.request(url);
  await res.body.dump();
}

/** `mesh_endpoints` counts endpoints by the state the balancer picks by, as `/clusters` shows it. */
describe('mesh_endpoints follows the balancer', () => {
  const sick = new Set<string>();
  let a: TestServer;
  let b: TestServer;
  beforeAll(async () => {
    const handler = (name: string) => (req: { url?: string }, res: import('node:http').ServerResponse) => {
      if (req.url === '/healthz') res.statusCode = sick.has(name) ? 500 : 204;
      res.end(name);
    };
    a = await startServer('a', handler('a'));
    b = await startServer('b', handler('b'));
  });
  afterAll(async () => {
    await a.close();
    await b.close();
  });

  it('an endpoint failing its active health check is unhealthy, and healthy again once it passes', async () => {
    const clock = new VirtualClock(0);
    const registry = new Registry();
    const mesh = createMesh({
      env: { MESH_ADMIN_PORT: '0' },
      clock,
      metrics: { registry },
      services: {
        svc: {
          endpoints: `${a.address},${b.address}`,
          healthCheck: { path: '/healthz', interval: '10s', unhealthyThreshold: 1, healthyThreshold: 1 },
          outlierDetection: false,
        },
      },
    });
    try {
      sick.add('a');
      const failed = nextEvent(
        mesh,
        (e) => e.type === 'balancer' && e.event.type === 'health_check' && !e.event.healthy,
      );
      await call(mesh, 'http://svc/');
      // The first probes are due when the destination is built; the verdict follows their answers.
      await clock.advance(0);
      await failed;
      expect(mesh.stats('svc')?.endpoints.find((e) => e.id === a.address)?.checkHealthy).toBe(false);
      expect(await series(registry, 'mesh_endpoints', 'svc')).toEqual({
        healthy: 1,
        degraded: 0,
        unhealthy: 1,
        unreachable: 0,
        ejected: 0,
      });
      // The admin page says the same.
      expect((await clustersEndpoint(mesh, 'svc', a.address))?.health).toBe('critical');

      sick.delete('a');
      const passed = nextEvent(
        mesh,
        (e) => e.type === 'balancer' && e.event.type === 'health_check' && e.event.healthy === true,
      );
      await clock.advance(11_000);
      await passed;
      expect(await series(registry, 'mesh_endpoints', 'svc')).toMatchObject({ healthy: 2, unhealthy: 0 });
    } finally {
      sick.clear();
      await mesh.close();
    }
  });

  it('an endpoint whose connect is refused is unreachable until it connects again', async () => {
    const registry = new Registry();
    const dead = await refusedPort();
    const deadId = `127.0.0.1:${dead}`;
    const mesh = createMesh({
      env: { MESH_ADMIN_PORT: '0' },
      metrics: { registry },
      services: {
        svc: { endpoints: `${a.address},${deadId}`, outlierDetection: false, retry: { maxRetries: 2 } },
      },
    });
    try {
      const refused = nextEvent(
        mesh,
        (e) =>
          e.type === 'balancer' &&
          e.event.type === 'connectivity' &&
          e.event.endpoint === deadId &&
          e.event.to === 'TRANSIENT_FAILURE',
      );
      // Round robin reaches the dead endpoint within two calls; the retry goes to the live one.
      await call(mesh, 'http://svc/');
      await call(mesh, 'http://svc/');
      await refused;
      expect(mesh.stats('svc')?.endpoints.find((e) => e.id === deadId)?.connectivity).toBe(
        'TRANSIENT_FAILURE',
      );
      expect(await series(registry, 'mesh_endpoints', 'svc')).toEqual({
        healthy: 1,
        degraded: 0,
        unhealthy: 0,
        unreachable: 1,
        ejected: 0,
      });
      expect((await clustersEndpoint(mesh, 'svc', deadId))?.unreachable).toBe(true);
      expect((await clustersEndpoint(mesh, 'svc', a.address))?.unreachable).toBeUndefined();
    } finally {
      await mesh.close();
    }
  });
});

/** The breaker and panic gauges exist from the destination's first build, as the docs say. */
describe('mesh_circuit_breaker_state and mesh_panic_mode of a live service', () => {
  let server: TestServer;
  let dir: string;
  beforeAll(async () => {
    server = await startServer('a');
    dir = mkdtempSync(path.join(os.tmpdir(), 'mesh-gauges-'));
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('start closed and not in panic; a breaker turned off drops its series; a removed service drops all', async () => {
    const file = path.join(dir, 'mesh.json');
    const doc = (services: Record<string, unknown>): string => JSON.stringify({ services });
    writeFileSync(file, doc({ api: { endpoints: server.address } }));
    const registry = new Registry();
    const mesh = createMesh({ env: {}, configFile: file, metrics: { registry } });
    try {
      await call(mesh, 'http://api/');
      expect(mesh.stats('api')?.circuitBreaker).toBe('closed');
      expect(await series(registry, 'mesh_circuit_breaker_state', 'api')).toEqual({
        closed: 1,
        open: 0,
        'half-open': 0,
      });
      expect(await series(registry, 'mesh_panic_mode', 'api')).toEqual({ '': 0 });

      let applied = nextEvent(mesh, (e) => e.type === 'config_applied');
      writeFileSync(file, doc({ api: { endpoints: server.address, circuitBreaker: false } }));
      await mesh.reloadConfig();
      await applied;
      expect(mesh.stats('api')?.circuitBreaker).toBeUndefined();
      expect(await series(registry, 'mesh_circuit_breaker_state', 'api')).toEqual({});
      expect(await series(registry, 'mesh_panic_mode', 'api')).toEqual({ '': 0 });

      applied = nextEvent(mesh, (e) => e.type === 'config_applied');
      writeFileSync(file, doc({ api: { endpoints: server.address } }));
      await mesh.reloadConfig();
      await applied;
      expect(await series(registry, 'mesh_circuit_breaker_state', 'api')).toEqual({
        closed: 1,
        open: 0,
        'half-open': 0,
      });

      // No longer named: the destination goes, and every series of the service with it.
      const removed = nextEvent(mesh, (e) => e.type === 'service_removed');
      writeFileSync(file, doc({ other: { endpoints: server.address } }));
      await mesh.reloadConfig();
      await removed;
      await until(() => mesh.stats('api') === undefined, 'api released');
      expect(await series(registry, 'mesh_circuit_breaker_state', 'api')).toEqual({});
      expect(await series(registry, 'mesh_panic_mode', 'api')).toEqual({});
      expect(await series(registry, 'mesh_endpoints', 'api')).toEqual({});
    } finally {
      await mesh.close();
    }
  });
});
