import { PassThrough } from 'node:stream';
import { createMesh, type MeshEvent, type MeshOptions } from 'proxyless';
import { VirtualClock } from 'proxyless/testing';
import { request as undiciRequest } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

/**
 * What a call leaves behind once its exchange ends:
 * - a streamed request body the server answered before reading it all is destroyed, as undici
 *   destroys it (before, with retries on, the mesh kept a copy for a replay and left the caller's
 *   stream open for ever: a producer piped into it never finished);
 * - the idle time of the destination counts from the end of the exchange (before, from its start:
 *   a stream longer than `destinationIdleTimeoutMs` was followed by an eviction at the next sweep).
 */
describe('state at the end of an exchange', () => {
  let early: TestServer;
  let streaming: TestServer;
  let finish: (() => void) | undefined;
  beforeAll(async () => {
    // Answers at once, without reading the request body.
    early = await startServer('early', (req, res) => {
      res.writeHead(req.url === '/503' ? 503 : 200);
      res.end('early');
    });
    streaming = await startServer('streaming', (_req, res) => {
      res.writeHead(200);
      res.write('a');
      finish = () => res.end('b');
    });
  });
  afterAll(async () => {
    await Promise.all([early.close(), streaming.close()]);
  });

  /**
   * A stream body whose producer is still live (never ended), and a promise of its `close` that
   * rejects when the stream is still open after 5 s.
   */
  const liveBody = (): { body: PassThrough; closed: Promise<void> } => {
    const body = new PassThrough();
    body.write('first chunk');
    const closed = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the request body stream was never closed')), 5000);
      body.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    return { body, closed };
  };

  it('destroys a streamed body the server did not read, as undici does (retries on, 200 and 503)', async () => {
    const mesh = createMesh({ env: {}, services: { svc: { endpoints: early.address } } });
    try {
      // The reference: undici itself, straight to the server.
      const ref = liveBody();
      const r0 = await undiciRequest(`http://${early.address}/`, { method: 'PUT', body: ref.body });
      await r0.body.text();
      await ref.closed;
      expect(ref.body.destroyed).toBe(true);
      for (const path of ['/', '/503']) {
        const { body, closed } = liveBody();
        const r = await mesh.request(`http://svc${path}`, { method: 'PUT', body });
        expect(await r.body.text()).toBe('early');
        expect(r.statusCode).toBe(path === '/' ? 200 : 503);
        await closed;
        expect(body.destroyed).toBe(true);
        expect(mesh.stats('svc')?.inFlight).toBe(0);
      }
    } finally {
      await mesh.close();
    }
  });

  it('counts the idle time from the end of the last exchange, not from its start', async () => {
    const clock = new VirtualClock(0);
    const mesh = createMesh({
      env: {},
      clock,
      destinationIdleTimeoutMs: 300_000,
      services: { svc: { endpoints: streaming.address } },
    } as MeshOptions & { destinationIdleTimeoutMs: number });
    const removed: number[] = [];
    mesh.onEvent((e: MeshEvent) => {
      if (e.type === 'service_removed') removed.push(clock.now());
    });
    try {
      const r = await mesh.request('http://svc/');
      // The body streams for 10 minutes: in flight, never idle.
      await clock.advance(600_000);
      expect(removed).toEqual([]);
      finish?.();
      expect(await r.body.text()).toBe('ab');
      // 61 s after the last byte (a sweep has run): not idle for 300 s yet.
      await clock.advance(61_000);
      expect(removed).toEqual([]);
      expect(mesh.services()).toContain('svc');
      // Idle for the whole timeout (and a sweep period): evicted.
      await clock.advance(300_000);
      expect(removed).toHaveLength(1);
      expect(removed[0]!).toBeGreaterThanOrEqual(600_000 + 300_000);
    } finally {
      await mesh.close();
    }
  });
});
