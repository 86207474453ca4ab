/**
 * The logical `Host` header the mesh adds for a mesh service is what undici would send for the
 * origin (its WHATWG URL `host`): no credentials, no trailing slash, no default port — on the plain
 * path and on the routed one (a service with a routing chain) alike. Credentials in the origin
 * went out in the header (`Host: user:secret@api`, in every server's and proxy's logs); a routed
 * service sent `web:8080/`, kept `:80`, and garbled credentials (`web:secret@web`).
 */
import http from 'node:http';
import { createConfigSource, createMesh, type Mesh } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let server: http.Server;
let port: number;
const meshes: Mesh[] = [];

beforeAll(async () => {
  server = http.createServer((req, res) => res.end(req.headers.host ?? '(none)'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  for (const m of meshes) await m.close();
  await new Promise<void>((r) => server.close(() => r()));
});

function mesh(routed: boolean): Mesh {
  const source = createConfigSource('kv', {
    services: { web: { endpoints: [{ address: '127.0.0.1', port, metadata: { version: 'v1' } }] } },
    configEntries: routed
      ? ([
          { Kind: 'service-defaults', Name: 'web', Protocol: 'http' },
          {
            Kind: 'service-resolver',
            Name: 'web',
            DefaultSubset: 'v1',
            Subsets: { v1: { Filter: 'Service.Meta.version == "v1"' } },
          },
        ] as never)
      : [],
  });
  const m = createMesh({ env: {}, passthrough: false, configSource: source });
  meshes.push(m);
  return m;
}

const cases: Array<[string | URL, string]> = [
  ['http://web', 'web'],
  [new URL('http://web:8080'), 'web:8080'],
  ['http://web:8080/', 'web:8080'],
  ['http://web:80', 'web'],
  ['HTTP://WEB:8080', 'web:8080'],
  ['http://user:secret@web', 'web'],
  ['http://user:secret@web:8080', 'web:8080'],
  ['http://user@web:80/', 'web'],
];

describe.each([
  ['a service', false],
  ['a service with a routing chain', true],
])('the logical Host of %s is the origin’s host as undici sends it', (_, routed) => {
  it.each(cases)('%s → Host: %s', async (origin, host) => {
    const m = mesh(routed);
    if (routed) expect(m.routes('web')).toBeDefined();
    const res = await m.dispatcher.request({ origin, path: '/', method: 'GET' });
    expect(await res.body.text()).toBe(host);
  });
});
