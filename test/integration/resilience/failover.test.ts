import { createMesh, type Mesh, MeshError } from 'proxyless';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

/** A backend that serves GETs and, on `POST /crash`, reads the body then dies (socket reset, server closed). */
async function crashableBackend(name: string, posts: { count: number }): Promise<TestServer> {
  const server: TestServer = await startServer(name, (req, res, s) => {
    if (req.method === 'POST' && req.url === '/crash') {
      posts.count++;
      req.resume();
      req.on('end', () => {
        req.socket.destroy();
        void s.close();
      });
      return;
    }
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'x-served-by': s.name });
      res.end(s.name);
    });
  });
  return server;
}

describe('resilience over real backends: one of three dies mid-run', () => {
  let mesh: Mesh | undefined;
  let servers: TestServer[] = [];
  afterEach(async () => {
    await mesh?.close();
    await Promise.all(servers.map((s) => s.close()));
  });

  it('GETs all succeed, the POST whose body was sent fails clearly and is not replayed', async () => {
    const posts = { count: 0 };
    servers = await Promise.all(['a', 'b', 'c'].map((n) => crashableBackend(n, posts)));
    mesh = createMesh({
      env: {},
      services: {
        api: {
          endpoints: servers.map((s) => s.address).join(','),
          retry: { maxRetries: 2, backoff: { base: '1ms', max: '5ms' } },
        },
      },
    });
    const served = new Map<string, number>();
    const get = async () => {
      const res = await mesh!.request('http://api/x');
      const body = await res.body.text();
      expect(res.statusCode).toBe(200);
      served.set(body, (served.get(body) ?? 0) + 1);
    };
    for (let i = 0; i < 30; i++) await get();
    expect(served.size).toBe(3);

    // The POST kills whichever backend it reaches, after that backend read the whole body.
    let error: unknown;
    try {
      await mesh.request('http://api/crash', { method: 'POST', body: '{"charge":100}' });
    } catch (e) {
      error = e;
    }
    expect(MeshError.is(error)).toBe(true);
    const e = error as MeshError;
    expect(e.code).toBe('MESH_UPSTREAM_RESET');
    expect(e.details.bodySent).toBe(true);
    expect(posts.count).toBe(1); // not replayed on the two live backends

    // Every later GET succeeds: connect failures to the dead backend are retried elsewhere.
    served.clear();
    for (let i = 0; i < 60; i++) await get();
    expect([...served.values()].reduce((a, b) => a + b, 0)).toBe(60);
    expect(served.size).toBe(2);
  });
});
