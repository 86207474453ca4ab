/**
 * Client overhead over loopback: 32 concurrent callers, one backend in its own process,
 * alternating rounds, medians. Baseline (1.00) is `undici.request` on a `Pool` to the same backend.
 */
import { createMesh } from 'proxyless';
import { Agent, Pool, fetch as undiciFetch, request as undiciRequest } from 'undici';
import { startBackend } from './backends.js';
import { type BenchOptions, type BenchSection, median, quantile, seededShuffle } from './harness.js';

const CONCURRENCY = 32;

type Call = () => Promise<void>;

interface RoundResult {
  rps: number;
  cpuUsPerReq: number;
  latencies: number[];
}

/** `n` calls from the bench's concurrent callers, untimed. */
async function drive(call: Call, n: number): Promise<void> {
  let issued = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (issued < n) {
        issued++;
        await call();
      }
    }),
  );
}

/**
 * One measured round of a client, after an untimed warm-up of its own.
 *
 * No forced GC between rounds: V8 treats a forced full GC as one that should reduce memory and
 * flushes the compiled code of functions not running at that moment, so every round then measured
 * recompilation (most of all for code only one client runs, such as the default policies: with a
 * GC before each round they cost ~75 µs of CPU per request here, against ~17 µs without; every
 * other client ~50 µs more too). A service under steady traffic never pays that. The garbage of
 * one client can still be collected in another's round: the fetch clients, whose garbage is the
 * most, run in rounds of their own (see `run`), and each group's order changes every round.
 */
