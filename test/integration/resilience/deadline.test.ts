import { DEADLINE_HEADER, runWithIncomingDeadline } from '@proxyless/resilience';
import { createMesh, type Mesh, MeshError } from 'proxyless';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer, until } from '../../support/http-server.js';

describe('resilience over real servers: deadline propagation A → B → C', () => {
  const meshes: Mesh[] = [];
  let servers: TestServer[] = [];
  afterEach(async () => {
    await Promise.all(meshes.map((m) => m.close()));
    meshes.length = 0;
    await Promise.all(servers.map((s) => s.close()));
  });

  it("B's call to C never outlives A's remaining time", async () => {
    const seen: { b?: number; c?: number } = {};
    const bCall: { error?: MeshError; ms?: number } = {};
    // C: records the deadline it was given and never answers.
    const c = await startServer('c', (req) => {
      seen.c = Number(req.headers[DEADLINE_HEADER]);
      req.resume();
    });
    const meshB = createMesh({ env: {}, services: { c: { endpoints: c.address, timeout: '10s' } } });
    meshes.push(meshB);
    // B: calls C under the deadline A sent it.
    const b = await startServer('b', (req, res) => {
      seen.b = Number(req.headers[DEADLINE_HEADER]);
      req.resume();
      void runWithIncomingDeadline(req.headers, async () => {
        const t0 = performance.now();
        try {
          const r = await meshB.request('http://c/work');
          await r.body.dump();
          res.writeHead(200).end();
        } catch (e) {
          bCall.ms = performance.now() - t0;
          bCall.error = e as MeshError;
          if (!res.destroyed) res.writeHead(504).end();
        }
      });
    });
    servers = [b, c];
    const meshA = createMesh({
      env: {},
      services: { b: { endpoints: b.address, timeout: '300ms', retry: false } },
    });
    meshes.push(meshA);

    const t0 = performance.now();
    let aError: unknown;
    try {
      const res = await meshA.request('http://b/start');
      await res.body.dump();
    } catch (e) {
      aError = e;
    }
    const aMs = performance.now() - t0;
    expect(MeshError.is(aError, 'MESH_TIMEOUT')).toBe(true);
    expect((aError as MeshError).details.limit).toBe('overall');
    expect(aMs).toBeLessThan(2000);

    await until(() => bCall.error !== undefined, "B's call to C to end", 5_000_000);
    expect(seen.b).toBeGreaterThan(0);
    expect(seen.b).toBeLessThanOrEqual(300);
    expect(seen.c).toBeGreaterThanOrEqual(0);
    expect(seen.c).toBeLessThanOrEqual(seen.b!);
    expect(bCall.error?.code).toBe('MESH_TIMEOUT');
    expect(bCall.error?.details.limit).toBe('propagated');
    // B gave up at A's deadline, not after its own 10 s timeout.
    expect(bCall.ms).toBeLessThan(1500);
    console.info(
      `[resilience] deadline propagation: A sent ${seen.b}ms, B forwarded ${seen.c}ms, B's call ended after ${bCall.ms?.toFixed(0)}ms`,
    );
  });

  it('a timeout longer than Node can arm (1000h) does not fire at once: the call completes', async () => {
    // A server that answers after a few event-loop turns, so an overflowed 1 ms timer would win.
    const slow = await startServer('slow', (_req, res) => {
      setImmediate(() => setImmediate(() => setTimeout(() => res.end('late but fine'), 20)));
    });
    servers = [slow];
    const mesh = createMesh({
      env: {},
      services: { slow: { endpoints: slow.address, timeout: '1000h', perTryTimeout: '900h', retry: false } },
    });
    meshes.push(mesh);
    const res = await mesh.request('http://slow/');
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('late but fine');
  });
});
