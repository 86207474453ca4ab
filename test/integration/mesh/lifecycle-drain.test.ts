/**
 * Shutdown reaches every call the mesh accepted: pass-through requests, streams on pools of
 * endpoints the registry removed, calls waiting for a first resolution or sleeping in a backoff;
 * and a call made after `close()` is refused, as undici's own `close()` refuses it. Also: a new
 * `circuitBreaker.maxConnections` takes effect on a live destination.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {
  createEndpoint,
  createEndpointSet,
  type Disposable,
  type Resolver,
  type ResolverListener,
  type ResolverUpdate,
} from '@proxyless/core';
import { createConfigSource, type Mesh, type MeshEvent } from 'proxyless';
import { afterEach, describe, expect, it } from 'vitest';
import { type TestServer, until } from '../../support/http-server.js';
import { Opened, rejection, within } from './data-plane-support.js';

const opened = new Opened();
afterEach(() => opened.closeAll());

/**
 * A resolver for the one service `api` whose answers the test gives, when it chooses; a watch
 * started later gets the latest answer (asynchronously, as the resolver contract asks).
 */
function scriptedResolver(): Resolver & {
  answer(servers: readonly TestServer[]): void;
  watching(): boolean;
} {
  const listeners = new Set<ResolverListener>();
  let version = 0;
  let latest: ResolverUpdate | undefined;
  return {
    name: 'scripted',
    match: (host) => (host === 'api' ? 'api' : undefined),
    watch(_service, listener): Disposable {
      listeners.add(listener);
      const replay = latest;
      if (replay !== undefined) queueMicrotask(() => listeners.has(listener) && listener(replay));
      return { dispose: () => listeners.delete(listener) };
    },
    close: async () => undefined,
    answer(servers) {
      const set = createEndpointSet({
        service: 'api',
        version: ++version,
        source: 'scripted',
        updatedAt: 0,
        endpoints: servers.map((s) => createEndpoint({ address: s.host, port: s.port })),
      });
      latest = { kind: 'endpoints', set };
      for (const l of listeners) l(latest);
    },
    watching: () => listeners.size > 0,
  };
}

/** A server that answers every request with a head and one chunk, then never ends the body. */
function endless(): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  return (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('start;');
  };
}

/** Read a body to its end; the error it ended with, if any. */
async function bodyOutcome(body: AsyncIterable<unknown>): Promise<{ error: unknown }> {
  try {
    for await (const _ of body);
    return { error: undefined };
  } catch (error) {
    return { error };
  }
}

