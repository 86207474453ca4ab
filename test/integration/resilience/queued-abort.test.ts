/**
 * A caller that gives up on a call whose attempt still waits in the endpoint's own connection pool
 * (undici queues it behind `maxConnections` busy connections and calls `onRequestStart` only when
 * it writes it): the circuit breaker's `maxRequests` slot of that attempt is released at once, and
 * the queued request is aborted when undici gets to it, never sent (Envoy cancels a pending pool
 * request when the downstream resets).
 */
import type http from 'node:http';
import { createMesh, type Mesh, type ServiceOptions } from 'proxyless';
import { VirtualClock } from 'proxyless/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

describe('a caller abort while the attempt is queued in the pool', () => {
  let mesh: Mesh | undefined;
  let server: TestServer | undefined;
  const held: http.ServerResponse[] = [];
  afterEach(async () => {
    for (const res of held.splice(0)) res.destroy();
    await mesh?.destroy();
    mesh = undefined;
    await server?.close();
  });

  const cases: Array<[string, ServiceOptions]> = [
    ['with retries (the default)', {}],
    ['with hedging', { retry: false, hedge: { delay: '10s', maxHedges: 1 } }],
  ];

  it.each(cases)(
    'releases the maxRequests slots at once and never sends the request, %s',
    async (_, extra) => {
      server = await startServer('a', (req, res) => {
        req.resume();
        if (req.url === '/hang') {
          held.push(res); // never answers
          return;
        }
        res.end('ok');
      });
      mesh = createMesh({
        env: {},
        clock: new VirtualClock(), // no timer of the mesh's fires on its own (the hedge delay)
        services: {
          svc: { endpoints: server.address, circuitBreaker: { maxConnections: 1, maxRequests: 3 }, ...extra },
        },
      });
      const m = mesh;
      const hang = new AbortController();
      const hung = m.request('http://svc/hang', { signal: hang.signal }).then(
        () => 'answered',
        (e: unknown) => e,
      );
      const s = server;
      await expect.poll(() => s.requests).toBe(1);

      // Two calls wait in the pool behind the hung one; their callers give up.
      const callers = [new AbortController(), new AbortController()];
      const queued = callers.map((c) =>
        m.request('http://svc/q', { signal: c.signal }).then(
          () => 'answered',
          (e: unknown) => e,
        ),
      );
      await expect.poll(() => m.stats('svc')?.endpoints[0]?.inflight).toBe(3);
      const reasons = callers.map((c, i) => {
        const reason = new Error(`caller ${i} gave up`);
        c.abort(reason);
        return reason;
      });
      expect(await Promise.all(queued)).toEqual(reasons);
      // The balancer's in-flight count of the endpoint drops with them (least_request and
      // peak_ewma must not see the abandoned attempts as load).
      expect(m.stats('svc')?.endpoints[0]?.inflight).toBe(1);

      // Their slots are free: a new call is admitted (it waits in the pool) instead of being refused
      // with MESH_CIRCUIT_OPEN (reason maxRequests) until the hung request ends.
      const next = m.request('http://svc/q').then(
        async (r) => `${r.statusCode} ${await r.body.text()}`,
        (e: unknown) => e,
      );

      hang.abort(new Error('done hanging'));
      await expect(hung).resolves.toMatchObject({ message: 'done hanging' });
      expect(await next).toBe('200 ok');
      // The abandoned requests were aborted when undici got to them, never written to the server.
      expect(server.requests).toBe(2);
      await expect.poll(() => m.stats('svc')?.endpoints[0]?.inflight).toBe(0);
    },
  );
});
