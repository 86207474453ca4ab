import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** A demo backend on 127.0.0.1: answers with its name, optionally slowly or with 503s. */
export interface DemoBackend {
  name: string;
  port: number;
  /** Extra latency per request, ms. */
  delayMs: number;
  /** Answer 503 while true. */
  failing: boolean;
  served: number;
  close(): Promise<void>;
}

export async function startBackend(name: string): Promise<DemoBackend> {
  const backend: DemoBackend = {
    name,
    port: 0,
    delayMs: 0,
    failing: false,
    served: 0,
    close: async () => undefined,
  };
  const server = http.createServer((req, res) => {
    req.resume();
    backend.served++;
    const answer = (): void => {
      res.writeHead(backend.failing ? 503 : 200, { 'content-type': 'text/plain', 'x-served-by': name });
      res.end(backend.failing ? 'unavailable' : `hello from ${name}`);
    };
    if (backend.delayMs > 0) setTimeout(answer, backend.delayMs);
    else answer();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  backend.port = (server.address() as AddressInfo).port;
  backend.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return backend;
}
