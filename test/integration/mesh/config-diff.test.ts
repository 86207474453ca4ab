import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMesh, type Mesh, type MeshEvent } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

/** Diff before build (#10): a live destination, a file config source, edits while calls run. */

let failing = true;
let servers: TestServer[] = [];
let dir: string;

beforeAll(async () => {
  servers = await Promise.all(
    ['a', 'b'].map((n) =>
      startServer(n, (req, res, s) => {
        req.resume();
        req.on('end', () => {
          res.writeHead(failing ? 503 : 200, { 'content-type': 'text/plain' });
          res.end(s.name);
        });
      }),
    ),
  );
  dir = mkdtempSync(path.join(os.tmpdir(), 'proxyless-config-diff-'));
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});

function nextEvent<T extends MeshEvent['type']>(
  mesh: Mesh,
  type: T,
): Promise<Extract<MeshEvent, { type: T }>> {
  return new Promise((resolve) => {
    const sub = mesh.onEvent((e) => {
      if (e.type === type) {
        sub.dispose();
        resolve(e as Extract<MeshEvent, { type: T }>);
      }
    });
  });
}

/** Calls that run (one at a time, at most `max`) until `stop()`; counts what each got. */
function traffic(
  mesh: Mesh,
  max: number,
): { stop(): Promise<Record<string, number>>; done: Promise<Record<string, number>> } {
  let running = true;
  const seen: Record<string, number> = {};
  const done = (async () => {
    for (let i = 0; i < max && running; i++) {
      const key = await mesh.request('http://api/').then(
        async (r) => {
          await r.body.text();
          return String(r.statusCode);
        },
        (e: { code?: string }) => e.code ?? 'error',
      );
      seen[key] = (seen[key] ?? 0) + 1;
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
      return seen;
    },
    done: done.then(() => seen),
  };
}

describe('a config change on a live destination rebuilds only what it touches (#10)', () => {
  it('editing one field under traffic keeps the open breaker and the balancer with its endpoints', async () => {
    const file = path.join(dir, 'mesh.json');
    const [a, b] = servers as [TestServer, TestServer];
    const doc = (api: Record<string, unknown>): string =>
      JSON.stringify({
        services: {
          api: {
            endpoints: `${a.address},${b.address}`,
            circuitBreaker: { volumeThreshold: 4, errorThresholdPercentage: 50, resetTimeout: '10m' },
            outlierDetection: false,
            retry: { maxRetries: 1 },
            ...api,
          },
        },
      });
    writeFileSync(file, doc({}));
    const mesh = createMesh({ env: {}, configFile: file });
    try {
      // 503s from both endpoints open the breaker.
      failing = true;
      const stormSeen = await traffic(mesh, 20).done;
      expect(mesh.stats('api')?.circuitBreaker).toBe('open');
      expect(stormSeen.MESH_CIRCUIT_OPEN).toBeGreaterThan(0);
      failing = false;
      const before = mesh.stats('api');
      expect(before?.endpoints.map((e) => e.id).sort()).toEqual([a.address, b.address].sort());
      const requestsBefore = before?.endpoints.map((e) => [e.id, e.requests]);
      expect(requestsBefore?.every(([, n]) => (n as number) > 0)).toBe(true);

      // One field changes while calls keep coming: only the retry stage is built anew.
      const load = traffic(mesh, 200);
      let applied = nextEvent(mesh, 'config_applied');
      writeFileSync(file, doc({ retry: { maxRetries: 2 } }));
      await mesh.reloadConfig();
      const first = await applied;
      const seen = await load.stop();
      expect(first.changed.get('api')).toEqual(['retry']);
      expect(first.rebuilt.get('api')).toEqual(['retry']);
      expect(mesh.config('api').resilience.retry?.maxRetries).toBe(2);
      // The breaker kept its state (still open: every call during the edit failed fast) …
      expect(mesh.stats('api')?.circuitBreaker).toBe('open');
      expect(Object.keys(seen)).toEqual(['MESH_CIRCUIT_OPEN']);
      // … and the balancer its endpoints and their counts (a new one would start from zero).
      expect(mesh.stats('api')?.endpoints.map((e) => [e.id, e.requests])).toEqual(requestsBefore);

      // The same settings written differently: applied, nothing built.
      applied = nextEvent(mesh, 'config_applied');
      writeFileSync(file, `${doc({ retry: { maxRetries: 2 } })}\n\n`);
      await mesh.reloadConfig();
      const same = await applied;
      expect(same.changed.size).toBe(0);
      expect(same.rebuilt.size).toBe(0);

      // A load-balancer change builds only the balancer: the breaker stays open, the endpoints stay.
      applied = nextEvent(mesh, 'config_applied');
      writeFileSync(file, doc({ retry: { maxRetries: 2 }, loadBalancer: { policy: 'random' } }));
      await mesh.reloadConfig();
      const lb = await applied;
      expect(lb.rebuilt.get('api')).toEqual(['balancer']);
      expect(mesh.stats('api')?.policy).toBe('random');
      expect(mesh.stats('api')?.circuitBreaker).toBe('open');
      expect(
        mesh
          .stats('api')
          ?.endpoints.map((e) => e.id)
          .sort(),
      ).toEqual([a.address, b.address].sort());

      // A breaker change replaces the breaker: a new one starts closed, and calls get through.
      applied = nextEvent(mesh, 'config_applied');
      writeFileSync(
        file,
        doc({
          retry: { maxRetries: 2 },
          loadBalancer: { policy: 'random' },
          circuitBreaker: { volumeThreshold: 5, errorThresholdPercentage: 50, resetTimeout: '10m' },
        }),
      );
      await mesh.reloadConfig();
      expect((await applied).rebuilt.get('api')).toEqual(['circuitBreaker']);
      expect(mesh.stats('api')?.circuitBreaker).toBe('closed');
      const r = await mesh.request('http://api/');
      expect(r.statusCode).toBe(200);
      await r.body.text();
    } finally {
      await mesh.close();
    }
  });
});
