/**
 * A retriable 503 whose body is slow (or never ends) must not hold its retry back: the backoff runs
 * from the 503's head, and a body still open when it is over is dropped with its connection.
 */
import { createMesh, type Mesh } from 'proxyless';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

describe('retry over a real backend: a 503 whose body does not end', () => {
  let mesh: Mesh | undefined;
  let server: TestServer | undefined;
  afterEach(async () => {
    await mesh?.close();
    await server?.close();
  });

  it('retries when the backoff is over and closes the 503 connection instead of waiting for its body', async () => {
    let firstClosed!: Promise<void>;
    server = await startServer('slow', (req, res, s) => {
      req.resume();
      if (s.requests === 1) {
        firstClosed = new Promise<void>((resolve) => res.on('close', resolve));
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.write('overloaded, body still coming…'); // and never ends
        return;
      }
      req.on('end', () => res.end(`ok from request ${s.requests}`));
    });
    mesh = createMesh({
      env: {},
      services: {
        api: {
          endpoints: server.address,
          // The old behaviour waited for the 503's body: the call would end at this timeout instead.
          timeout: '3s',
          retry: { backoff: { base: '1ms', max: '5ms' } },
        },
      },
    });
    const res = await mesh.request('http://api/');
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('ok from request 2');
    await firstClosed; // the mesh dropped the unfinished 503 with its connection
    expect(server.requests).toBe(2);
  });
});
