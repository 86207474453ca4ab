/**
 * Requests undici refuses itself (a bad method token, a header value with CR/LF) get undici's own
 * error and leave the endpoint's connections usable (probe26 fuzz defect 1): undici's Pool took
 * each refusal for backpressure on an idle connection, which then never drained, so after as many
 * refusals as the pool has connections every later call to the endpoint waited for ever.
 */
import { createMesh, type Mesh } from 'proxyless';
import { errors, request as undiciRequest } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

let server: TestServer;
let mesh: Mesh | undefined;
beforeAll(async () => {
  server = await startServer('api', (req, res) => {
    req.resume();
    res.end('ok');
  });
});
afterEach(async () => {
  await mesh?.close({ timeout: 0 });
  mesh = undefined;
});
afterAll(async () => {
  await server.close();
});

const REFUSED = [
  ['a bad method token', { method: 'GE T' }],
  ['a header value with CR/LF', { headers: { 'x-a': 'a\r\nb' } }],
] as const;

describe('requests undici refuses locally', () => {
  for (const [what, options] of REFUSED) {
    for (const connections of [1, 4, undefined]) {
      it(`${what}, ${connections ?? 'the default'} connection(s) per endpoint: later calls are served`, async () => {
        mesh = createMesh({
          env: {},
          ...(connections === undefined ? {} : { connectionsPerEndpoint: connections }),
          services: { api: { endpoints: server.address, retry: false } },
        });
        const m = mesh;
        // More refusals than the pool has connections (100 by default).
        const refusals = (connections ?? 100) + 2;
        for (let i = 0; i < refusals; i++) {
          const error = await m.request('http://api/', options as never).then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(error).toBeInstanceOf(errors.InvalidArgumentError);
        }
        // Through mesh.request and through undici given the dispatcher, in parallel too.
        const served = await Promise.all([
          m.request('http://api/'),
          m.request('http://api/'),
          undiciRequest('http://api/', { dispatcher: m.dispatcher }),
        ]);
        for (const r of served) expect(await r.body.text()).toBe('ok');
        expect(m.stats('api')?.endpoints[0]?.failures).toBe(0);
      });
    }
  }
});
