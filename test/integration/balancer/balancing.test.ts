import type { LoadBalancerPolicy } from '@proxyless/balancer';
import { createMesh, type Mesh } from 'proxyless';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Handler, startServer, type TestServer } from '../../support/http-server.js';

/** Answer 200 with the server's name after `ms` of server-side work. */
const delayed =
  (ms: number): Handler =>
  (req, res, s) => {
    req.resume();
    const t = setTimeout(() => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(s.name);
    }, ms);
    res.on('close', () => clearTimeout(t));
  };

let fast1: TestServer;
let fast2: TestServer;
let slow: TestServer;
const meshes: Mesh[] = [];

beforeAll(async () => {
  [fast1, fast2, slow] = await Promise.all([
    startServer('fast1', delayed(10)),
    startServer('fast2', delayed(10)),
    startServer('slow', delayed(100)),
  ]);
});
afterAll(async () => {
  await Promise.all([fast1, fast2, slow].map((s) => s.close()));
});
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
});

function mesh(options: Parameters<typeof createMesh>[0]): Mesh {
  const m = createMesh(options);
  meshes.push(m);
  return m;
}

/** Send `workers × perWorker` requests with `workers` in parallel; count answers by server name. */
async function load(m: Mesh, workers: number, perWorker: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      for (let i = 0; i < perWorker; i++) {
        const res = await m.fetch('http://api/');
        const who = await res.text();
        counts.set(who, (counts.get(who) ?? 0) + 1);
      }
    }),
  );
  return counts;
}

async function slowShare(policy: LoadBalancerPolicy): Promise<number> {
  const m = mesh({
    env: {},
    services: {
      api: {
        endpoints: [fast1, fast2, slow].map((s) => s.address).join(','),
        loadBalancer: { policy },
        outlierDetection: { enabled: false },
      },
    },
  });
  const total = 8 * 30;
  const counts = await load(m, 8, 30);
  expect([...counts.values()].reduce((a, n) => a + n, 0)).toBe(total);
  return (counts.get('slow') ?? 0) / total;
}

describe('balancing over real servers, one 10× slower', () => {
  it('peak_ewma and least_request send the slow endpoint far less than round_robin', async () => {
    const rr = await slowShare('round_robin');
    const ewma = await slowShare('peak_ewma');
    const lr = await slowShare('least_request');
    expect(rr).toBeGreaterThan(0.3);
    expect(ewma).toBeLessThan(0.15);
    expect(lr).toBeLessThan(0.2);
    // Measured on a laptop: round_robin 33%, peak_ewma 3–6%, least_request 10–13%.
    expect(ewma).toBeLessThan(rr * 0.6);
    expect(lr).toBeLessThan(rr * 0.6);
  });
});

describe('outlier detection over real servers', () => {
  it('ejects an endpoint answering 503 and readmits it after its ejection time', async () => {
    let failing = true;
    let lastFailureAt = 0;
    const bad = await startServer('bad', (req, res) => {
      req.resume();
      if (failing) lastFailureAt = performance.now();
      res.writeHead(failing ? 503 : 200, { 'content-type': 'text/plain' });
      res.end('bad');
    });
    try {
      const baseEjectionTime = 500;
      const m = mesh({
        env: {},
        services: {
          api: {
            endpoints: [fast1, fast2, bad].map((s) => s.address).join(','),
            loadBalancer: { policy: 'round_robin' },
            outlierDetection: { baseEjectionTime: `${baseEjectionTime}ms`, consecutive5xx: 3 },
          },
        },
      });
      // Round robin reaches the failing endpoint every third request: 3 failures eject it.
      for (let i = 0; i < 200 && bad.requests < 3; i++) await (await m.fetch('http://api/')).arrayBuffer();
      expect(bad.requests).toBe(3);
      const ejectedAt = performance.now();
      for (let i = 0; i < 20; i++) expect(await (await m.fetch('http://api/')).text()).not.toBe('bad');
      // The check above is meaningful only while the ejection lasts.
      expect(performance.now() - ejectedAt).toBeLessThan(baseEjectionTime);
      expect(bad.requests).toBe(3);

      // Readmission: traffic reaches it again once the ejection time has passed (bounded poll).
      failing = false;
      const deadline = performance.now() + 10_000;
      let served = 0;
      while (served === 0 && performance.now() < deadline) {
        const who = await (await m.fetch('http://api/')).text();
        if (who === 'bad') served++;
        else await new Promise<void>((r) => setImmediate(r));
      }
      expect(served).toBe(1);
      // Ejected when the third 503 arrived, back no earlier than the ejection time after that.
      expect(performance.now() - lastFailureAt).toBeGreaterThanOrEqual(baseEjectionTime);
    } finally {
      await bad.close();
    }
  });
});
