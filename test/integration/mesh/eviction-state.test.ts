import { createMesh, type Mesh, type MeshEvent, type MeshOptions } from 'proxyless';
import { VirtualClock } from 'proxyless/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

/**
 * An idle destination's eviction (`destinationIdleTimeoutMs`) must not forget state that keeps
 * calls off a failing service or endpoint — as the rate-limit bucket is kept, an eviction never
 * lets a call through that the breaker or outlier detection would have refused. Before, an open
 * breaker (resetTimeout 10 s) was evicted after 1 s idle, and the next calls reached the failing
 * server; an endpoint ejected for 10 s got half the calls after eviction. Now a destination with
 * an open breaker or an ejected endpoint (or one whose ejection multiplier has not worn off) is not
 * idle until that has run out; then it is evicted.
 */
describe('idle eviction keeps an open breaker and ejections', () => {
  let good: TestServer;
  let bad: TestServer;
  beforeAll(async () => {
    good = await startServer('good');
    bad = await startServer('bad', (req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('bad');
      });
    });
  });
  afterAll(async () => {
    await Promise.all([good.close(), bad.close()]);
  });

  const meshWith = (clock: VirtualClock, api: Record<string, unknown>): Mesh =>
    createMesh({
      env: {},
      clock,
      destinationIdleTimeoutMs: 300,
      services: { api },
    } as MeshOptions & { destinationIdleTimeoutMs: number });

  /** The status of one call, or its error code. */
  const call = (mesh: Mesh): Promise<number | string> =>
    mesh.request('http://api/').then(
      async (r) => {
        await r.body.dump();
        return r.statusCode;
      },
      (e: { code?: string }) => e.code ?? String(e),
    );

  const removals = (mesh: Mesh): string[] => {
    const removed: string[] = [];
    mesh.onEvent((e: MeshEvent) => {
      if (e.type === 'service_removed') removed.push(e.service);
    });
    return removed;
  };

  it('an open breaker is not evicted before its resetTimeout; calls stay refused; then it goes', async () => {
    const clock = new VirtualClock(0);
    const mesh = meshWith(clock, {
      endpoints: bad.address,
      retry: false,
      outlierDetection: false,
      circuitBreaker: { volumeThreshold: 3, resetTimeout: '10s' },
    });
    const removed = removals(mesh);
    try {
      let opened = false;
      for (let i = 0; i < 20 && !opened; i++) opened = (await call(mesh)) === 'MESH_CIRCUIT_OPEN';
      expect(opened).toBe(true);
      expect(mesh.stats('api')?.circuitBreaker).toBe('open');
      const reached = bad.requests;
      // Idle well past destinationIdleTimeoutMs (sweeps every 1 s), still within the reset timeout.
      for (let t = 1; t <= 9; t++) {
        await clock.advance(1000);
        expect(removed).toEqual([]);
        expect(mesh.services()).toContain('api');
      }
      await expect(mesh.request('http://api/')).rejects.toMatchObject({
        code: 'MESH_CIRCUIT_OPEN',
        details: { service: 'api', state: 'open' },
      });
      expect(bad.requests).toBe(reached);
      // The reset timeout has run out (half-open): the next sweep evicts the idle destination.
      await clock.advance(3000);
      expect(removed).toEqual(['api']);
      expect(mesh.services()).not.toContain('api');
      // Built again, with a closed breaker: the call reaches the server.
      expect(await call(mesh)).toBe(500);
      expect(bad.requests).toBe(reached + 1);
    } finally {
      await mesh.close();
    }
  });

  it('a destination with an ejected endpoint is not evicted before its readmission', async () => {
    const clock = new VirtualClock(0);
    const mesh = meshWith(clock, {
      endpoints: `${good.address},${bad.address}`,
      retry: false,
      circuitBreaker: false,
      outlierDetection: { consecutive5xx: 2, maxEjectionPercent: 50, baseEjectionTime: '10s' },
    });
    const removed = removals(mesh);
    try {
      const ejected = () => mesh.stats('api')?.endpoints.find((e) => e.id === bad.address)?.ejected;
      for (let i = 0; i < 50 && ejected() !== true; i++) await call(mesh);
      expect(ejected()).toBe(true);
      // Idle past destinationIdleTimeoutMs, within the ejection.
      for (let t = 1; t <= 5; t++) {
        await clock.advance(1000);
        expect(removed).toEqual([]);
      }
      expect(ejected()).toBe(true);
      const reached = bad.requests;
      const statuses: Array<number | string> = [];
      for (let i = 0; i < 10; i++) statuses.push(await call(mesh));
      expect(statuses).toEqual(Array(10).fill(200));
      expect(bad.requests).toBe(reached);
      // Readmitted at 10 s, it keeps its ejection multiplier (a next ejection would last 20 s)
      // until a whole outlier interval (10 s) has passed without a failure: only then is the idle
      // destination evicted, so the multiplier is not forgotten either.
      const multiplier = () =>
        mesh.stats('api')?.endpoints.find((e) => e.id === bad.address)?.ejectionMultiplier;
      await clock.advance(7000);
      expect(ejected()).toBe(false);
      expect(multiplier()).toBe(1);
      expect(removed).toEqual([]);
      let evictedAt: number | undefined;
      for (let i = 0; i < 20 && evictedAt === undefined; i++) {
        await clock.advance(1000);
        if (removed.length > 0) evictedAt = clock.now();
      }
      expect(removed).toEqual(['api']);
      expect(evictedAt).toBeGreaterThanOrEqual(20_000);
      expect(mesh.services()).not.toContain('api');
    } finally {
      await mesh.close();
    }
  });
});
