/**
 * A route to a whole service (`web` /admin/ → `admin`, no subset, no resolver setting of its own)
 * sends to the service's own destination: in Consul the route's target and a direct upstream of
 * `admin` name the same cluster, and Envoy keeps one breaker, one outlier state and one pool for
 * it. Before, the routed calls had a destination of their own: `admin`'s breaker, set to open after
 * 4 failed attempts, saw 2 direct and 2 routed failures and stayed closed (and its gauge said
 * closed while the routed calls' breaker opened), and the two paths opened a connection each. A
 * router's catch-all sends to the service itself as a whole: its calls failed `MESH_CIRCUIT_OPEN`
 * while `mesh.stats('web').circuitBreaker` (the own destination's, which no call went through)
 * said `closed`.
 */
import { Registry } from 'prom-client';
import { createConfigSource, createMesh, type Mesh } from 'proxyless';
import { VirtualClock } from 'proxyless/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

describe('a route to a whole service', () => {
  let web: TestServer;
  let admin: TestServer;
  let answer = 503;
  let mesh: Mesh | undefined;
  /** Responses of `/stream` held open until released. */
  const held: Array<() => void> = [];
  beforeAll(async () => {
    web = await startServer('web', (req, res) => {
      req.resume();
      res.writeHead(req.url?.startsWith('/fail') ? 503 : 200);
      if (req.url === '/stream') {
        res.write('first');
        held.push(() => res.end('last'));
      } else res.end('web');
    });
    admin = await startServer('admin', (req, res) => {
      req.resume();
      res.statusCode = answer;
      res.end('admin');
    });
  });
  afterEach(async () => {
    for (const release of held.splice(0)) release();
    await mesh?.destroy();
    mesh = undefined;
    answer = 503;
  });
  afterAll(async () => {
    await web.close();
    await admin.close();
  });

  function meshWithAdminRoute(registry?: Registry, clock?: VirtualClock): Mesh {
    return createMesh({
      ...(clock ? { clock, destinationIdleTimeoutMs: 300 } : {}),
      // One connection per pool: a pool of the routed calls' own would open a second one.
      connectionsPerEndpoint: 1,
      ...(registry ? { metrics: { registry } } : {}),
      configSource: createConfigSource('routes', {
        services: {
          web: {
            endpoints: web.address,
            retry: false,
            outlierDetection: false,
            circuitBreaker: { volumeThreshold: 4, errorThresholdPercentage: 50 },
          },
          admin: {
            endpoints: admin.address,
            retry: false,
            outlierDetection: false,
            circuitBreaker: { volumeThreshold: 4, errorThresholdPercentage: 50 },
          },
        },
        configEntries: [
          { Kind: 'service-defaults', Name: 'web', Protocol: 'http' },
          { Kind: 'service-defaults', Name: 'admin', Protocol: 'http' },
          {
            Kind: 'service-router',
            Name: 'web',
            Routes: [
              {
                Match: { HTTP: { PathPrefix: '/admin/' } },
                Destination: { Service: 'admin', PrefixRewrite: '/' },
              },
            ],
          },
        ],
      }),
    });
  }

  async function outcome(url: string) {
    const r = await mesh!.request(url).catch((e: Error) => e);
    if (r instanceof Error) return (r as Error & { code?: string }).code;
    await r.body.dump();
    return r.statusCode;
  }

  it("shares the service's breaker with its direct calls", async () => {
    const registry = new Registry();
    mesh = meshWithAdminRoute(registry);
    expect(await outcome('http://admin/x')).toBe(503);
    expect(await outcome('http://web/admin/x')).toBe(503);
    expect(await outcome('http://admin/y')).toBe(503);
    expect(await outcome('http://web/admin/y')).toBe(503);
    expect(admin.requests).toBe(4);
    // Open after the four, for both ways in; nothing more reaches the server.
    expect(await outcome('http://admin/z')).toBe('MESH_CIRCUIT_OPEN');
    expect(await outcome('http://web/admin/z')).toBe('MESH_CIRCUIT_OPEN');
    expect(admin.requests).toBe(4);
    expect(mesh.stats('admin')?.circuitBreaker).toBe('open');
    expect(mesh.stats('web')?.targets?.['admin.default.default.dc1']?.circuitBreaker).toBe('open');
    const gauge = (await registry.getSingleMetric('mesh_circuit_breaker_state')?.get())?.values ?? [];
    expect(gauge.filter((v) => v.labels.service === 'admin' && v.labels.state === 'open')).toEqual([
      expect.objectContaining({ value: 1 }),
    ]);
  });

  it("shares the service's connection pool with its direct calls", async () => {
    answer = 200;
    mesh = meshWithAdminRoute();
    const before = admin.connections.accepted;
    for (const url of ['http://admin/1', 'http://web/admin/2', 'http://admin/3', 'http://web/admin/4'])
      expect(await outcome(url)).toBe(200);
    expect(admin.connections.accepted - before).toBe(1);
  });

  it("counts a call to the service's own whole-service target once", async () => {
    mesh = meshWithAdminRoute();
    // `web`'s catch-all route goes to `web` itself: its own destination carries the call.
    const r = await mesh.request('http://web/stream');
    expect(r.statusCode).toBe(200);
    expect(mesh.stats('web')?.inFlight).toBe(1);
    for (const release of held.splice(0)) release();
    expect(await r.body.text()).toBe('firstlast');
    expect(mesh.stats('web')?.inFlight).toBe(0);
  });

  it('releases the routing service when idle, while the service its route reaches stays busy', async () => {
    answer = 200;
    const clock = new VirtualClock(0);
    mesh = meshWithAdminRoute(undefined, clock);
    const removed: string[] = [];
    mesh.onEvent((e) => {
      if (e.type === 'service_removed') removed.push(e.service);
    });
    expect(await outcome('http://web/admin/once')).toBe(200);
    // `admin` takes a direct call every 100 ms (idle timeout 300 ms); `web` takes none.
    for (let i = 0; i < 30; i++) {
      await clock.advance(100);
      expect(await outcome('http://admin/direct')).toBe(200);
    }
    expect(removed).toEqual(['web']);
    expect(mesh.services()).toEqual(['admin']);
  });

  it("reports the breaker its catch-all route's calls go through: the service's own", async () => {
    const registry = new Registry();
    mesh = meshWithAdminRoute(registry);
    // `web`'s router has no route for these: its catch-all sends them to `web` as a whole.
    for (let i = 0; i < 4; i++) expect(await outcome(`http://web/fail/${i}`)).toBe(503);
    expect(await outcome('http://web/fail/4')).toBe('MESH_CIRCUIT_OPEN');
    expect(mesh.stats('web')?.circuitBreaker).toBe('open');
    const gauge = (await registry.getSingleMetric('mesh_circuit_breaker_state')?.get())?.values ?? [];
    expect(
      gauge
        .filter((v) => v.labels.service === 'web' && v.value === 1)
        .map((v) => [v.labels.target, v.labels.state]),
    ).toEqual([[undefined, 'open']]);
  });
});
