import http from 'node:http';
import { Pool } from 'undici';
import { createMesh } from 'proxyless';
let conns = 0;
const s = http.createServer((q, r) => r.end('ok')); s.on('connection', () => conns++);
await new Promise<void>(r => s.listen(0, '127.0.0.1', r));
const port = (s.address() as any).port;
const m = createMesh({ env: {}, services: { api: { endpoints: `127.0.0.1:${port}`, timeout: false } } });
const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 100 });
for (const [name, call] of [['direct', async () => (await pool.request({ path: '/', method: 'GET' })).body.text()], ['mesh', async () => (await m.request('http://api/')).body.text()]] as const) {
  conns = 0; let i = 0; const c0 = process.cpuUsage();
  await Promise.all(Array.from({ length: 32 }, async () => { while (i++ < 5000) await call(); }));
  const c = process.cpuUsage(c0);
  console.log(name, 'connections', conns, 'cpu µs/req', ((c.user + c.system) / 5000).toFixed(1));
}
await m.close(); await pool.close(); s.close();
