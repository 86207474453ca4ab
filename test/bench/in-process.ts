/**
 * Where a call's client CPU goes, without sockets: undici's `Pool.dispatch` is replaced (in child
 * processes only) by one that takes the request through undici's own `UnwrapHandler`, as
 * `Pool.dispatch` does, and answers on the next turn of the event loop with a 200, five header
 * lines and a two-byte body. What is left is the client's code alone — undici's request API, the
 * interceptors, the mesh — with none of the kernel's, the parser's or a backend's time, which
 * moves the loopback table's ratios by ±0.05 between runs.
 *
 * Each client runs in fresh processes, interleaved round by round: a client's garbage (fetch keeps
 * its objects until a full GC) is never collected in another one's measurement. The clock row
 * counts the `performance.now()` reads of one `mesh.request` with the default policies.
 */
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BenchOptions, type BenchSection, median, seededShuffle } from './harness.js';

// Runs in a fresh process: `node in-process-child.mjs <client> <calls> <runs>`; prints
// `{ "us": [µs of CPU per call, one per run] }`, or `{ "reads": n }` for the `clock` client.
const CHILD = `
import { createRequire } from 'node:module';
const here = createRequire(import.meta.url);
// undici as the mesh resolves it: the very modules its pools are made of.
const fromMesh = createRequire(here.resolve('proxyless'));
const undici = fromMesh('undici');
const { unwrap } = fromMesh('undici/lib/handler/unwrap-handler.js');
const { createMesh } = await import('proxyless');
const raw = ['Content-Type', 'text/plain', 'Content-Length', '2', 'Date', 'Sat, 05 Dec 2026 09:00:00 GMT', 'Connection', 'keep-alive', 'Keep-Alive', 'timeout=30'].map((s) => Buffer.from(s));
const body = Buffer.from('ok');
undici.Pool.prototype.dispatch = function (opts, handler) {
  const h = unwrap(handler);
  setImmediate(() => {
    h.onConnect(() => {});
    h.onResponseStarted?.();
    h.onHeaders(200, raw.slice(), () => {}, 'OK');
    h.onData(body);
    h.onComplete([]);
  });
  return true;
};
const [client, callsArg, runsArg] = process.argv.slice(2);
const calls = Number(callsArg);
const runs = Number(runsArg);
// Port 8080: fetch refuses port 1 and other "bad ports" before dispatching.
const origin = 'http://127.0.0.1:8080';
const services = (policy) => ({ bench: { endpoints: '127.0.0.1:8080', ...policy } });
const mesh = createMesh({ env: {}, services: services({}) });
const bare = createMesh({ env: {}, services: services({ timeout: false, retry: false, circuitBreaker: false }) });
const pool = new undici.Pool(origin);
const agent = new undici.Agent();
const noop = (d) => d.compose((dispatch) => (opts, handler) => dispatch(opts, handler));
const noopPool = noop(pool);
const noopAgent = noop(agent);
const text = async (r) => r.body.text();
const CLIENTS = {
  pool: async () => text(await pool.request({ path: '/', method: 'GET' })),
  agent: async () => text(await agent.request({ origin, path: '/', method: 'GET' })),
  'noop-pool': async () => text(await noopPool.request({ path: '/', method: 'GET' })),
  mesh: async () => text(await mesh.request('http://bench/')),
  'mesh-bare': async () => text(await bare.request('http://bench/')),
  fetch: async () => (await undici.fetch(origin + '/', { dispatcher: agent })).text(),
  'noop-fetch': async () => (await undici.fetch(origin + '/', { dispatcher: noopAgent })).text(),
  'mesh-fetch': async () => (await mesh.fetch('http://bench/')).text(),
};
async function measure(call, n) {
  let issued = 0;
  const c0 = process.cpuUsage();
  await Promise.all(Array.from({ length: 32 }, async () => { while (issued++ < n) await call(); }));
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / n;
}
if (client === 'clock') {
  const call = CLIENTS.mesh;
  for (let i = 0; i < 200; i++) await call();
  const now = performance.now.bind(performance);
  let reads = 0;
  performance.now = () => { reads++; return now(); };
  for (let i = 0; i < 1000; i++) await call();
  performance.now = now;
  process.stdout.write(JSON.stringify({ reads: reads / 1000 }));
} else {
  const call = CLIENTS[client];
  await measure(call, calls);
  const us = [];
  for (let i = 0; i < runs; i++) us.push(await measure(call, calls));
  process.stdout.write(JSON.stringify({ us }));
}
await mesh.close();
await bare.close();
await pool.close();
await agent.close();
`;

