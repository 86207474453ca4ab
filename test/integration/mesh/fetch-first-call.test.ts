/**
 * The first `mesh.fetch` of a process reads its arguments when it is called, as fetch does
 * (probe6 fetch defect 3): undici's fetch is loaded by that call, and a URL object or headers the
 * caller changes right after the call must not reach the wire. Alone in its file, so that this is
 * the process's first `mesh.fetch` (checked below).
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
    res.end(JSON.stringify({ url: req.url, x: req.headers['x-test'] ?? null }));
  });
});
afterAll(async () => {
  await server.close();
});

it('the first call sends the URL and headers as they were when it was made', async () => {
  const mesh = createMesh({ env: {}, services: { api: { endpoints: server.address } } });
  try {
    expect(undiciIfLoaded()).toBeUndefined();
    const url = new URL('http://api/at-call');
    const headers: Record<string, string> = { 'x-test': 'at-call' };
    const pending = mesh.fetch(url, { headers });
    url.pathname = '/changed-after';
    headers['x-test'] = 'changed-after';
    const res = await pending;
    expect(await res.json()).toEqual({ url: '/at-call', x: 'at-call' });
  } finally {
    await mesh.close();
  }
});
