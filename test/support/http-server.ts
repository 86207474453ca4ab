import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** A real HTTP server on loopback for tests, closed (with its sockets) by `close()`. */
export interface TestServer {
  readonly name: string;
  readonly port: number;
  readonly host: string;
  /** `host:port` as the mesh's endpoint id shows it. */
  readonly address: string;
  readonly requests: number;
  /** Sockets accepted so far and currently open. */
  readonly connections: { accepted: number; open: number };
  /** Resolves when no accepted socket is open any more (at once if none is). */
  noConnections(): Promise<void>;
  readonly server: http.Server;
  close(): Promise<void>;
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, server: TestServer) => void;

/** Default handler: 200 with `x-served-by: <name>` and the body `<name>`. */
export const nameHandler: Handler = (req, res, s) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'x-served-by': s.name, 'content-type': 'text/plain' });
    res.end(s.name);
  });
};

export async function startServer(
  name: string,
  handler: Handler = nameHandler,
  host = '127.0.0.1',
): Promise<TestServer> {
  let requests = 0;
  const connections = { accepted: 0, open: 0 };
  const sockets = new Set<Socket>();
  let idle: Array<() => void> = [];
  const server = http.createServer((req, res) => {
    requests++;
    handler(req, res, api);
  });
  server.on('connection', (socket) => {
    connections.accepted++;
    connections.open++;
    sockets.add(socket);
    socket.on('close', () => {
      connections.open--;
      sockets.delete(socket);
      if (connections.open === 0) {
        const waiting = idle;
        idle = [];
        for (const resolve of waiting) resolve();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as AddressInfo).port;
  const api: TestServer = {
    name,
    port,
    host,
    address: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`,
    get requests() {
      return requests;
    },
    connections,
    noConnections: () =>
      connections.open === 0 ? Promise.resolve() : new Promise<void>((resolve) => idle.push(resolve)),
    server,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  return api;
}

/** Wait until `cond()` holds, re-checking after each turn of the event loop; bounded. */
export async function until(cond: () => boolean, what: string, maxTurns = 200_000): Promise<void> {
  for (let i = 0; i < maxTurns; i++) {
    if (cond()) return;
    await new Promise<void>((r) => setImmediate(r));
  }
  throw new Error(`condition not reached: ${what}`);
}
