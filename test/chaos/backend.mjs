// A chaos-suite backend: a plain HTTP server in its own process on 127.0.0.1, steered over IPC.
// It counts every request it receives (the suite's attempt count) and can be slowed, made to
// answer 503, to reset connections, or to never answer.
import http from 'node:http';

const name = process.argv[2] ?? 'backend';
const mode = {
  /** Delay before answering, ms. */
  delayMs: 0,
  /** Answer 503 to every n-th request (2 = 50 %); 0 = never. */
  errorEvery: 0,
  /** Reset connections: GETs alternately before the head and mid-body; POSTs after reading the body. */
  reset: false,
  /** Accept connections and never answer. */
  hang: false,
};
let requests = 0;
let posts = 0;
const postIds = [];
const hanging = new Set();

const server = http.createServer((req, res) => {
  requests++;
  const n = requests;
  if (req.method === 'POST') {
    posts++;
    const id = req.headers['x-request-id'];
    if (typeof id === 'string') postIds.push(id);
  }
  if (mode.hang) {
    hanging.add(res);
    res.on('close', () => hanging.delete(res));
    req.resume();
    return;
  }
  req.resume();
  req.on('end', () => {
    if (mode.reset) {
      if (req.method !== 'GET' || n % 2 === 0) {
        req.socket.destroy();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1024' });
      res.write(Buffer.alloc(512, 120), () => setImmediate(() => req.socket.destroy()));
      return;
    }
    const answer = () => {
      const fail = mode.errorEvery > 0 && n % mode.errorEvery === 0;
      res.writeHead(fail ? 503 : 200, { 'content-type': 'text/plain', 'x-served-by': name });
      res.end(name);
    };
    if (mode.delayMs > 0) setTimeout(answer, mode.delayMs);
    else answer();
  });
});
server.keepAliveTimeout = 30_000;

process.on('message', (msg) => {
  if (msg.type === 'mode') {
    Object.assign(mode, msg.mode);
    process.send({ id: msg.id, ok: true });
  } else if (msg.type === 'count') {
    process.send({ id: msg.id, requests, posts, postIds });
  } else if (msg.type === 'close') {
    for (const res of hanging) res.destroy();
    server.close(() => process.exit(0));
    server.closeAllConnections();
  }
});
process.on('disconnect', () => process.exit(0));

server.listen(0, '127.0.0.1', () => {
  process.send({ type: 'ready', port: server.address().port });
});
