// A loopback HTTP backend for benchmarks, in its own process so its CPU is not counted as the
// client's. Prints its port on stdout, exits when stdin closes (the parent went away).
import http from 'node:http';

const delayMs = Number(process.argv[2] ?? 0);
const body = Buffer.from('ok');
const server = http.createServer((req, res) => {
  req.resume();
  const send = () => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
    res.end(body);
  };
  if (delayMs > 0) setTimeout(send, delayMs);
  else send();
});
server.keepAliveTimeout = 30_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
process.stdin.resume();
