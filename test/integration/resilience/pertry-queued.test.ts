/**
 * A per-try timeout that fires while the attempt still waits in the endpoint's own connection pool
 * (undici queues it behind `maxConnections` busy connections): nothing reached the endpoint, so
 * the circuit breaker must not count it (Envoy counts a pending-queue timeout against the pool,
 * not as an upstream failure).
 */
import { createMesh, type Mesh } from 'proxyless';
import { VirtualClock } from 'proxyless/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

describe('per-try timeout of an attempt queued in the pool', () => {
  let mesh: Mesh | undefined;
  let server: TestServer | undefined;
  const finish: Array<() => void> = [];
  afterEach(async () => {
    for (const f of finish.splice(0)) f();
    await mesh?.destroy();
    mesh = undefined;
    await server?.close();
  });

  it('fails the queued attempts with sent: false and does not open the breaker', async () => {
    server = await startServer('a', (req, res) => {
      req.resume();
      if (req.url === '/stream') {
        // The head and a first chunk now; the end when the test says so.
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('start ');
        finish.push(() => res.end('end'));
        return;
      }
      res.end('ok');
    });
    const clock = new VirtualClock();
    mesh = createMesh({
      env: {},
      clock,
      services: {
        svc: {
          endpoints: server.address,
          retry: false,
          perTryTimeout: '100ms',
          circuitBreaker: { maxConnections: 1, volumeThreshold: 5 },
        },
      },
    });
    const m = mesh;
    // One call holds the only connection while its body streams.
    const stream = await m.request('http://svc/stream');
    expect(stream.statusCode).toBe(200);
    // Eight more wait in the pool's queue behind it.
    const queued = Array.from({ length: 8 }, () =>
      m.request('http://svc/q').then(
        (r) => r.statusCode,
        (e: unknown) => e,
      ),
    );
    await expect.poll(() => m.stats('svc')?.endpoints[0]?.inflight).toBe(9);
    await clock.advance(100);
    const outcomes = await Promise.all(queued);
    for (const e of outcomes) {
      expect(e).toMatchObject({
        code: 'MESH_TIMEOUT',
        details: { limit: 'perTry', sent: false, bodySent: false },
      });
    }
    expect(server.requests).toBe(1);
    // Nothing reached the endpoint: the breaker counted no failure and stays closed, and the
    // balancer's in-flight count is the one streaming call again.
    expect(m.stats('svc')?.circuitBreaker).toBe('closed');
    expect(m.stats('svc')?.endpoints[0]).toMatchObject({ inflight: 1, failures: 0 });

    for (const f of finish.splice(0)) f();
    expect(await stream.body.text()).toBe('start end');
    const next = await m.request('http://svc/q');
    expect(next.statusCode).toBe(200);
    expect(await next.body.text()).toBe('ok');
    // The queued attempts were never sent, not even once the connection was free.
    expect(server.requests).toBe(2);
    expect(m.stats('svc')?.circuitBreaker).toBe('closed');
  });
});
