import { createMesh, type Mesh, MeshError } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

/** Hedging, concurrency limit, rate limit and fault injection, end to end through mesh.fetch (#6). */
describe('resilience policies through mesh.fetch over real servers', () => {
  let fast: TestServer;
  let slow: TestServer;
  const hold: Array<() => void> = [];
  let held: TestServer;
  const meshes: Mesh[] = [];
  beforeAll(async () => {
    fast = await startServer('fast');
    // Answers 300 ms late: a hedge to `fast` wins long before.
    slow = await startServer('slow', (req, res) => {
      req.resume();
      const t = setTimeout(() => {
        res.writeHead(200);
        res.end('slow');
      }, 300);
      res.on('close', () => clearTimeout(t));
    });
    // Holds every request until the test releases it.
    held = await startServer('held', (req, res) => {
      req.resume();
      hold.push(() => {
        res.writeHead(200);
        res.end('held');
      });
    });
  });
  afterAll(async () => {
    for (const r of hold) r();
    await Promise.all(meshes.map((m) => m.close()));
    await Promise.all([fast, slow, held].map((s) => s.close()));
  });
  const mesh = (services: NonNullable<Parameters<typeof createMesh>[0]>['services']): Mesh => {
    const m = createMesh({ env: {}, services });
    meshes.push(m);
    return m;
  };

  it('hedging: a second attempt after the delay wins, and the slow one is cancelled', async () => {
    const m = mesh({
      api: {
        endpoints: [slow, fast].map((s) => s.address).join(','),
        loadBalancer: { policy: 'round_robin' },
        hedge: { delay: '30ms' },
      },
    });
    const answers: string[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await m.fetch('http://api/');
      answers.push(await res.text());
    }
    expect(answers.every((a) => a === 'fast')).toBe(true);
  });

  it('concurrency limit: calls beyond max (and the queue) fail with MESH_CONCURRENCY_LIMIT', async () => {
    const m = mesh({
      api: { endpoints: held.address, concurrencyLimit: { max: 2, queue: 1 }, retry: false },
    });
    const inflight = [m.fetch('http://api/'), m.fetch('http://api/'), m.fetch('http://api/')];
    const rejected = await m.fetch('http://api/').then(
      () => undefined,
      (e: unknown) => e,
    );
    const cause = (rejected as Error).cause ?? rejected;
    expect(MeshError.is(cause, 'MESH_CONCURRENCY_LIMIT')).toBe(true);
    // Two run, one waits in the queue: release the two, then the queued one once it arrives.
    const arrived = async (n: number): Promise<void> => {
      for (let i = 0; i < 100_000 && hold.length < n; i++) await new Promise<void>((r) => setImmediate(r));
      expect(hold.length).toBe(n);
    };
    await arrived(2);
    for (const r of hold.splice(0)) r();
    await arrived(1);
    for (const r of hold.splice(0)) r();
    const texts = await Promise.all(inflight.map(async (p) => (await p).text()));
    expect(texts).toEqual(['held', 'held', 'held']);
  });

  it('circuitBreaker.maxConnections caps connections to the destination, divided over its endpoints', async () => {
    const waiting: Array<() => void> = [];
    const holder = (): Parameters<typeof startServer>[1] => (req, res) => {
      req.resume();
      waiting.push(() => {
        res.writeHead(200);
        res.end('ok');
      });
    };
    const a = await startServer('a', holder());
    const b = await startServer('b', holder());
    try {
      const m = mesh({
        api: { endpoints: `${a.address},${b.address}`, circuitBreaker: { maxConnections: 2 }, retry: false },
      });
      const calls = Array.from({ length: 6 }, () => m.fetch('http://api/'));
      // One connection per endpoint: two requests reach the servers, the other four wait in the pools.
      for (let i = 0; i < 100_000 && waiting.length < 2; i++) await new Promise<void>((r) => setImmediate(r));
      expect([a.connections.accepted, b.connections.accepted]).toEqual([1, 1]);
      for (let served = 0; served < 6; ) {
        const next = waiting.splice(0);
        served += next.length;
        for (const r of next) r();
        if (served < 6)
          for (let i = 0; i < 100_000 && waiting.length === 0; i++)
            await new Promise<void>((r) => setImmediate(r));
      }
      expect(await Promise.all(calls.map(async (p) => (await p).text()))).toEqual(Array(6).fill('ok'));
      expect([a.connections.accepted, b.connections.accepted]).toEqual([1, 1]);
    } finally {
      for (const r of waiting.splice(0)) r();
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('rate limit: a burst beyond the bucket fails fast with MESH_RATE_LIMITED', async () => {
    const m = mesh({ api: { endpoints: fast.address, rateLimit: { rps: 1, burst: 3 } } });
    const results = await Promise.allSettled(Array.from({ length: 6 }, () => m.request('http://api/')));
    const ok = results.filter((r) => r.status === 'fulfilled');
    const limited = results.filter(
      (r) => r.status === 'rejected' && MeshError.is(r.reason, 'MESH_RATE_LIMITED'),
    );
    expect([ok.length, limited.length]).toEqual([3, 3]);
    for (const r of ok) if (r.status === 'fulfilled') await r.value.body.text();
  });

  it('fault injection: only requests with the header are aborted, with the configured status', async () => {
    const m = mesh({
      api: {
        endpoints: fast.address,
        faultInjection: { abort: { percent: 100, status: 503 }, header: 'x-mesh-fault' },
      },
    });
    const normal = await m.fetch('http://api/');
    expect([normal.status, await normal.text()]).toEqual([200, 'fast']);
    const before = fast.requests;
    const faulted = await m.fetch('http://api/', { headers: { 'x-mesh-fault': '1' } });
    expect(faulted.status).toBe(503);
    expect(faulted.headers.get('x-mesh-fault')).toBe('abort');
    await faulted.text();
    expect(fast.requests).toBe(before); // never reached the backend
  });
});
