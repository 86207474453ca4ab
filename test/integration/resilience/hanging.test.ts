import { createMesh, type Mesh } from 'proxyless';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer, until } from '../../support/http-server.js';

function resourceCounts(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) counts[r] = (counts[r] ?? 0) + 1;
  return counts;
}

describe('resilience over real backends: a hanging backend', () => {
  let mesh: Mesh | undefined;
  let servers: TestServer[] = [];
  afterEach(async () => {
    await mesh?.close();
    await Promise.all(servers.map((s) => s.close()));
  });

  it('per-try timeout cuts the hanging attempt, the retry goes elsewhere, no handle leaks', async () => {
    const held: Array<{ destroy(): void }> = [];
    const hang = await startServer('hang', (req) => {
      req.resume();
      held.push(req.socket); // never answers
    });
    const ok = await startServer('ok');
    servers = [hang, ok];
    const before = resourceCounts();

    mesh = createMesh({
      env: {},
      services: {
        api: {
          endpoints: `${hang.address},${ok.address}`,
          timeout: '5s',
          perTryTimeout: '150ms',
          retry: { maxRetries: 2, backoff: { base: '1ms', max: '2ms' } },
        },
      },
    });
    const started = performance.now();
    const latencies: number[] = [];
    for (let i = 0; i < 12; i++) {
      const t0 = performance.now();
      const res = await mesh.request('http://api/x');
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('ok');
      latencies.push(performance.now() - t0);
    }
    const elapsed = performance.now() - started;
    expect(hang.requests).toBeGreaterThan(0); // the hanging backend was tried…
    // …and each time cut after ~150ms, never waiting for the 5s overall timeout.
    expect(Math.max(...latencies)).toBeLessThan(1500);
    expect(elapsed).toBeLessThan(12 * 1500);

    await mesh.close();
    mesh = undefined;
    // The aborted attempts' sockets were closed by the client side.
    await until(() => hang.connections.open === 0, 'hanging connections closed', 2_000_000);
    const after = resourceCounts();
    // Nothing the mesh created is left: no socket, timer or handle beyond what existed before.
    const grown = Object.entries(after).filter(([k, n]) => n > (before[k] ?? 0));
    expect(grown).toEqual([]);
  });
});
