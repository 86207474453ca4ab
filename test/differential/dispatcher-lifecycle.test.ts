/**
 * Differential: `mesh.dispatcher` as an undici `Dispatcher` — `destroy(err)` fails the requests in
 * flight with `err`, `closed`/`destroyed` say where it is, `dispatch()` after `close()` fails the
 * request and returns `false` (the mesh's error is `MESH_CLOSED`, documented), and the logical Host
 * header is written as undici writes its origin's host (lower case, no default port).
 */
import { createMesh, type Mesh } from 'proxyless';
import { Agent, type Dispatcher } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../support/http-server.js';

let server: TestServer;
const release: Array<() => void> = [];
beforeAll(async () => {
  server = await startServer('s', (req, res) => {
    req.resume();
    if (req.url === '/hold') {
      release.push(() => res.end('late'));
      return;
    }
    res.end(String(req.headers.host));
  });
});
afterAll(async () => {
  for (const r of release.splice(0)) r();
  await server.close();
});

const meshFor = (): Mesh => createMesh({ env: {}, services: { svc: { endpoints: server.address } } });

/** The same scenario on undici's Agent (to the port) and on the mesh dispatcher (to `svc`). */
async function bothWays<T>(
  run: (d: Dispatcher, origin: string) => Promise<T>,
): Promise<{ agent: T; mesh: T }> {
  const agent = await run(new Agent(), `http://127.0.0.1:${server.port}`);
  const mesh = await run(meshFor().dispatcher, 'http://svc');
  return { agent, mesh };
}

describe('differential: mesh.dispatcher lifecycle as an undici Dispatcher', () => {
  it('destroy(err) fails the requests in flight with err', async () => {
    const r = await bothWays(async (d, origin) => {
      const inflight = d.request({ origin, path: '/hold', method: 'GET' }).then(
        () => 'answered',
        (e: unknown) => e,
      );
      await expect.poll(() => release.length).toBe(1);
      release.length = 0;
      const reason = new Error('my destroy reason');
      await d.destroy(reason);
      return (await inflight) === reason;
    });
    // Before: the mesh failed them with MESH_CLOSED whatever the reason.
    expect(r).toEqual({ agent: true, mesh: true });
  });

  it('closed and destroyed follow close() and destroy(); dispatch after close() returns false', async () => {
    const r = await bothWays(async (d, origin) => {
      const flags = (x: Dispatcher) => [
        (x as { closed?: boolean }).closed,
        (x as { destroyed?: boolean }).destroyed,
      ];
      const before = flags(d);
      const closing = d.close();
      const afterClose = flags(d);
      let failed: Error | undefined;
      const returned = d.dispatch(
        { origin, path: '/', method: 'GET' },
        {
          onRequestStart: () => undefined,
          onResponseError: (_c, e) => {
            failed = e;
          },
        },
      );
      await closing;
      await d.destroy();
      return { before, afterClose, returned, failed: failed !== undefined, end: flags(d) };
    });
    // Before: the mesh's flags were undefined and dispatch after close returned true.
    expect(r.mesh).toEqual(r.agent);
    expect(r.agent).toEqual({
      before: [false, false],
      afterClose: [true, false],
      returned: false,
      failed: true,
      end: [true, true],
    });
  });

  it('writes the Host header lower-cased and without the default port, as undici does', async () => {
    const mesh = meshFor();
    const hosts: string[] = [];
    for (const origin of ['http://SVC', 'http://svc:80', 'http://Svc:80/']) {
      const res = await mesh.dispatcher.request({ origin, path: '/', method: 'GET' });
      hosts.push(await res.body.text());
    }
    await mesh.close();
    // undici sends `new URL(origin).host`; before, the mesh sent `SVC` and `svc:80`.
    expect(hosts).toEqual(['svc', 'svc', 'svc']);
  });

  it('emits the connection events of its pools, as undici Agent does, with itself first in targets', async () => {
    const r = await bothWays(async (d, origin) => {
      const seen: string[] = [];
      const firsts: boolean[] = [];
      const note = (name: string) => (o: URL, targets: readonly Dispatcher[]) => {
        seen.push(`${name} ${o.origin}`);
        firsts.push(targets[0] === d);
      };
      d.on('connect', note('connect'));
      d.on('disconnect', note('disconnect'));
      const res = await d.request({ origin, path: '/', method: 'GET' });
      await res.body.dump();
      await d.close();
      return { seen, firsts: firsts.every(Boolean) };
    });
    // Before: the mesh dispatcher emitted nothing.
    expect(r.agent.seen).toEqual([
      `connect http://127.0.0.1:${server.port}`,
      `disconnect http://127.0.0.1:${server.port}`,
    ]);
    expect(r.mesh).toEqual(r.agent);
  });
});