const ROWS: Array<[client: string, label: string]> = [
  ['pool', 'undici.request (Pool) — baseline'],
  ['agent', 'undici.request through an Agent'],
  ['noop-pool', 'undici.request, Pool + one no-op interceptor'],
  ['mesh', 'mesh.request, default policies'],
  ['mesh-bare', 'mesh.request, no policies'],
  ['fetch', 'undici.fetch (Agent) — fetch baseline'],
  ['noop-fetch', 'undici.fetch, Agent + one no-op interceptor'],
  ['mesh-fetch', 'mesh.fetch'],
];

export async function run(options: BenchOptions): Promise<BenchSection[]> {
  // The child script sits beside this bundle so that `proxyless` resolves from the workspace.
  const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'in-process-child.mjs');
  writeFileSync(child, CHILD);
  const rounds = options.quick ? 2 : 5;
  const spawn = <T>(client: string, calls: number, runs: number): T =>
    JSON.parse(
      execFileSync(process.execPath, [child, client, String(calls), String(runs)], { encoding: 'utf8' }),
    ) as T;
  const us = new Map<string, number[]>(ROWS.map(([c]) => [c, []]));
  let reads = Number.NaN;
  try {
    // A new seeded order every round: no client always runs right after the same one (a fetch
    // client's process leaves hundreds of MB for the system to reclaim as it exits).
    const shuffle = seededShuffle(0x5eed);
    for (let r = 0; r < rounds; r++) {
      for (const [client] of shuffle(ROWS)) {
        const fetchClient = client.includes('fetch');
        const calls = (options.quick ? 5_000 : 20_000) / (fetchClient && options.quick ? 4 : 1);
        const out = spawn<{ us: number[] }>(client, calls, 3);
        us.get(client)!.push(median(out.us));
      }
    }
    reads = spawn<{ reads: number }>('clock', 0, 0).reads;
  } finally {
    rmSync(child, { force: true });
  }
  const cost = (client: string): number => median(us.get(client)!);
  const rows = ROWS.map(([client, label]) => {
    const base = client.includes('fetch') ? cost('fetch') : cost('pool');
    return [label, cost(client), cost(client) - base, base / cost(client)];
  });
  const f = (x: number): string => x.toFixed(2);
  return [
    {
      title: 'HTTP client overhead, in process (no sockets)',
      description: `undici's Pool.dispatch answers on the next turn of the event loop through undici's own UnwrapHandler (200, five header lines, two-byte body); 32 callers; each client in ${rounds} fresh processes, interleaved in a new seeded order every round, each the median of 3 runs of ${options.quick ? '5,000 calls (a quarter as many for fetch)' : '20,000 calls'}; medians. "Ratio" is the baseline's CPU over the client's; on loopback the kernel, undici's parser and the backend add the same work to every client, so the loopback table's ratios are closer to 1.`,
      columns: ['client', 'client CPU µs/call', 'µs over its baseline', 'ratio'],
      rows,
      notes: [
        `undici's own no-op interceptor costs ${f(cost('noop-pool') - cost('pool'))} µs a call over the Pool (ratio ${f(cost('pool') / cost('noop-pool'))}): its handler conversion, the Proxy that compose returns, and the response head parsed twice (once for the interceptor, once for request()'s result).`,
        `mesh.request with the default policies costs ${f(cost('mesh') - cost('noop-pool'))} µs a call over that reference, ${f(cost('mesh-bare') - cost('noop-pool'))} µs with no policies; mesh.fetch ${f(cost('mesh-fetch') - cost('noop-fetch'))} µs over undici.fetch behind one no-op interceptor.`,
        `clock reads (performance.now) per mesh.request with the default policies: ${reads} (undici.request: 0)`,
      ],
    },
  ];
}
