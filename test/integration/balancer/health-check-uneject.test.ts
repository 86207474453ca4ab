/**
 * Envoy's `successful_active_health_check_uneject_host` (true by default): with a `healthCheck`,
 * an endpoint ejected by outlier detection is readmitted at its first passing check instead of
 * after `baseEjectionTime` (30 s). A backend that failed a burst of requests (as one restarted in
 * place fails the requests in flight on its connections) and is fine again serves at once.
 * Real servers on 127.0.0.1; the mesh's clock is virtual (the health check runs on it).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMesh, type Mesh, type MeshEvent } from 'proxyless';
import { VirtualClock } from 'proxyless/testing';
import { afterEach, describe, expect, it } from 'vitest';

const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

/** A backend whose traffic fails while `failing` is set; its `/healthz` passes throughout. */
async function backend(name: string) {
  const state = { failing: false, checks: 0, checked: () => {} };
  const server = http.createServer((req, res) => {
    req.resume();
    if (req.url === '/healthz') {
      res.on('finish', () => {
        state.checks++;
        state.checked();
      });
      return res.end('ok');
    }
    res.statusCode = state.failing ? 500 : 200;
    res.end(name);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { state, address: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe('a passing active health check ends an ejection', () => {
  let mesh: Mesh | undefined;
  afterEach(async () => {
    await mesh?.close();
    mesh = undefined;
  });

  async function run(outlierDetection: object) {
    const [a, b] = [await backend('a'), await backend('b')];
    const clock = new VirtualClock();
    mesh = createMesh({
      env: {},
      clock,
      services: {
        api: {
          endpoints: `${a.address},${b.address}`,
          retry: false,
          loadBalancer: { policy: 'round_robin' },
          healthCheck: { path: '/healthz', interval: '5s', timeout: '1s' },
          outlierDetection,
        },
      },
    });
    const m = mesh;
    const events: string[] = [];
    const readmitted = new Promise<void>((resolve) =>
      m.onEvent((e: MeshEvent) => {
        if (e.type !== 'balancer' || (e.event.type !== 'eject' && e.event.type !== 'readmit')) return;
        events.push(`${e.event.type} ${e.event.endpoint}`);
        if (e.event.type === 'readmit') resolve();
      }),
    );
    a.state.failing = true;
    const statuses: number[] = [];
    for (let i = 0; i < 10 && !events.some((e) => e.startsWith('eject')); i++) {
      const res = await m.request('http://api/');
      await res.body.text();
      statuses.push(res.statusCode);
    }
    expect(events).toEqual([`eject ${a.address}`]);
    a.state.failing = false;
    // The next check (5 s of the mesh's time) passes: a's /healthz answered.
    const checked = new Promise<void>((resolve) => {
      a.state.checked = resolve;
    });
    await clock.advance(5_000);
    await checked;
    return { m, a, b, events, readmitted };
  }

  it('by default: readmitted at the next passing check, then takes its share again', async () => {
    const { m, a, events, readmitted } = await run({});
    await readmitted;
    expect(events).toEqual([`eject ${a.address}`, `readmit ${a.address}`]);
    expect(m.stats('api')!.endpoints.find((e) => e.id === a.address)!.ejected).toBe(false);
    const answers = new Set<string>();
    for (let i = 0; i < 4; i++) answers.add(await (await m.request('http://api/')).body.text());
    expect([...answers].sort()).toEqual(['a', 'b']);
  });

  it('successfulActiveHealthCheckUnejectHost: false keeps it out for baseEjectionTime', async () => {
    const { m, a, events } = await run({ successfulActiveHealthCheckUnejectHost: false });
    expect(m.config('api').balancer.outlierDetection.successfulActiveHealthCheckUnejectHost).toBe(false);
    // Requests after the passing check all go to b: a is still ejected.
    const answers: string[] = [];
    for (let i = 0; i < 4; i++) answers.push(await (await m.request('http://api/')).body.text());
    expect(answers).toEqual(['b', 'b', 'b', 'b']);
    expect(events).toEqual([`eject ${a.address}`]);
    expect(m.stats('api')!.endpoints.find((e) => e.id === a.address)!.ejected).toBe(true);
  });
});
