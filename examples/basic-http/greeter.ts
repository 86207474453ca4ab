/**
 * The callee: a plain Node HTTP service. `PORT=0` picks a free port; the chosen port is printed
 * as `listening <port>` so a parent process can find it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const name = process.env.INSTANCE ?? 'greeter-1';
const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  res.writeHead(200, { 'content-type': 'application/json', 'x-served-by': name });
  res.end(
    JSON.stringify({
      greeting: `hello, ${url.searchParams.get('name') ?? 'world'}`,
      from: name,
      host: req.headers.host,
    }),
  );
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
