import {
  type BalancerEvent,
  createBalancer,
  httpHealthProbe,
  resolveBalancerConfig,
} from '@proxyless/balancer';
import { createEndpoint, createEndpointSet, noopLogger, systemClock, systemRandom } from '@proxyless/core';
import { createMesh, type Mesh } from 'proxyless';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

const servers: TestServer[] = [];
const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** A server whose `/healthz` answers `healthy()`'s verdict and whose `/` answers its name. */
async function server(name: string, healthy: () => boolean): Promise<TestServer> {
  const s = await startServer(name, (req, res) => {
    req.resume();
    if (req.url === '/healthz') {
      res.writeHead(healthy() ? 200 : 503);
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(name);
  });
  servers.push(s);
  return s;
}

function endpointOf(s: TestServer) {
  return createEndpoint({ address: s.host, port: s.port });
}

describe('httpHealthProbe', () => {
  it('is healthy on 2xx, unhealthy on 5xx, and rejects when nothing listens', async () => {
    let ok = true;
    const s = await server('a', () => ok);
    const e = endpointOf(s);
    expect(await httpHealthProbe(e, '/healthz', new AbortController().signal)).toBe(true);
    ok = false;
    expect(await httpHealthProbe(e, '/healthz', new AbortController().signal)).toBe(false);
    const gone = await startServer('gone');
    const goneEndpoint = endpointOf(gone);
    await gone.close();
    await expect(httpHealthProbe(goneEndpoint, '/healthz', new AbortController().signal)).rejects.toThrow();
  });
});

describe('active health checks on the system clock', () => {
  it('marks a failing endpoint unhealthy and healthy again, with events', async () => {
    let ok = true;
    const s = await server('a', () => ok);
    const other = await server('b', () => true);
    const b = createBalancer(
      resolveBalancerConfig({
        healthCheck: {
          path: '/healthz',
          interval: 30,
          timeout: 25,
          healthyThreshold: 1,
          unhealthyThreshold: 2,
        },
      }),
      { service: 'api', clock: systemClock, random: systemRandom, logger: noopLogger },
    );
    closers.push(() => b.close());
    const next = (healthy: boolean) =>
      new Promise<BalancerEvent>((resolve) => {
        const off = b.onEvent((e) => {
          if (e.type === 'health_check' && e.healthy === healthy) {
            off();
            resolve(e);
          }
        });
      });
    b.update(
      createEndpointSet({
        service: 'api',
        version: 1,
        endpoints: [endpointOf(s), endpointOf(other)],
        source: 'static',
        updatedAt: 0,
      }),
    );
    const down = next(false);
    ok = false;
    expect(await down).toMatchObject({ endpoint: `${s.host}:${s.port}` });
    expect(b.stats().endpoints[0]!.checkHealthy).toBe(false);
    const up = next(true);
    ok = true;
    await up;
    expect(b.stats().endpoints[0]!.checkHealthy).toBe(true);
  });
});

describe('active health checks through the mesh', () => {
  it('stops sending traffic to an endpoint that fails its health check', async () => {
    const a = await server('a', () => true);
    const sick = await server('sick', () => false);
    const c = await server('c', () => true);
    const m: Mesh = createMesh({
      env: {},
      services: {
        api: {
          endpoints: [a, sick, c].map((s) => s.address).join(','),
          healthCheck: { path: '/healthz', interval: '20ms', timeout: '15ms', unhealthyThreshold: 1 },
        },
      },
    });
    closers.push(() => m.close());
    // Bounded poll: once the first probe has failed, `sick` gets nothing more.
    const deadline = performance.now() + 5000;
    let streak = 0;
    while (streak < 30 && performance.now() < deadline) {
      const who = await (await m.fetch('http://api/')).text();
      streak = who === 'sick' ? 0 : streak + 1;
    }
    expect(streak).toBe(30);
  });
});
