/**
 * Where the time of one call goes: `N` calls from 32 callers to a loopback backend, to run under
 * a CPU profiler. Uses the built packages, as `pnpm bench` does (`pnpm build` first).
 *
 *   node --import tsx --cpu-prof --cpu-prof-dir=.tmp/prof test/bench/profile.ts [request|fetch]
 *
 * `request` (default) profiles `mesh.request`, `fetch` profiles `mesh.fetch`. `DIRECT=1` calls the
 * backend without the mesh (`undici.request` on a Pool, or `undici.fetch`), the baseline.
 * `POLICY='{"timeout":false}'` sets the service policy as JSON; `REQUESTS` the number of calls.
 */
import { createMesh } from 'proxyless';
import { Pool, fetch as undiciFetch } from 'undici';
import { startBackend } from './backends.js';

const mode = process.argv[2] === 'fetch' ? 'fetch' : 'request';
const direct = Boolean(process.env.DIRECT);
const backend = await startBackend();
const origin = `http://127.0.0.1:${backend.port}`;
const policy = process.env.POLICY ? JSON.parse(process.env.POLICY) : {};
const mesh = createMesh({
  env: {},
  services: { bench: { endpoints: `127.0.0.1:${backend.port}`, ...policy } },
});
const pool = new Pool(origin, { connections: 100 });

const call: () => Promise<unknown> =
  mode === 'fetch'
    ? direct
      ? async () => (await undiciFetch(`${origin}/`)).text()
      : async () => (await mesh.fetch('http://bench/')).text()
    : direct
      ? async () => (await pool.request({ path: '/', method: 'GET' })).body.text()
      : async () => (await mesh.request('http://bench/')).body.text();

const N = Number(process.env.REQUESTS ?? (mode === 'fetch' ? 20_000 : 30_000));
let issued = 0;
const t0 = performance.now();
const c0 = process.cpuUsage();
await Promise.all(
  Array.from({ length: 32 }, async () => {
    while (issued++ < N) await call();
  }),
);
const c = process.cpuUsage(c0);
process.stdout.write(
  `${N} × ${direct ? 'undici' : 'mesh'}.${mode}: ${Math.round((N / (performance.now() - t0)) * 1000)} req/s, client CPU ${((c.user + c.system) / N).toFixed(1)} µs/req\n`,
);
await mesh.close();
await pool.close();
await backend.stop();
