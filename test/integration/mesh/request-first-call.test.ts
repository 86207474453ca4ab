/**
 * The first `mesh.request` of a process with a URL-like object (one undici's own `request()` reads)
 * reads it when it is called, as undici does: undici is loaded by that call, and a URL the caller
 * changes right after the call must not reach the wire. Alone in its file, so that this is the
 * process's first use of undici by the mesh (checked below).
 */
import type http from 'node:http';
import { undiciIfLoaded } from '@proxyless/core';
import { createMesh } from 'proxyless';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

let server: TestServer;

beforeAll(async () => {
  server = await startServer('api', (req: http.IncomingMessage, res: http.ServerResponse) => {
    req.resume();
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ url: req.url }));
  });
});
afterAll(async () => {
  await server.close();
});

it('the first call with a URL-like object sends the URL as it was when it was made', async () => {
  const mesh = createMesh({ env: {}, services: { api: { endpoints: server.address } } });
  try {
    expect(undiciIfLoaded()).toBeUndefined();
    // Not a string or URL: undici's own request() reads it (origin + pathname + search).
    const url = { origin: 'http://api', pathname: '/at-call', search: '?q=1' };
    const pending = mesh.request(url);
    url.pathname = '/changed-after';
    url.search = '?q=2';
    const res = await pending;
    expect(await res.body.json()).toEqual({ url: '/at-call?q=1' });
  } finally {
    await mesh.close();
  }
});