async function round(call: Call, requests: number): Promise<RoundResult> {
  await drive(call, Math.min(300, requests));
  const latencies: number[] = [];
  let issued = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (issued < requests) {
      issued++;
      const s = performance.now();
      await call();
      latencies.push(performance.now() - s);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const elapsed = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { rps: (requests / elapsed) * 1000, cpuUsPerReq: (cpu.user + cpu.system) / requests, latencies };
}

export async function run(options: BenchOptions): Promise<BenchSection[]> {
  const backend = await startBackend();
  const origin = `http://127.0.0.1:${backend.port}`;
  const pool = new Pool(origin, { connections: 100 });
  // undici's own interceptor model as a reference: the same pool behind one interceptor that does
  // nothing. undici wraps the caller's handler into its controller-style API for the interceptor
  // and back for the pool, as it does for every interceptor (`Dispatcher.compose`).
  const composed = pool.compose((dispatch) => (opts, handler) => dispatch(opts, handler));
  // The same reference for fetch: undici's fetch over an Agent behind one interceptor that does
  // nothing. fetch's handler is an old-style one, so undici wraps it into the controller API for
  // the interceptor and back for the Agent's pool — what every interceptor stack costs fetch.
  const agent = new Agent({ connections: 100 });
  const composedAgent = agent.compose((dispatch) => (opts, handler) => dispatch(opts, handler));
  const mesh = createMesh({ env: {}, services: { bench: { endpoints: `127.0.0.1:${backend.port}` } } });
  // The same mesh with every resilience policy off: what the mesh itself costs.
  const bare = createMesh({
    env: {},
    services: {
      bench: { endpoints: `127.0.0.1:${backend.port}`, timeout: false, retry: false, circuitBreaker: false },
    },
  });
  const requests = options.quick ? 2_000 : 6_000;
  const rounds = options.quick ? 3 : 11;

  const consume = async (body: { dump(): Promise<void> } | { text(): Promise<string> }): Promise<void> => {
    await (body as { text(): Promise<string> }).text();
  };
  const clients: Array<[string, Call]> = [
    [
      'undici.request (Pool) — baseline',
      async () => consume((await pool.request({ path: '/', method: 'GET' })).body),
    ],
    ['undici.request(url) (Agent)', async () => consume((await undiciRequest(`${origin}/`)).body)],
    [
      'undici.request, Pool + one no-op interceptor',
      async () => consume((await composed.request({ path: '/', method: 'GET' })).body),
    ],
    ['mesh.request', async () => consume((await mesh.request('http://bench/')).body)],
    ['mesh.request, no policies', async () => consume((await bare.request('http://bench/')).body)],
    ['undici.fetch', async () => void (await (await undiciFetch(`${origin}/`)).text())],
    ['mesh.fetch', async () => void (await (await mesh.fetch('http://bench/')).text())],
    [
      'undici.fetch, Agent + one no-op interceptor',
      async () => void (await (await undiciFetch(`${origin}/`, { dispatcher: composedAgent })).text()),
    ],
    ['global fetch', async () => void (await (await fetch(`${origin}/`)).text())],
    ['global fetch after mesh.install()', async () => void (await (await fetch('http://bench/')).text())],
  ];
  const results = new Map<string, RoundResult[]>(clients.map(([n]) => [n, []]));
  let leftTimers = -1;
  let undo: (() => void) | undefined;
  const run1 = async (name: string, call: Call, n: number): Promise<RoundResult> => {
    if (name.includes('install')) undo = mesh.install();
    try {
      return await round(call, n);
    } finally {
      undo?.();
      undo = undefined;
    }
  };
  try {
    // The `request` clients first, then the `fetch` clients, each group warmed up and measured in
    // rounds of its own: fetch's objects live until a full GC (it holds them through weak
    // references, which a young-generation GC keeps), so a fetch client leaves hundreds of MB of
    // old-generation garbage that the next client's round would collect. Within a group, a new
    // order every round (seeded: the same orders every run), so no client always runs after the
    // same one. (A rotation kept every client after the same one: the baseline always ran after
    // `global fetch after mesh.install()`, paid for its garbage and read ~7 % slower than the
    // Agent, and every ratio to it higher.)
    const shuffle = seededShuffle(0x5eed);
    for (const group of [false, true].map((f) => clients.filter(([n]) => n.includes('fetch') === f))) {
      // Warm-up: connections, JIT.
      for (const [name, call] of group) await run1(name, call, 1000);
      for (let r = 0; r < rounds; r++) {
        for (const [name, call] of shuffle(group)) results.get(name)!.push(await run1(name, call, requests));
      }
    }
  } finally {
    undo?.();
    await mesh.close();
    await bare.close();
    await pool.close();
    await agent.close();
  }
  try {
    // With the other meshes closed: their own periodic timers (a breaker's rolling window re-arms
    // itself) would otherwise be counted against these calls.
    leftTimers = await timersLeftAfterCalls(backend.port);
  } finally {
    await backend.stop();
  }
  // Ratio per round (each client against the baseline measured moments before it), then the
  // median: this VM's speed drifts by ±40 % between rounds, which a ratio of medians would keep.
  const baseRounds = results.get(clients[0]![0])!;
  const rows = clients.map(([name]) => {
    const rs = results.get(name)!;
    const rps = median(rs.map((r) => r.rps));
    const lat = rs.flatMap((r) => r.latencies);
    return [
      name,
      median(rs.map((r, i) => r.rps / baseRounds[i]!.rps)),
      Math.round(rps),
      quantile(lat, 0.5) * 1000,
      quantile(lat, 0.99) * 1000,
      median(rs.map((r) => r.cpuUsPerReq)),
    ];
  });
  const ratio = (n: string): number => Number(rows.find((r) => r[0] === n)![1]);
  const meshReq = ratio('mesh.request');
  const bareReq = ratio('mesh.request, no policies');
  const noopReq = ratio('undici.request, Pool + one no-op interceptor');
  // A client against another, round by round (each measured moments apart): throughput, and the
  // client CPU per request (less moved by the backend sharing the cores).
  const versus = (n: string, base: string): { rps: number; cpu: number } => {
    const b = results.get(base)!;
    const rs = results.get(n)!;
    return {
      rps: median(rs.map((r, i) => r.rps / b[i]!.rps)),
      cpu: median(rs.map((r, i) => b[i]!.cpuUsPerReq / r.cpuUsPerReq)),
    };
  };
  const viaAgent = 'undici.request(url) (Agent)';
  const meshAgent = versus('mesh.request', viaAgent);
  const bareAgent = versus('mesh.request, no policies', viaAgent);
  const fetchVs = versus('mesh.fetch', 'undici.fetch');
  const meshFetch = fetchVs.rps;
  const noopFetch = versus('undici.fetch, Agent + one no-op interceptor', 'undici.fetch');
  const meshVsNoopFetch = versus('mesh.fetch', 'undici.fetch, Agent + one no-op interceptor');
  return [
    {
      title: 'HTTP client overhead (loopback, 32 concurrent callers)',
      description: `${rounds} rounds of ${requests} requests per client, the request clients' rounds first and then the fetch clients' (each group in a new seeded order every round); medians. Ratio = median over rounds of throughput / the baseline's throughput in the same round (for a fetch client, the baseline's round of the same number).`,
      columns: ['client', 'throughput ratio', 'req/s', 'p50 µs', 'p99 µs', 'client CPU µs/req'],
      rows,
      notes: [
        `mesh.request / undici.request on a Pool = ${meshReq.toFixed(2)} with the default policies (retries, breaker, telemetry), ${bareReq.toFixed(2)} with none (target ≥ 0.95: ${meshReq >= 0.95 ? 'met' : bareReq >= 0.95 ? 'met without policies only' : 'NOT met'})`,
        `mesh.request / undici.request(url) through an Agent (the same call a user makes without the mesh), round by round = ${meshAgent.rps.toFixed(2)} (target ≥ 0.95: ${meshAgent.rps >= 0.95 ? 'met' : 'NOT met'}); by client CPU per request ${meshAgent.cpu.toFixed(2)}; with no policies ${bareAgent.rps.toFixed(2)} (CPU ${bareAgent.cpu.toFixed(2)})`,
        `timers (other than undici's one shared connection timer) added by 1,000 more mesh.request calls with timeout and perTryTimeout set, once they ended: ${leftTimers} (target 0: ${leftTimers <= 0 ? 'met' : 'NOT met'})`,
        `mesh.fetch / undici.fetch, round by round = ${meshFetch.toFixed(2)} (target ≥ 0.95: ${meshFetch >= 0.95 ? 'met' : 'NOT met'}); by client CPU per request ${fetchVs.cpu.toFixed(2)}`,
        `reference: one interceptor that does nothing, composed on the same Pool with undici's Dispatcher.compose = ${noopReq.toFixed(2)} of the Pool`,
        `reference for fetch: undici.fetch over an Agent composed with one interceptor that does nothing = ${noopFetch.rps.toFixed(2)} of undici.fetch (CPU ${noopFetch.cpu.toFixed(2)}); mesh.fetch against it = ${meshVsNoopFetch.rps.toFixed(2)} (CPU ${meshVsNoopFetch.cpu.toFixed(2)})`,
      ],
    },
  ];
}

/**
 * Timers calls leave behind: through a mesh with an overall and a per-try timeout (each call arms
 * both), the live timers after 10 calls and after 1,000 more. The difference must be 0: every
 * call's timers are released when its exchange ends, not when its deadline passes. (What stays
 * is per destination or per connection: the breaker's window, the balancer's and the idle sweeps,
 * undici's keep-alive timers.)
 */
export async function timersLeftAfterCalls(port: number): Promise<number> {
  const { createHook } = await import('node:async_hooks');
  const m = createMesh({
    env: {},
    services: { bench: { endpoints: `127.0.0.1:${port}`, timeout: '15s', perTryTimeout: '10s' } },
  });
  // Each live Timeout with the file that created it: undici keeps one shared timer of its own for
  // its connection timeouts (armed and disarmed as sockets come and go), which is not a timer of
  // the call; every other creator counts.
  const live = new Map<number, boolean>();
  const ownedByUndici = (): boolean => {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 40;
    const stack = new Error().stack ?? '';
    Error.stackTraceLimit = limit;
    // The creator is the first frame after the timers module's own frames.
    const lines = stack.split('\n');
    const i = lines.findLastIndex((l) => l.includes('node:timers') || l.includes('node:internal/timers'));
    const frame = i < 0 ? undefined : lines[i + 1];
    return frame !== undefined && /[\\/]undici[\\/]lib[\\/]/.test(frame);
  };
  const hook = createHook({
    init(id, type) {
      if (type === 'Timeout') live.set(id, ownedByUndici());
    },
    destroy(id) {
      live.delete(id);
    },
  });
  const ours = (): number => [...live.values()].filter((undici) => !undici).length;
  // Two turns: a timer that fired (a periodic one re-arms itself) reports its destroy a turn later.
  const turn = () => new Promise((resolve) => setImmediate(resolve));
  const settle = async () => {
    await turn();
    await turn();
  };
  hook.enable();
  try {
    for (let i = 0; i < 10; i++) await (await m.request('http://bench/')).body.text();
    await settle();
    const before = ours();
    for (let i = 0; i < 1000; i++) await (await m.request('http://bench/')).body.text();
    await settle();
    return ours() - before;
  } finally {
    hook.disable();
    await m.close();
  }
}
