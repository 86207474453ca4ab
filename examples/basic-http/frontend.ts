/**
 * The caller: configured only by environment variables.
 *
 *   MESH_SERVICE_NAME=frontend MESH_ENDPOINTS_GREETER=127.0.0.1:8081,127.0.0.1:8082 PORT=8080 \
 *     pnpm frontend
 *
 * `http://greeter/…` is resolved by the mesh; every other host passes through untouched.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMesh } from 'proxyless';

const mesh = createMesh();

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const upstream = await mesh.fetch(
      `http://greeter/hello?name=${encodeURIComponent(url.searchParams.get('name') ?? 'frontend')}`,
    );
    const body = (await upstream.json()) as { greeting: string; from: string };
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ...body, via: 'frontend' }));
  } catch (error) {
    res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`greeter call failed: ${(error as Error).message}`);
  }
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});

async function shutdown(): Promise<void> {
  server.close();
  await mesh.close();
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown());
process.on('SIGINT', () => void shutdown());
