/**
 * The mesh's entry points take what undici's and Node's take, and answer as they do: a `Request`
 * of Node's global fetch given to `mesh.fetch`, bad arguments to `mesh.dispatcher.dispatch`, and
 * `install()` undone out of order.
 */

import type http from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createMesh, type Mesh } from 'proxyless';
import { Agent, getGlobalDispatcher, setGlobalDispatcher } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

let server: TestServer;
const meshes: Mesh[] = [];
const mesh = (): Mesh => {
  const m = createMesh({ env: {}, services: { api: { endpoints: server.address } } });
  meshes.push(m);
  return m;
};

beforeAll(async () => {
  server = await startServer('api', (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (req.url === '/moved') {
      req.resume();
      res.writeHead(307, { location: '/x?q=1' });
      res.end();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          method: req.method,
          url: req.url,
          body: Buffer.concat(chunks).toString(),
          x: req.headers['x-test'] ?? null,
          length: req.headers['content-length'] ?? null,
        }),
      );
    });
  });
});
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
});
afterAll(async () => {
  await server.close();
});

describe('mesh.fetch', () => {
  it("takes a Request of Node's global fetch: method, headers and body go out", async () => {
    const input = new Request('http://api/x?q=1', {
      method: 'PUT',
      body: 'payload',
      headers: { 'x-test': 'yes' },
    });
    const res = await mesh().fetch(input);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      method: 'PUT',
      url: '/x?q=1',
      body: 'payload',
      x: 'yes',
      length: '7',
    });
  });

  it("a global Request with a body follows a 307 with it, framed with its length, as Node's fetch does", async () => {
    const res = await mesh().fetch(new Request('http://api/moved', { method: 'POST', body: 'payload' }));
    expect(await res.json()).toEqual({
      method: 'POST',
      url: '/x?q=1',
      body: 'payload',
      x: null,
      length: '7',
    });
  });

  it("a global Request's signal still aborts the call", async () => {
    const controller = new AbortController();
    controller.abort(new Error('stop'));
    const input = new Request('http://api/', { signal: controller.signal });
    await expect(mesh().fetch(input)).rejects.toThrow('stop');
  });

  it('init given with a global Request overrides it, as fetch(request, init) does', async () => {
    const input = new Request('http://api/y', { method: 'POST', body: 'one' });
    const res = await mesh().fetch(input, { method: 'PUT', body: 'two' });
    expect(await res.json()).toMatchObject({ method: 'PUT', url: '/y', body: 'two', length: '3' });
  });
});

describe('mesh.dispatcher.dispatch with bad arguments, as undici', () => {
  const handler = (seen: unknown[]) => ({
    onRequestStart() {},
    onResponseStart() {},
    onResponseData() {},
    onResponseEnd() {
      seen.push('end');
    },
    onResponseError(_c: unknown, e: Error) {
      seen.push(e);
    },
  });

  it('no handler: throws InvalidArgumentError at once', () => {
    const m = mesh();
    expect(() =>
      m.dispatcher.dispatch({ origin: 'http://api', path: '/', method: 'GET' }, null as never),
    ).toThrow(expect.objectContaining({ code: 'UND_ERR_INVALID_ARG', message: 'handler must be an object' }));
  });

  it('no options: the handler gets InvalidArgumentError and dispatch returns false', () => {
    const seen: unknown[] = [];
    const ret = mesh().dispatcher.dispatch(null as never, handler(seen));
    expect(ret).toBe(false);
    expect(seen).toEqual([
      expect.objectContaining({ code: 'UND_ERR_INVALID_ARG', message: 'opts must be an object.' }),
    ]);
  });

  it('an origin undici refuses (a path, another scheme): false, as its Agent returns', () => {
    const m = mesh();
    for (const origin of ['http://api/base', 'ftp://api']) {
      const seen: unknown[] = [];
      expect(m.dispatcher.dispatch({ origin, path: '/', method: 'GET' }, handler(seen))).toBe(false);
      expect(seen).toEqual([expect.objectContaining({ code: 'UND_ERR_INVALID_ARG' })]);
    }
  });
});