describe('mesh shutdown', () => {
  describe('pass-through requests (hosts that are not mesh services)', () => {
    it('close({ timeout }) destroys a pass-through stream still open at the deadline', async () => {
      const s = await opened.server('plain', endless());
      const m = opened.mesh({ env: {} });
      const res = await m.request(`http://${s.address}/`);
      const body = bodyOutcome(res.body);
      const t0 = Date.now();
      await within(m.close({ timeout: 200 }), 2000, 'close({ timeout: 200 })');
      expect(Date.now() - t0).toBeLessThan(1500);
      const { error } = await within(body, 1000, 'the pass-through body');
      expect(error).toMatchObject({ code: 'UND_ERR_DESTROYED' });
    });

    it('destroy() destroys a pass-through stream at once', async () => {
      const s = await opened.server('plain', endless());
      const m = opened.mesh({ env: {} });
      const res = await m.request(`http://${s.address}/`);
      const body = bodyOutcome(res.body);
      await within(m.destroy(), 1000, 'destroy()');
      expect((await within(body, 1000, 'the pass-through body')).error).toBeDefined();
    });
  });

  describe('a stream on an endpoint the registry removed', () => {
    it.each(['destroy', 'close'] as const)('%s() reaches it', async (how) => {
      const [a, b] = [await opened.server('a', endless()), await opened.server('b', endless())];
      const resolver = scriptedResolver();
      const m = opened.mesh({ env: {}, resolvers: [resolver] });
      const pending = m.request('http://api/');
      resolver.answer([a]);
      const res = await pending;
      expect(res.endpoint).toBe(a.address);
      const body = bodyOutcome(res.body);
      // The registry drops `a`: its pool is closed gracefully, with the stream still on it.
      resolver.answer([b]);
      expect(m.endpoints('api')?.endpoints.map((e) => e.port)).toEqual([b.port]);
      await within(how === 'destroy' ? m.destroy() : m.close({ timeout: 200 }), 2000, `${how}()`);
      const { error } = await within(body, 1000, 'the stream on the removed endpoint');
      expect(error).toMatchObject({ code: 'MESH_CLOSED' });
      await within(a.noConnections(), 2000, "the removed endpoint's connection is closed");
    });
  });

  describe('a stream to a service the config stopped naming', () => {
    const removedWhileStreaming = async () => {
      const s = await opened.server('api', endless());
      const source = createConfigSource('kv', {
        services: { api: { endpoints: s.address }, other: { endpoints: s.address } },
      });
      const m = opened.mesh({ env: {}, configSource: source });
      const res = await m.request('http://api/');
      const body = bodyOutcome(res.body);
      const removed = new Promise<void>((resolve) => {
        const sub = m.onEvent((e: MeshEvent) => {
          if (e.type === 'service_removed' && e.service === 'api') {
            sub.dispose();
            resolve();
          }
        });
      });
      source.update({ services: { other: { endpoints: s.address } } });
      await within(removed, 2000, 'service_removed');
      return { s, m, body };
    };

    it.each(['destroy', 'close'] as const)('%s() reaches it', async (how) => {
      const { s, m, body } = await removedWhileStreaming();
      await within(how === 'destroy' ? m.destroy() : m.close({ timeout: 200 }), 2000, `${how}()`);
      const { error } = await within(body, 1000, 'the stream to the removed service');
      expect(error).toMatchObject({ code: 'MESH_CLOSED', details: { service: 'api' } });
      await within(s.noConnections(), 2000, 'its connection is closed');
    });

    it('a graceful close() waits for it', async () => {
      const { m, body } = await removedWhileStreaming();
      let closed = false;
      const closing = m.close().then(() => {
        closed = true;
      });
      // Still draining while the stream is open; destroy() then ends it.
      await new Promise<void>((resolve) => setImmediate(resolve));
      expect(closed).toBe(false);
      await within(m.destroy(), 2000, 'destroy()');
      await within(closing, 2000, 'close()');
      expect((await within(body, 1000, 'the stream')).error).toMatchObject({ code: 'MESH_CLOSED' });
    });
  });

  describe('a call waiting for the first resolution', () => {
    it('destroy() fails it at once with MESH_CLOSED', async () => {
      const resolver = scriptedResolver();
      const m = opened.mesh({ env: {}, resolvers: [resolver], resolveTimeoutMs: 10_000 });
      const call = rejection(m.request('http://api/'));
      expect(m.stats('api')?.inFlight).toBe(1);
      await within(m.destroy(), 1000, 'destroy()');
      expect(await within(call, 1000, 'the waiting call')).toMatchObject({
        code: 'MESH_CLOSED',
        details: { service: 'api' },
      });
    });

    it('close({ timeout }) still serves it when endpoints arrive before the deadline', async () => {
      const s = await opened.server('late');
      const resolver = scriptedResolver();
      const m = opened.mesh({ env: {}, resolvers: [resolver], resolveTimeoutMs: 10_000 });
      const call = m.request('http://api/');
      const closing = m.close({ timeout: 10_000 });
      await expect(m.request('http://api/')).rejects.toMatchObject({ code: 'MESH_CLOSED' });
      // The watch stays until the accepted call is over: the registry's answer still reaches it.
      expect(resolver.watching()).toBe(true);
      resolver.answer([s]);
      const res = await within(call, 2000, 'the waiting call');
      expect(await res.body.text()).toBe('late');
      await within(closing, 2000, 'close() once the call is over');
      expect(resolver.watching()).toBe(false);
    });

    it('close({ timeout }) fails it with MESH_CLOSED at the deadline', async () => {
      const resolver = scriptedResolver();
      const m = opened.mesh({ env: {}, resolvers: [resolver], resolveTimeoutMs: 10_000 });
      const call = rejection(m.request('http://api/'));
      await within(m.close({ timeout: 100 }), 2000, 'close({ timeout: 100 })');
      expect(await within(call, 1000, 'the waiting call')).toMatchObject({ code: 'MESH_CLOSED' });
    });
  });

  describe('a call sleeping in a retry backoff', () => {
    it.each(['destroy', 'close'] as const)('%s() ends it without another attempt', async (how) => {
      const s = await opened.server('busy', (req, res) => {
        req.resume();
        res.writeHead(503, { 'retry-after': '3' });
        res.end('busy');
      });
      const m = opened.meshFor([s], { circuitBreaker: false, outlierDetection: false });
      const call = rejection(m.request('http://api/'));
      // The first attempt's exchange is over (the balancer counted it): the call is in its backoff.
      await until(() => m.stats('api')?.endpoints[0]?.requests === 1, 'the first attempt ended');
      await until(() => m.stats('api')?.endpoints[0]?.inflight === 0, 'the first attempt ended');
      const t0 = Date.now();
      await within(how === 'destroy' ? m.destroy() : m.close({ timeout: 100 }), 2000, `${how}()`);
      expect(await within(call, 1000, 'the call in its backoff')).toMatchObject({ code: 'MESH_CLOSED' });
      expect(Date.now() - t0).toBeLessThan(1500);
      expect(s.requests).toBe(1);
    });
  });

  describe('a call made once close() has been called', () => {
    it.each(['close', 'destroy'] as const)(
      'is refused with MESH_CLOSED, also in the same tick (%s)',
      async (how) => {
        const s = await opened.server('api');
        const m = opened.meshFor([s]);
        expect(await (await m.request('http://api/')).body.text()).toBe('api');
        const closing = how === 'close' ? m.close() : m.destroy();
        const sameTick = [rejection(m.request('http://api/')), rejection(m.request(`http://${s.address}/`))];
        for (const error of await Promise.all(sameTick)) expect(error).toMatchObject({ code: 'MESH_CLOSED' });
        await within(closing, 2000, `${how}()`);
        expect(s.requests).toBe(1);
      },
    );
  });
});

