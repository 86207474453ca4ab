/**
 * gRPC's `waitForReady` over real refused ports: when every endpoint of a service is unreachable
 * (TRANSIENT_FAILURE after a refused connect), a call fails at once with MESH_NO_HEALTHY_ENDPOINTS
 * — unless the service (`loadBalancer.waitForReady`, `MESH_LB_WAIT_FOR_READY`) or the call (the
 * `waitForReady` request option) asks to wait, within its deadline, for an endpoint to reconnect.
 * (probe26 docs defect 5: the docs named the setting, and nothing could set it.)
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMesh, type Mesh, MeshError, type ServiceOptions } from 'proxyless';
import { VirtualClock } from 'proxyless/testing';
import { afterEach, describe, expect, it } from 'vitest';

const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
});

function listen(port = 0): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    req.resume();
    res.end('ready');
  });
  servers.push(server);
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

/** A port nothing listens on (a server bound then closed). */
async function deadPort(): Promise<number> {
  const s = await listen();
  const { port } = s.address() as AddressInfo;
  servers.splice(servers.indexOf(s), 1);
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (e: unknown) => e,
  );
}

/** A mesh whose one endpoint refused its first connect: in TRANSIENT_FAILURE. */
async function unreachable(service: ServiceOptions, env: Record<string, string> = {}) {
  const port = await deadPort();
  const clock = new VirtualClock();
  const mesh = createMesh({
    env,
    clock,
    services: { d: { endpoints: `127.0.0.1:${port}`, retry: false, timeout: '30s', ...service } },
  });
  const first = await failure(mesh.request('http://d/'));
  expect(MeshError.is(first, 'MESH_CONNECT_FAILED')).toBe(true);
  expect(mesh.stats('d')?.endpoints[0]?.connectivity).toBe('TRANSIENT_FAILURE');
  return { mesh, clock, port };
}

/** Let the endpoint come back, then run the reconnect probe (backoff 1 s ± 20 %). */
async function comeBack(clock: VirtualClock, port: number): Promise<void> {
  await listen(port);
  await clock.advance(1_500);
}

describe('waitForReady', () => {
  let mesh: Mesh | undefined;
  afterEach(async () => {
    await mesh?.close();
    mesh = undefined;
  });

  it('off (the default): a call fails at once with MESH_NO_HEALTHY_ENDPOINTS, nothing sent', async () => {
    const u = await unreachable({});
    mesh = u.mesh;
    expect(MeshError.is(await failure(mesh.request('http://d/')), 'MESH_NO_HEALTHY_ENDPOINTS')).toBe(true);
  });

  it('the call option: the call waits for the endpoint to reconnect', async () => {
    const u = await unreachable({});
    mesh = u.mesh;
    const waiting = mesh.request('http://d/', { waitForReady: true });
    await comeBack(u.clock, u.port);
    expect(await (await waiting).body.text()).toBe('ready');
  });

  it('loadBalancer.waitForReady: every call of the service waits; a call can opt out', async () => {
    const u = await unreachable({ loadBalancer: { waitForReady: true } });
    mesh = u.mesh;
    expect(mesh.config('d').balancer.loadBalancer.waitForReady).toBe(true);
    const optOut = await failure(mesh.request('http://d/', { waitForReady: false }));
    expect(MeshError.is(optOut, 'MESH_NO_HEALTHY_ENDPOINTS')).toBe(true);
    const waiting = mesh.request('http://d/');
    await comeBack(u.clock, u.port);
    expect(await (await waiting).body.text()).toBe('ready');
  });

  it('MESH_LB_WAIT_FOR_READY sets it for every service', async () => {
    const u = await unreachable({}, { MESH_LB_WAIT_FOR_READY: 'yes' });
    mesh = u.mesh;
    expect(mesh.config('d').sources['loadBalancer.waitForReady']).toMatchObject({ layer: 'env' });
    const waiting = mesh.request('http://d/');
    await comeBack(u.clock, u.port);
    expect(await (await waiting).body.text()).toBe('ready');
  });

  it('waits no longer than the call’s deadline', async () => {
    const u = await unreachable({ loadBalancer: { waitForReady: true }, timeout: '2s' });
    mesh = u.mesh;
    const waiting = failure(mesh.request('http://d/'));
    await u.clock.advance(2_500);
    const e = await waiting;
    expect((e as MeshError).code).toBe('MESH_TIMEOUT');
  });
});
