/**
 * Long-lived responses (server-sent events, long polls, downloads) each hold an HTTP/1.1
 * connection until they end. With a default of 100 connections per endpoint, the 101st call to a
 * service with 100 event streams open waited in the pool for one of them to end, with no timeout
 * by default: for ever, where undici and fetch answered at once. The default is now Envoy's
 * `max_connections`, 1024 per endpoint: a burst still waits for connections rather than opening
 * one per call at once. A bound the user sets holds, up to 2³²−1 (no bound, as Istio).
 */
import type http from 'node:http';
import { createMesh, type Mesh, type MeshOptions } from 'proxyless';
import type { Dispatcher } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

const meshes: Mesh[] = [];
const servers: TestServer[] = [];
const open: Dispatcher.ResponseData[] = [];
/** The server side of each event stream, in the order opened. */
const streams: http.ServerResponse[] = [];
afterEach(async () => {
  for (const r of open.splice(0)) {
    r.body.on('error', () => undefined);
    r.body.destroy();
  }
  streams.length = 0;
  for (const m of meshes.splice(0)) await m.destroy();
  for (const s of servers.splice(0)) await s.close();
});

/** `/events` starts an event stream and ends it only when the test does; any other path answers at once. */
function streaming(req: http.IncomingMessage, res: http.ServerResponse): void {
  req.resume();
  if (req.url === '/events') {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: hello\n\n');
    streams.push(res);
    return;
  }
  res.end('ok');
}

async function openStreams(mesh: Mesh, n: number): Promise<void> {
  // The signal only turns a hang into a failure with a name; a stream needs no time of its own.
  const signal = AbortSignal.timeout(10_000);
  for (let i = 0; i < n; i++) {
    const r = await mesh.request('http://feed/events', { signal });
    expect(r.statusCode).toBe(200);
    open.push(r);
  }
}

/** Calls on the service's one endpoint, counted from the pick (queued in its pool or sent). */
function picked(mesh: Mesh): number | undefined {
  return mesh.stats('feed')?.endpoints[0]?.inflight;
}

describe('long-lived responses and the connections of an endpoint', () => {
  it('a call to a service with 101 event streams open is answered at once (1024 by default)', async () => {
    const server = await startServer('feed', streaming);
    servers.push(server);
    const mesh = createMesh({ env: {}, services: { feed: { endpoints: server.address } } });
    meshes.push(mesh);
    await openStreams(mesh, 101);
    const r = await mesh.request('http://feed/status', { signal: AbortSignal.timeout(10_000) });
    expect([r.statusCode, await r.body.text()]).toEqual([200, 'ok']);
    expect(server.connections.accepted).toBe(102);
  });

  /**
   * A burst of `total` calls whose first `connections` are held until all of them have arrived
   * (each on a connection of its own); then every one is answered, and the rest of the burst is
   * served on those connections. Returns the connections the server accepted.
   */
  async function heldBurst(options: MeshOptions, connections: number, total: number): Promise<number> {
    const held: http.ServerResponse[] = [];
    let holding = true;
    const server = await startServer('burst', (req, res) => {
      req.resume();
      if (!holding) {
        res.end('ok');
        return;
      }
      held.push(res);
      if (held.length === connections) {
        holding = false;
        for (const r of held) r.end('ok');
      }
    });
    servers.push(server);
    const mesh = createMesh({
      env: {},
      ...options,
      services: { feed: { endpoints: server.address, ...options.services?.feed } },
    });
    meshes.push(mesh);
    const signal = AbortSignal.timeout(20_000);
    const statuses = await Promise.all(
      Array.from({ length: total }, async () => {
        const r = await mesh.request('http://feed/burst', { signal });
        await r.body.dump();
        return r.statusCode;
      }),
    );
    expect(statuses.filter((s) => s === 200)).toHaveLength(total);
    return server.connections.accepted;
  }

  it('a burst beyond 1024 calls waits for the 1024 connections of the endpoint (Envoy max_connections)', async () => {
    expect(await heldBurst({}, 1024, 1100)).toBe(1024);
  }, 30_000);

  it('a service whose circuitBreaker.maxConnections gives an endpoint more than 1024 gets them', async () => {
    const options: MeshOptions = { services: { feed: { circuitBreaker: { maxConnections: 1100 } } } };
    expect(await heldBurst(options, 1100, 1150)).toBe(1100);
  }, 30_000);

  it('connectionsPerEndpoint, when set, caps a maxConnections share', async () => {
    const options: MeshOptions = {
      connectionsPerEndpoint: 3,
      services: { feed: { circuitBreaker: { maxConnections: 10 } } },
    };
    expect(await heldBurst(options, 3, 20)).toBe(3);
  });

  for (const [name, settings] of [
    ['connectionsPerEndpoint: 2', { env: {}, connectionsPerEndpoint: 2 }],
    ['MESH_CONNECTIONS_PER_ENDPOINT=2', { env: { MESH_CONNECTIONS_PER_ENDPOINT: '2' } }],
  ] as const) {
    it(`${name} still bounds them: a call beyond waits for a connection to come free`, async () => {
      const server = await startServer('feed', streaming);
      servers.push(server);
      const mesh = createMesh({ ...settings, services: { feed: { endpoints: server.address } } });
      meshes.push(mesh);
      await openStreams(mesh, 2);
      const waiting = mesh.request('http://feed/status');
      // Picked and handed to the endpoint's pool, which has no connection for it...
      expect(picked(mesh)).toBe(3);
      // ...until a stream ends: its connection, kept alive, takes the waiting call.
      streams[0]?.end();
      const r = await waiting;
      expect([r.statusCode, await r.body.text()]).toEqual([200, 'ok']);
      expect(server.connections.accepted).toBe(2);
      expect(server.requests).toBe(3);
    });
  }

  it('MESH_CONNECTIONS_PER_ENDPOINT takes up to 2³²−1 (no bound, as Istio)', () => {
    const mesh = createMesh({ env: { MESH_CONNECTIONS_PER_ENDPOINT: '4294967295' } });
    meshes.push(mesh);
    expect(() => createMesh({ env: { MESH_CONNECTIONS_PER_ENDPOINT: '4294967296' } })).toThrow(
      /MESH_CONNECTIONS_PER_ENDPOINT.*4294967296/,
    );
  });
});