describe('circuitBreaker.maxConnections on a live destination', () => {
  /**
   * A server that holds each request until five are held at once or none has arrived for 100 ms,
   * and records the most it held at once (per server).
   */
  async function holdingServer(name: string): Promise<TestServer & { peak(): number; reset(): void }> {
    let held: http.ServerResponse[] = [];
    let peak = 0;
    let timer: NodeJS.Timeout | undefined;
    const release = (): void => {
      clearTimeout(timer);
      for (const res of held.splice(0)) res.end(name);
    };
    const s = await opened.server(name, (req, res) => {
      req.resume();
      held.push(res);
      peak = Math.max(peak, held.length);
      clearTimeout(timer);
      if (held.length >= 5) release();
      else timer = setTimeout(release, 100);
    });
    opened.closers.push(async () => {
      clearTimeout(timer);
      held = [];
    });
    return Object.assign(s, {
      peak: () => peak,
      reset: () => {
        peak = 0;
      },
    });
  }

  async function burst(m: Mesh, n: number): Promise<string[]> {
    return Promise.all(Array.from({ length: n }, async () => (await m.request('http://api/')).body.text()));
  }

  it('a reload to maxConnections: 1 leaves one connection to the endpoint for new requests', async () => {
    const s = await holdingServer('api');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'proxyless-lifecycle-drain-'));
    opened.closers.push(async () => rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'mesh.json');
    const doc = (circuitBreaker: object): string =>
      JSON.stringify({ services: { api: { endpoints: s.address, circuitBreaker } } });
    writeFileSync(file, doc({}));
    const m = opened.mesh({ env: {}, configFile: file });
    expect(await burst(m, 5)).toEqual(Array(5).fill('api'));
    expect(s.peak()).toBe(5);

    const applied = new Promise<Extract<MeshEvent, { type: 'config_applied' }>>((resolve) =>
      m.onEvent((e) => e.type === 'config_applied' && resolve(e)),
    );
    writeFileSync(file, doc({ maxConnections: 1 }));
    await m.reloadConfig();
    const event = await within(applied, 2000, 'config_applied');
    expect(event.changed.get('api')).toEqual(['circuitBreaker']);
    // The breaker stage has no part in a connection cap: the pools are what the change touched.
    expect(event.rebuilt.get('api')).toEqual(['connectionPools']);
    s.reset();
    expect(await burst(m, 5)).toEqual(Array(5).fill('api'));
    expect(s.peak()).toBe(1);
  });

  it("an endpoint's share follows the number of endpoints", async () => {
    const [a, b] = [await holdingServer('a'), await holdingServer('b')];
    const resolver = scriptedResolver();
    const m = opened.mesh({
      env: {},
      resolvers: [resolver],
      services: { api: { circuitBreaker: { maxConnections: 2 } } },
    });
    resolver.answer([a]);
    expect(await burst(m, 4)).toEqual(Array(4).fill('a'));
    expect(a.peak()).toBe(2);
    // Two endpoints now: one connection each, and the first endpoint's pool of two is retired.
    resolver.answer([a, b]);
    // Until b's first connection opens, calls go to a (an endpoint still connecting takes no
    // other call while another can take it): let one call reach b first.
    let reachedB = false;
    for (let i = 0; i < 10 && !reachedB; i++) reachedB = (await burst(m, 1))[0] === 'b';
    expect(reachedB).toBe(true);
    a.reset();
    b.reset();
    expect((await burst(m, 4)).sort()).toEqual(['a', 'a', 'b', 'b']);
    expect([a.peak(), b.peak()]).toEqual([1, 1]);
  });
});
