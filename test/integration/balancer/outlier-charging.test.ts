import { createMesh, type Mesh } from 'proxyless';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

/**
 * Outlier detection counts what the endpoint answered: a response code counts when its head
 * arrives (Envoy's router reports it in decodeHeaders), whatever happens to the body after, and a
 * request still owed its head when a timeout gives up on it is a local-origin timeout of that
 * endpoint (Envoy: onResponseTimeout → LocalOriginTimeout).
 */
describe('outlier detection charges what the endpoint did, however the call ends', () => {
  const big = Buffer.alloc(512 * 1024, 'e');
  let failing: TestServer;
  let hung: TestServer;
  let healthy: TestServer;
  let mesh: Mesh | undefined;
  beforeAll(async () => {
    failing = await startServer('failing', (req, res) => {
      req.resume();
      res.writeHead(503, { 'content-length': big.length });
      res.end(big);
    });
    // Takes requests, never answers.
    hung = await startServer('hung', (req) => {
      req.resume();
    });
    healthy = await startServer('healthy');
  });
  afterEach(async () => {
    await mesh?.destroy();
    mesh = undefined;
  });
  afterAll(async () => {
    await Promise.all([failing.close(), hung.close(), healthy.close()]);
  });

  /** A mesh with one service `svc` over `servers`, round robin, and `policy`. */
  const meshOver = (servers: TestServer[], policy: Record<string, unknown>): Mesh =>
    createMesh({
      env: {},
      services: {
        svc: {
          endpoints: servers.map((x) => x.address).join(','),
          loadBalancer: { policy: 'round_robin' },
          ...policy,
        },
      },
    });
  const stats = (m: Mesh, server: TestServer) =>
    m.stats('svc')!.endpoints.find((e) => e.id === server.address)!;

  it('a 5xx whose body the caller drops counts (request: body.destroy; fetch: body.cancel)', async () => {
    mesh = meshOver([failing, healthy], {
      retry: false,
      circuitBreaker: false,
      outlierDetection: { consecutive5xx: 3, consecutiveGatewayFailure: 3 },
    });
    const m = mesh;
    let fetched = false;
    for (let i = 0; i < 12 && !(i > 0 && stats(m, failing).ejected); i++) {
      if (fetched) {
        const r = await m.request('http://svc/');
        if (r.statusCode >= 500) {
          r.body.on('error', () => {});
          r.body.destroy();
        } else await r.body.dump();
      } else {
        const r = await m.fetch('http://svc/');
        if (!r.ok) await r.body?.cancel();
        else await r.text();
      }
      fetched = !fetched;
    }
    // Before: { requests: 0, failures: 0, ejected: false } after six 503s.
    expect(stats(m, failing)).toMatchObject({ failures: 3, ejected: true });
  });

  it('a retried 503 whose large body the retry stage drops counts, so the endpoint is ejected', async () => {
    mesh = meshOver([failing, healthy], {
      retry: { maxRetries: 1, retryOn: ['5xx'] },
      outlierDetection: { consecutive5xx: 3, consecutiveGatewayFailure: 3 },
    });
    const m = mesh;
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      const r = await m.request('http://svc/');
      await r.body.dump();
      statuses.push(r.statusCode);
    }
    expect(statuses.every((s) => s === 200)).toBe(true);
    // Before: the failing endpoint answered 503 five times and showed failures: 0.
    expect(stats(m, failing)).toMatchObject({ failures: 3, ejected: true });
  });

  it('a hung endpoint is ejected when only the overall timeout gives up on it', async () => {
    mesh = meshOver([hung, healthy], {
      timeout: '200ms',
      outlierDetection: { consecutiveLocalOriginFailure: 3, consecutiveGatewayFailure: 3 },
    });
    const m = mesh;
    const outcomes: string[] = [];
    for (let i = 0; i < 20; i++) {
      try {
        const r = await m.request('http://svc/');
        await r.body.dump();
        outcomes.push(String(r.statusCode));
      } catch (e) {
        outcomes.push(
          `${(e as { code?: string }).code}/${(e as { details?: { limit?: string } }).details?.limit}`,
        );
      }
    }
    // Before: 10 of 20 calls timed out and the hung endpoint showed failures: 0, never ejected.
    expect(outcomes.filter((o) => o === 'MESH_TIMEOUT/overall')).toHaveLength(3);
    expect(stats(m, hung)).toMatchObject({ failures: 3, ejected: true });
  });
});
