import type http from 'node:http';
import { createMesh } from 'proxyless';
import { VirtualClock } from 'proxyless/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';
import { nextEvent } from '../../support/mesh-events.js';

/**
 * A half-open breaker's trial call sent to an endpoint that never answers held the only trial
 * place until undici's `headersTimeout` (300 s): every call to the destination was refused with
 * `half_open_busy` meanwhile, although the endpoint answered every later request at once. Once a
 * trial has had no outcome for `resetTimeout`, another is let through (Polly's rule).
 */
describe('a hung half-open trial', () => {
  let server: TestServer;
  let mode: 'fail' | 'hang-next' | 'ok' = 'fail';
  const hung: http.ServerResponse[] = [];
  let hungArrived: () => void = () => {};
  beforeAll(async () => {
    server = await startServer('api', (req, res) => {
      req.resume();
      if (mode === 'fail') {
        res.statusCode = 503;
        res.end('down');
      } else if (mode === 'hang-next') {
        mode = 'ok';
        hung.push(res); // never answered
        hungArrived();
      } else res.end('ok');
    });
  });
  afterAll(async () => {
    for (const res of hung) res.destroy();
    await server.close();
  });

  it('does not hold the destination shut: the next call after resetTimeout is a new trial', async () => {
    const clock = new VirtualClock(0);
    const mesh = createMesh({
      clock,
      env: {},
      services: {
        api: {
          endpoints: server.address,
          retry: false,
          outlierDetection: false,
          circuitBreaker: { resetTimeout: '1s', volumeThreshold: 5 },
        },
      },
    });
    const status = async (): Promise<number | string> => {
      try {
        const res = await mesh.request('http://api/');
        await res.body.text();
        return res.statusCode;
      } catch (e) {
        return `${(e as { code?: string }).code}:${(e as { details?: { reason?: string } }).details?.reason}`;
      }
    };
    try {
      const opened = nextEvent(mesh, (e) => e.type === 'circuit_breaker' && e.state === 'open');
      for (let i = 0; i < 5; i++) expect(await status()).toBe(503);
      await opened;
      mode = 'hang-next';
      const arrived = new Promise<void>((resolve) => {
        hungArrived = resolve;
      });
      await clock.advance(1_000);
      const trial = mesh.request('http://api/');
      trial.catch(() => {});
      await arrived;
      expect(mesh.stats('api')?.circuitBreaker).toBe('half-open');
      expect(await status()).toBe('MESH_CIRCUIT_OPEN:half_open_busy');
      await clock.advance(999);
      expect(await status()).toBe('MESH_CIRCUIT_OPEN:half_open_busy');
      await clock.advance(1);
      expect(await status()).toBe(200);
      expect(mesh.stats('api')?.circuitBreaker).toBe('closed');
      expect(await status()).toBe(200);
    } finally {
      await mesh.destroy();
    }
  });
});
