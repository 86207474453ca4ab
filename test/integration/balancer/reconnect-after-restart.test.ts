/**
 * A service whose only endpoint restarts: its server goes away for a while, then listens again on
 * the same port. The first refused connect takes the endpoint out of picking (TRANSIENT_FAILURE)
 * and calls fail at once with MESH_NO_HEALTHY_ENDPOINTS until a reconnect attempt connects.
 *
 * With gRPC's reconnect bounds (1 s, ×1.6, up to 120 s), the attempts grew apart with the outage:
 * after 30 s away the next attempt was up to 17 s off, and every call in between failed while the
 * server answered (measured on loopback: a 20 s restart, 7.2 s of failures after the return).
 * The defaults are now Linkerd's bounds (100 ms up to 500 ms): the endpoint takes traffic again
 * within about half a second of its return, however long it was away.
 *
 * The server and every reconnect attempt are real (TCP on 127.0.0.1); the mesh's clock is virtual,
 * so the outage is 30 s of its time, and each attempt's refusal is awaited as the event it causes.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMesh, type Mesh, MeshError, type MeshEvent } from 'proxyless';
import { VirtualClock } from 'proxyless/testing';
import { afterEach, describe, expect, it } from 'vitest';

const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

function listen(port = 0): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    req.resume();
    res.end('back');
  });
  servers.push(server);
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

async function stop(server: http.Server): Promise<void> {
  servers.splice(servers.indexOf(server), 1);
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
}

const failure = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

/** Connectivity moves of the service's endpoint, as events; `next(to)` awaits the next move to `to`. */
function connectivity(mesh: Mesh) {
  const waiting: { to: string; resolve: () => void }[] = [];
  const sub = mesh.onEvent((e: MeshEvent) => {
    if (e.type !== 'balancer' || e.event.type !== 'connectivity') return;
    const to = e.event.to;
    for (const w of waiting.splice(0)) {
      if (w.to === to) w.resolve();
      else waiting.push(w);
    }
  });
  return {
    next: (to: string) => new Promise<void>((resolve) => waiting.push({ to, resolve })),
    dispose: () => sub.dispose(),
  };
}

describe('a single-endpoint service whose server restarts', () => {
  let mesh: Mesh | undefined;
  afterEach(async () => {
    await mesh?.close();
    mesh = undefined;
  });

  async function outage(env: Record<string, string>, awayMs: number) {
    const server = await listen();
    const { port } = server.address() as AddressInfo;
    const clock = new VirtualClock();
    mesh = createMesh({ env, clock, services: { d: { endpoints: `127.0.0.1:${port}`, retry: false } } });
    const m = mesh;
    const moves = connectivity(m);
    const endpoint = () => m.stats('d')!.endpoints[0]!;
    expect(await (await m.request('http://d/')).body.text()).toBe('back');

    await stop(server);
    const refused = moves.next('TRANSIENT_FAILURE');
    expect(MeshError.is(await failure(m.request('http://d/')), 'MESH_CONNECT_FAILED')).toBe(true);
    await refused;
    const start = clock.now();
    let attempts = 0;
    // Each reconnect attempt while the server is away: a real refused connect.
    while (clock.now() - start < awayMs) {
      const wait = endpoint().reconnectInMs;
      expect(wait).toBeDefined();
      const failed = moves.next('TRANSIENT_FAILURE');
      await clock.advance(wait!);
      await failed;
      attempts++;
      expect(MeshError.is(await failure(m.request('http://d/')), 'MESH_NO_HEALTHY_ENDPOINTS')).toBe(true);
    }

    await listen(port);
    const back = clock.now();
    const ready = moves.next('READY');
    await clock.advance(endpoint().reconnectInMs!);
    await ready;
    const recoveredAfter = clock.now() - back;
    expect(await (await m.request('http://d/')).body.text()).toBe('back');
    moves.dispose();
    return { recoveredAfter, attempts, awayFor: back - start };
  }

  it('takes traffic again within 600 ms of the server’s return after 30 s away (defaults)', async () => {
    const r = await outage({}, 30_000);
    expect(r.recoveredAfter).toBeLessThanOrEqual(600);
    // Bounded probing meanwhile: one connect per ≤ 500 ms (± 20 %) after the first few.
    expect(r.attempts).toBeLessThanOrEqual(Math.ceil(r.awayFor / 400) + 5);
  });

  it('MESH_LB_CONNECT_BACKOFF_* set the pacing: gRPC’s bounds leave it out for seconds more', async () => {
    const r = await outage(
      { MESH_LB_CONNECT_BACKOFF_INITIAL: '1s', MESH_LB_CONNECT_BACKOFF_MAX: '120s' },
      30_000,
    );
    expect(mesh!.config('d').sources['loadBalancer.connectBackoff.max']).toMatchObject({ layer: 'env' });
    // Attempts at 1, 2.6, 5.2, 9.3, 15.8, 26.3, then 43 s (± 20 %): well after the return.
    expect(r.recoveredAfter).toBeGreaterThan(3_000);
    expect(r.attempts).toBeLessThanOrEqual(8);
  });
});
