/**
 * Two routes that send to one target with different settings share the target's cluster. In Envoy
 * under Consul a route's `RequestTimeout` and retry policy are route settings over the one cluster
 * the target names: one circuit breaker, one outlier state, one connection pool. Each route kept a
 * destination of its own before: a breaker set to open after 6 failed attempts saw 3 through each
 * route and stayed closed while every call failed, and calls through the two routes opened two
 * connections to the same endpoint. The routes' own settings still apply to their calls alone.
 */
import { createConfigSource, createMesh, type Mesh, type MeshEvent } from 'proxyless';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

const TARGET = 'api.default.default.dc1';
const BREAKER = { volumeThreshold: 6, errorThresholdPercentage: 50 };

describe('routes with their own settings to one target', () => {
  let api: TestServer;
  let answer = 503;
  const hits = new Map<string, number>();
  let mesh: Mesh | undefined;
  beforeAll(async () => {
    api = await startServer('api', (req, res) => {
      const path = req.url ?? '';
      hits.set(path, (hits.get(path) ?? 0) + 1);
      req.resume();
      res.statusCode = answer;
      res.end(path);
    });
  });
  afterEach(async () => {
    await mesh?.destroy();
    mesh = undefined;
    hits.clear();
    answer = 503;
  });
  afterAll(async () => {
    await api.close();
  });

  function documentWith(circuitBreaker: typeof BREAKER | false, rateLimit?: { rps: number; burst: number }) {
    const [address, port] = api.address.split(':');
    return {
      services: {
        api: {
          endpoints: [{ address: address!, port: Number(port) }],
          retry: false as const,
          outlierDetection: false as const,
          circuitBreaker,
          ...(rateLimit ? { rateLimit } : {}),
        },
      },
      configEntries: [
        { Kind: 'service-defaults', Name: 'api', Protocol: 'http' } as const,
        {
          Kind: 'service-router',
          Name: 'api',
          Routes: [
            { Match: { HTTP: { PathPrefix: '/a' } }, Destination: { RequestTimeout: '5s' } },
            {
              Match: { HTTP: { PathPrefix: '/b' } },
              Destination: { NumRetries: 2, RetryOnStatusCodes: [503] },
            },
          ],
        } as const,
      ],
    };
  }

  function meshWithTwoRoutes(source = createConfigSource('routes', documentWith(BREAKER))): Mesh {
    // One connection per pool: a pool of each route's own would open one each.
    return createMesh({ connectionsPerEndpoint: 1, configSource: source });
  }

  async function outcome(path: string) {
    const r = await mesh!.request(`http://api${path}`).catch((e: Error) => e);
    if (r instanceof Error) return (r as Error & { code?: string }).code;
    await r.body.dump();
    return r.statusCode;
  }

  it('share one circuit breaker: failures through both routes open it for both', async () => {
    mesh = meshWithTwoRoutes();
    const events: MeshEvent[] = [];
    mesh.onEvent((e) => {
      if (e.type === 'circuit_breaker') events.push(e);
    });
    // 2 attempts through /a, 3 through /b (its route retries 503 twice), 1 more through /a: 6.
    expect(await outcome('/a/1')).toBe(503);
    expect(await outcome('/a/2')).toBe(503);
    expect(await outcome('/b/1')).toBe(503);
    expect(await outcome('/a/3')).toBe(503);
    // Each route's settings applied to its calls alone: /b's retries, none for /a.
    expect(hits.get('/b/1')).toBe(3);
    expect(hits.get('/a/1')).toBe(1);
    expect(api.requests).toBe(6);
    // The one breaker saw all six and is open, for the calls of both routes.
    expect(await outcome('/b/2')).toBe('MESH_CIRCUIT_OPEN');
    expect(await outcome('/a/4')).toBe('MESH_CIRCUIT_OPEN');
    expect(api.requests).toBe(6);
    expect(events.filter((e) => e.type === 'circuit_breaker' && e.state === 'open')).toHaveLength(1);
    expect(mesh.stats('api')?.targets?.[TARGET]?.circuitBreaker).toBe('open');
  });

  it('share one connection pool: calls through both routes reuse one connection', async () => {
    answer = 200;
    mesh = meshWithTwoRoutes();
    const before = api.connections.accepted;
    for (const path of ['/a/1', '/b/1', '/a/2', '/b/2']) {
      const r = await mesh.request(`http://api${path}`);
      expect(r.statusCode).toBe(200);
      await r.body.dump();
    }
    expect(api.connections.accepted - before).toBe(1);
    expect(mesh.stats('api')?.targets?.[TARGET]?.inFlight).toBe(0);
  });

  it('follow a config change of the target: the breaker off, a rate limit on, for both routes', async () => {
    const source = createConfigSource('routes', documentWith(BREAKER));
    mesh = meshWithTwoRoutes(source);
    for (const path of ['/a/1', '/a/2', '/b/1', '/a/3']) expect(await outcome(path)).toBe(503);
    expect(await outcome('/b/2')).toBe('MESH_CIRCUIT_OPEN');
    const applied = new Promise<void>((resolve) => {
      mesh!.onEvent((e) => {
        if (e.type === 'config_applied') resolve();
      });
    });
    // One token a thousand seconds: the first call after the change takes it, the next is refused.
    source.update(documentWith(false, { rps: 0.001, burst: 1 }));
    await applied;
    answer = 200;
    expect(await outcome('/a/4')).toBe(200);
    expect(await outcome('/b/3')).toBe('MESH_RATE_LIMITED');
    expect(await outcome('/a/5')).toBe('MESH_RATE_LIMITED');
    expect(mesh.stats('api')?.targets?.[TARGET]?.circuitBreaker).toBeUndefined();
  });
});