/** `global.gc`, exposed for this test when the process was started without `--expose-gc`. */
function exposeGc(): () => void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g !== undefined) return g;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

describe('install()', () => {
  it('undone out of order: the dispatcher before both comes back, not the mesh undone first', async () => {
    const before = getGlobalDispatcher();
    const mine = new Agent();
    setGlobalDispatcher(mine);
    try {
      const [m1, m2] = [mesh(), mesh()];
      const undo1 = m1.install();
      const undo2 = m2.install();
      undo1();
      expect(getGlobalDispatcher()).toBe(m2.dispatcher);
      undo2();
      expect(getGlobalDispatcher()).toBe(mine);
      // Undone in order, too.
      const undo3 = m1.install();
      const undo4 = m2.install();
      undo4();
      expect(getGlobalDispatcher()).toBe(m1.dispatcher);
      undo3();
      expect(getGlobalDispatcher()).toBe(mine);
    } finally {
      setGlobalDispatcher(before);
      await mine.close();
    }
  });

  it('an undo under a dispatcher the caller set keeps it, and a later undo restores what it replaced', async () => {
    const before = getGlobalDispatcher();
    const user = new Agent();
    try {
      const [a, b] = [mesh(), mesh()];
      // A test's pattern: install, put a mock on top, undo, restore.
      const undoA = a.install();
      setGlobalDispatcher(user);
      undoA();
      expect(getGlobalDispatcher()).toBe(user);
      // The app makes mesh A its global dispatcher itself (as api.ts documents); B installs over it.
      setGlobalDispatcher(a.dispatcher);
      const undoB = b.install();
      undoB();
      expect(getGlobalDispatcher()).toBe(a.dispatcher);
    } finally {
      setGlobalDispatcher(before);
      await user.close();
    }
  });

  it.each(['close', 'destroy'] as const)(
    'a mesh installed and then shut down (%s) gives the global dispatcher back',
    async (how) => {
      const before = getGlobalDispatcher();
      const mine = new Agent();
      setGlobalDispatcher(mine);
      try {
        const [m1, m2] = [mesh(), mesh()];
        m1.install();
        m2.install();
        // Shut down out of order: the mesh on top stays installed.
        await (how === 'close' ? m1.close() : m1.destroy());
        expect(getGlobalDispatcher()).toBe(m2.dispatcher);
        await (how === 'close' ? m2.close() : m2.destroy());
        expect(getGlobalDispatcher()).toBe(mine);
        // Node's global fetch works again (before, it failed MESH_CLOSED for good).
        const res = await fetch(`http://${server.address}/`);
        expect(res.status).toBe(200);
        await res.text();
        // A closed mesh cannot be installed.
        expect(() => m1.install()).toThrow(expect.objectContaining({ code: 'MESH_CLOSED' }));
        expect(getGlobalDispatcher()).toBe(mine);
      } finally {
        setGlobalDispatcher(before);
        await mine.close();
      }
    },
  );

  it('an undo under a dispatcher the caller set keeps no reference to the mesh', async () => {
    const before = getGlobalDispatcher();
    const user = new Agent();
    const collected = new Set<number>();
    const registry = new FinalizationRegistry<number>((i) => collected.add(i));
    try {
      const rounds = 10;
      for (let i = 0; i < rounds; i++) {
        // Not through `mesh()`, whose list keeps every mesh for the cleanup after each test.
        let m: Mesh | undefined = createMesh({ env: {}, services: { api: { endpoints: '127.0.0.1:1' } } });
        registry.register(m.dispatcher, i);
        const undo = m.install();
        setGlobalDispatcher(user);
        undo();
        setGlobalDispatcher(before);
        await m.close();
        m = undefined;
      }
      const gc = exposeGc();
      for (let i = 0; i < 50 && collected.size < rounds - 1; i++) {
        gc();
        await new Promise((r) => setImmediate(r));
      }
      // The last round's mesh may still be held by this frame; every earlier one must be gone
      // (before, every one was kept by the install records).
      expect(collected.size).toBeGreaterThanOrEqual(rounds - 1);
    } finally {
      setGlobalDispatcher(before);
      await user.close();
    }
  });
});
