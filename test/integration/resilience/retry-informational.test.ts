/**
 * 1xx responses on a retried call: only the attempt whose response the caller gets forwards its
 * 1xx. As in Envoy's router, a 1xx passed on to the caller makes that attempt's answer the call's.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { createMesh, type Mesh } from 'proxyless';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

describe('retry over a real backend: 103 Early Hints', () => {
  let mesh: Mesh | undefined;
  let server: TestServer | undefined;
  afterEach(async () => {
    await mesh?.close();
    await server?.close();
  });

  async function run(hintsOn: number, failing: number[]) {
    server = await startServer('hints', (req, res, s) => {
      req.resume();
      req.on('end', () => {
        const n = s.requests;
        if (n === hintsOn) res.writeEarlyHints({ link: `</from-request-${n}.css>; rel=preload` });
        res.writeHead(failing.includes(n) ? 503 : 200);
        res.end(`request ${n}`);
      });
    });
    mesh = createMesh({
      env: {},
      services: { api: { endpoints: server.address, retry: { backoff: { base: '1ms', max: '5ms' } } } },
    });
    const infos: Array<{ statusCode: number; headers: IncomingHttpHeaders }> = [];
    const res = await mesh.request('http://api/', { onInfo: (i) => infos.push(i) });
    return { status: res.statusCode, body: await res.body.text(), infos, requests: server.requests };
  }

  it('an attempt that sent a 1xx is not retried: the caller never sees hints of a failed attempt', async () => {
    const r = await run(1, [1]);
    expect(r).toEqual({
      status: 503,
      body: 'request 1',
      infos: [{ statusCode: 103, headers: { link: '</from-request-1.css>; rel=preload' } }],
      requests: 1,
    });
  });

  it('a retried call forwards the 1xx of the attempt that answers it', async () => {
    const r = await run(2, [1]);
    expect(r).toEqual({
      status: 200,
      body: 'request 2',
      infos: [{ statusCode: 103, headers: { link: '</from-request-2.css>; rel=preload' } }],
      requests: 2,
    });
  });
});
