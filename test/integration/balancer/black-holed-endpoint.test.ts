/**
 * One endpoint of three black-holed (a listener that never accepts: SYNs dropped, as a dead node
 * whose address is still listed). Each call whose turn fell on it waited for the connect timeout,
 * and callers in a loop all ended up there: with undici's 10 s connect timeout, 16 callers made 48
 * calls in 10.6 s. Now an endpoint whose first connection is still opening takes no other call
 * while another endpoint can take it, and `connectTimeout` (5 s by default) bounds the wait of the
 * calls that found it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createMesh, type Mesh, MeshError, type MeshEvent } from 'proxyless';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { blackHole } from '../../support/black-hole.js';

let hole: { port: number; close(): void };
const servers: http.Server[] = [];
let good: string[];

beforeAll(async () => {
  hole = await blackHole();
  for (let i = 0; i < 2; i++) {
    const server = http.createServer((req, res) => {
      req.resume();
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    servers.push(server);
  }
  good = servers.map((s) => `127.0.0.1:${(s.address() as AddressInfo).port}`);
});

afterAll(async () => {
  hole.close();
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

describe('a black-holed endpoint', () => {
  let mesh: Mesh | undefined;
  afterEach(async () => {
    await mesh?.close({ timeout: 100 });
    mesh = undefined;
  });

  it.each(['round_robin', 'random', 'least_request'] as const)(
    '%s: holds up only the calls that found it; the others go on',
    async (policy) => {
      const holeId = `127.0.0.1:${hole.port}`;
      mesh = createMesh({
        services: {
          api: {
            endpoints: [good[0], holeId, good[1]].join(','),
            connectTimeout: '1s',
            loadBalancer: { policy },
          },
        },
      });
      const m = mesh;
      let doneBeforeFailure = -1;
      let done = 0;
      const sub = m.onEvent((e: MeshEvent) => {
        if (
          e.type === 'balancer' &&
          e.event.type === 'connectivity' &&
          e.event.endpoint === holeId &&
          e.event.to === 'TRANSIENT_FAILURE' &&
          doneBeforeFailure < 0
        )
          doneBeforeFailure = done;
      });
      const errors: unknown[] = [];
      let started = 0;
      const total = 4000;
      const caller = async (): Promise<void> => {
        while (started < total) {
          started++;
          try {
            const res = await m.request('http://api/');
            await res.body.text();
            if (res.statusCode !== 200) errors.push(res.statusCode);
          } catch (error) {
            errors.push(error);
          }
          done++;
        }
      };
      await Promise.all(Array.from({ length: 16 }, caller));
      sub.dispose();
      // Calls that found the hole failed their connect after 1 s and were retried elsewhere.
      expect(errors).toEqual([]);
      expect(done).toBe(total);
      const stats = m.stats('api')!.endpoints.find((e) => e.port === hole.port)!;
      // At most the callers that started together, before any connection had opened.
      expect(stats.requests).toBeLessThanOrEqual(16);
      // While its first connect hung (1 s), the other endpoints kept answering: before, every
      // caller was soon stuck on it and about 3 calls per caller completed in that second.
      expect(doneBeforeFailure).toBeGreaterThanOrEqual(300);
    },
  );

  it('connectTimeout bounds the connect: MESH_CONNECT_FAILED, caused by undici’s connect timeout', async () => {
    mesh = createMesh({
      services: { hole: { endpoints: `127.0.0.1:${hole.port}`, connectTimeout: '300ms', retry: false } },
    });
    expect(mesh.config('hole').resilience.connectTimeoutMs).toBe(300);
    const started = performance.now();
    const error = await mesh.request('http://hole/').then(
      () => undefined,
      (e: unknown) => e,
    );
    const elapsed = performance.now() - started;
    expect(MeshError.is(error, 'MESH_CONNECT_FAILED')).toBe(true);
    expect(((error as Error).cause as { code?: string }).code).toBe('UND_ERR_CONNECT_TIMEOUT');
    // 300 ms, not the 5 s default nor undici's 10 s.
    expect(elapsed).toBeLessThan(2500);
    expect(mesh.stats('hole')!.endpoints[0]!.connectivity).not.toBe('READY');
  });

  it('defaults to 5 s; MESH_CONNECT_TIMEOUT sets it for every service', () => {
    mesh = createMesh({ services: { a: { endpoints: good[0]! } } });
    expect(mesh.config('a').resilience.connectTimeoutMs).toBe(5000);
    void mesh.close();
    mesh = createMesh({ env: { MESH_CONNECT_TIMEOUT: '2s' }, services: { a: { endpoints: good[0]! } } });
    expect(mesh.config('a').resilience.connectTimeoutMs).toBe(2000);
    expect(mesh.config('a').sources.connectTimeout).toMatchObject({ layer: 'env' });
  });

  it('a reload of connectTimeout retires the pools made with the old one', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'proxyless-connect-timeout-'));
    try {
      const file = path.join(dir, 'mesh.json');
      const doc = (connectTimeout: string): string =>
        JSON.stringify({
          services: { hole: { endpoints: `127.0.0.1:${hole.port}`, connectTimeout, retry: false } },
        });
      writeFileSync(file, doc('30s'));
      mesh = createMesh({ env: {}, configFile: file });
      const m = mesh;
      // A pool made with 30 s: its connect is left hanging (the caller gives up at once).
      const first = await m.request('http://hole/', { signal: AbortSignal.timeout(50) }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((first as Error).name).toBe('TimeoutError');
      const applied = new Promise<Extract<MeshEvent, { type: 'config_applied' }>>((resolve) =>
        m.onEvent((e) => e.type === 'config_applied' && resolve(e)),
      );
      writeFileSync(file, doc('300ms'));
      await m.reloadConfig();
      const event = await applied;
      expect(event.changed.get('hole')).toEqual(['connectTimeout']);
      expect(event.rebuilt.get('hole')).toEqual(['connectionPools']);
      const started = performance.now();
      const error = await m.request('http://hole/').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(MeshError.is(error, 'MESH_CONNECT_FAILED')).toBe(true);
      // The new pool's 300 ms, not the retired pool's 30 s.
      expect(performance.now() - started).toBeLessThan(2500);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a connect whose call gave up first still takes the endpoint out when it fails', async () => {
    // The per-try timeout ends the only attempt while its connect hangs; the connect fails later,
    // with no request waiting. Before, nothing heard of it: the endpoint stayed CONNECTING, never
    // tried again, and with the pick passing over connecting endpoints it would never be picked.
    const holeId = `127.0.0.1:${hole.port}`;
    mesh = createMesh({
      services: {
        hole: { endpoints: holeId, connectTimeout: '500ms', perTryTimeout: '50ms', retry: false },
      },
    });
    const m = mesh;
    const failed = new Promise<void>((resolve) => {
      const sub = m.onEvent((e: MeshEvent) => {
        if (e.type === 'balancer' && e.event.type === 'connectivity' && e.event.to === 'TRANSIENT_FAILURE') {
          sub.dispose();
          resolve();
        }
      });
    });
    const error = await m.request('http://hole/').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(MeshError.is(error, 'MESH_TIMEOUT')).toBe(true);
    expect(m.stats('hole')!.endpoints[0]!.connectivity).toBe('CONNECTING');
    // The connect's own failure (undici's 500 ms connect timeout, on its coarse timer) arrives.
    let guard: NodeJS.Timeout | undefined;
    const seen = await Promise.race([
      failed.then(() => true),
      new Promise<boolean>((r) => {
        guard = setTimeout(() => r(false), 5000);
      }),
    ]);
    clearTimeout(guard);
    expect(seen).toBe(true);
    expect(m.stats('hole')!.endpoints[0]).toMatchObject({
      connectivity: expect.stringMatching(/TRANSIENT_FAILURE|CONNECTING/),
      connectFailures: 1,
    });
  });
});
