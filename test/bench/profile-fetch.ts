/**
 * Where the time of one `mesh.fetch` goes (see profile-request.ts for `mesh.request`).
 *
 *   node --conditions=@proxyless/source --import tsx --cpu-prof --cpu-prof-dir=.tmp/prof test/bench/profile-fetch.ts
 *
 * `DIRECT=1` profiles `undici.fetch` to the backend instead, the baseline; `POLICY` sets the service policy as JSON.
 */
import { createMesh } from 'proxyless';
import { fetch as undiciFetch } from 'undici';
import { startBackend } from './backends.js';

const backend = await startBackend();
const policy = process.env.POLICY ? JSON.parse(process.env.POLICY) : {};
const mesh = createMesh({
  env: {},
  services: { bench: { endpoints: `127.0.0.1:${backend.port}`, ...policy } },
});
const N = Number(process.env.REQUESTS ?? 20_000);
let issued = 0;
const t0 = performance.now();
const c0 = process.cpuUsage();
await Promise.all(
  Array.from({ length: 32 }, async () => {
    while (issued++ < N) {
      const r = process.env.DIRECT
        ? await undiciFetch(`http://127.0.0.1:${backend.port}/`)
        : await mesh.fetch('http://bench/');
      await r.text();
    }
  }),
);
const c = process.cpuUsage(c0);
process.stdout.write(
  `${N} fetches: ${Math.round((N / (performance.now() - t0)) * 1000)} req/s, client CPU ${((c.user + c.system) / N).toFixed(1)} µs/req\n`,
);
await mesh.close();
await backend.stop();
