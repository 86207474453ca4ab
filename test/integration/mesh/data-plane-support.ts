import { createHook } from 'node:async_hooks';
import net from 'node:net';
import { createMesh, type Mesh, type MeshOptions, type PolicyOptions } from 'proxyless';
import { type Handler, startServer, type TestServer } from '../../support/http-server.js';

/** Meshes and servers a test file opened, closed after each test. */
export class Opened {
  meshes: Mesh[] = [];
  servers: TestServer[] = [];
  closers: (() => Promise<void>)[] = [];

  mesh(options: MeshOptions): Mesh {
    const m = createMesh(options);
    this.meshes.push(m);
    return m;
  }

  async server(name: string, handler?: Handler): Promise<TestServer> {
    const s = await startServer(name, handler);
    this.servers.push(s);
    return s;
  }

  /** A mesh with one service `api` whose endpoints are the given servers. */
  meshFor(
    servers: readonly { address: string }[],
    policy: PolicyOptions = {},
    extra: MeshOptions = {},
  ): Mesh {
    return this.mesh({
      env: {},
      ...extra,
      services: { api: { endpoints: servers.map((s) => s.address).join(','), ...policy } },
    });
  }

  async closeAll(): Promise<void> {
    // Bounded: a mesh that cannot shut down fails its own test, not every later hook.
    await Promise.all(
      this.meshes.splice(0).map((m) => within(m.destroy(), 3000, 'mesh.destroy()').catch(() => undefined)),
    );
    await Promise.all(this.servers.splice(0).map((s) => s.close()));
    await Promise.all(this.closers.splice(0).map((c) => c()));
  }
}

/** A port nothing listens on (a server opened and closed again). */
export { refusingPort as deadPort } from '../../support/ports.js';

/**
 * A raw TCP server that records each request head as sent on the wire and answers `200 ok`.
 * Node's HTTP parser rejects methods it does not know in that case (`patch`), so wire-level
 * checks use this one.
 */
export async function rawServer(): Promise<{
  port: number;
  address: string;
  heads: string[];
  close(): Promise<void>;
}> {
  const heads: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let buf = '';
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      let end = buf.indexOf('\r\n\r\n');
      while (end >= 0) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        heads.push(head);
        const len = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        if (len) buf = buf.slice(Number(len[1]));
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok');
        end = buf.indexOf('\r\n\r\n');
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    address: `127.0.0.1:${port}`,
    heads,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Settle within `ms`, else reject with "timed out: what" (the pending promise is left alone). */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** The error and its `cause` chain, as a list. */
export function causes(error: unknown): unknown[] {
  const out: unknown[] = [];
  let e: unknown = error;
  while (e !== undefined && e !== null && out.length < 10) {
    out.push(e);
    e = (e as { cause?: unknown }).cause;
  }
  return out;
}

/** The error a promise rejects with (fails when it resolves). */
export async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection, got a result');
}

/** Active handles of a kind (`Timeout`, `TCPSocketWrap`, …). */
export function activeCount(kind: string): number {
  return process.getActiveResourcesInfo().filter((k) => k === kind).length;
}

/**
 * Count live `Timeout` objects, referenced or not (`process.getActiveResourcesInfo()` lists only
 * referenced ones, and the mesh unrefs its timers): created and neither fired nor cleared.
 */
export function trackTimers(): { live(): number; stop(): void } {
  const live = new Set<number>();
  const hook = createHook({
    init(id, type) {
      if (type === 'Timeout') live.add(id);
    },
    destroy(id) {
      live.delete(id);
    },
  });
  hook.enable();
  return { live: () => live.size, stop: () => hook.disable() };
}
