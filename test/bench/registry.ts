/**
 * Registry update costs: applying a 10,000-endpoint update through `ResolverHub` (alone, and from
 * etcd JSON values through validation), heap bytes held per endpoint, and a watch fan-out to
 * 1,000 services. Medians over rounds; timings include the asynchronous delivery to a listener.
 * Targets: ≤ 20 ms per 10k-endpoint update, ≤ 2 KB per endpoint.
 */
import { createEndpoint, type Endpoint, type ResolverUpdate, systemClock } from '@proxyless/core';
import { EtcdServiceState } from '../../packages/discovery/src/etcd/codec.js';
import { ResolverHub, type WatchSink } from '../../packages/discovery/src/hub.js';
import { type BenchOptions, type BenchSection, exposeGc, median } from './harness.js';

/** One measured figure. */
export interface RegistryBenchResult {
  area: string;
  name: string;
  value: number;
  unit: string;
  target?: string;
}

const AREA = 'registry';
const PREFIX = '/proxyless/services/bench/';

function endpoints(n: number, generation: number): Endpoint[] {
  const out: Endpoint[] = new Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = createEndpoint({
      id: `i-${i}`,
      address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      port: 8080,
      weight: 1 + ((i + generation) % 3),
      zone: `zone-${i % 3}`,
      tags: ['v2'],
      metadata: { team: 'bench' },
    });
  }
  return out;
}

function etcdValues(
  n: number,
  generation: number,
): Array<{ key: string; value: Buffer; mod_revision: string }> {
  const out: Array<{ key: string; value: Buffer; mod_revision: string }> = new Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = {
      key: `${PREFIX}i-${i}`,
      mod_revision: String(generation * n + i + 1),
      value: Buffer.from(
        JSON.stringify({
          address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
          port: 8080,
          weight: 1 + ((i + generation) % 3),
          zone: `zone-${i % 3}`,
          tags: ['v2'],
          metadata: { team: 'bench' },
        }),
      ),
    };
  }
  return out;
}

/** A hub whose single upstream sink is captured, with one listener that resolves on each update. */
function hubWithSink(): { hub: ResolverHub; sink: () => WatchSink; next: () => Promise<ResolverUpdate> } {
  let captured: WatchSink | undefined;
  const hub = new ResolverHub({
    name: 'bench',
    clock: systemClock,
    start: (_service, sink) => {
      captured = sink;
      return () => undefined;
    },
  });
  let waiting: ((u: ResolverUpdate) => void) | undefined;
  hub.watch('bench', (u) => {
    const w = waiting;
    waiting = undefined;
    w?.(u);
  });
  return {
    hub,
    sink: () => {
      if (!captured) throw new Error('upstream watch not started');
      return captured;
    },
    next: () =>
      new Promise<ResolverUpdate>((resolve) => {
        waiting = resolve;
      }),
  };
}

async function hubUpdate(n: number, rounds: number): Promise<number> {
  const { hub, sink, next } = hubWithSink();
  const sets = [endpoints(n, 0), endpoints(n, 1)];
  const times: number[] = [];
  for (let r = 0; r < rounds + 2; r++) {
    const list = sets[r % 2]!;
    const t0 = performance.now();
    const delivered = next();
    sink().endpoints(list);
    await delivered;
    if (r >= 2) times.push(performance.now() - t0); // two warm-up rounds
  }
  await hub.close();
  return median(times);
}

async function etcdUpdate(n: number, rounds: number): Promise<number> {
  const { hub, sink, next } = hubWithSink();
  const values = [etcdValues(n, 0), etcdValues(n, 1)];
  const state = new EtcdServiceState('bench', PREFIX);
  const times: number[] = [];
  for (let r = 0; r < rounds + 2; r++) {
    const kvs = values[r % 2]!;
    const t0 = performance.now();
    const delivered = next();
    state.reset(kvs);
    const result = state.result();
    if (result.error) throw result.error;
    sink().endpoints(result.endpoints);
    await delivered;
    if (r >= 2) times.push(performance.now() - t0);
  }
  await hub.close();
  return median(times);
}

/** A re-list of an unchanged 10k set (as after a compaction): parsed entries are reused. */
async function etcdRelistUnchanged(n: number, rounds: number): Promise<number> {
  const { hub, sink, next } = hubWithSink();
  const kvs = etcdValues(n, 0);
  const state = new EtcdServiceState('bench', PREFIX);
  state.reset(kvs);
  const first = state.result();
  if (first.error) throw first.error;
  let delivered = next();
  sink().endpoints(first.endpoints);
  await delivered;
  const times: number[] = [];
  for (let r = 0; r < rounds + 2; r++) {
    const t0 = performance.now();
    state.reset(kvs);
    const result = state.result();
    if (result.error) throw result.error;
    sink().endpoints(result.endpoints); // unchanged: the hub confirms freshness, no delivery
    if (r >= 2) times.push(performance.now() - t0);
  }
  // one real change afterwards still gets through
  delivered = next();
  state.put(`${PREFIX}i-0`, JSON.stringify({ address: '10.9.9.9', port: 1 }), 'x');
  const changed = state.result();
  if (changed.error) throw changed.error;
  sink().endpoints(changed.endpoints);
  await delivered;
  await hub.close();
  return median(times);
}

/** One watch event (one key changed) in a 10k set: parse it, rebuild the list, apply through the hub. */
async function etcdWatchEvent(n: number, rounds: number): Promise<number> {
  const { hub, sink, next } = hubWithSink();
  const state = new EtcdServiceState('bench', PREFIX);
  state.reset(etcdValues(n, 0));
  const times: number[] = [];
  for (let r = 0; r < rounds + 2; r++) {
    const t0 = performance.now();
    const delivered = next();
    state.put(
      `${PREFIX}i-${r % n}`,
      JSON.stringify({ address: '10.9.9.9', port: 1000 + r }),
      String(n + r + 1),
    );
    const result = state.result();
    if (result.error) throw result.error;
    sink().endpoints(result.endpoints);
    await delivered;
    if (r >= 2) times.push(performance.now() - t0);
  }
  await hub.close();
  return median(times);
}

/** Heap bytes retained per endpoint by the etcd state plus the hub's current set. */
async function heapPerEndpoint(n: number): Promise<number | undefined> {
  const gc = exposeGc();
  if (!gc) return undefined;
  const values = etcdValues(n, 0);
  const { hub, sink, next } = hubWithSink();
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  const state = new EtcdServiceState('bench', PREFIX);
  for (const kv of values) state.put(kv.key, kv.value);
  const result = state.result();
  if (result.error) throw result.error;
  const delivered = next();
  sink().endpoints(result.endpoints);
  await delivered;
  gc();
  gc();
  const after = process.memoryUsage().heapUsed;
  const perEndpoint = (after - before) / n;
  // keep everything alive until after the measurement
  if (state.size !== n || hub.current('bench')?.endpoints.length !== n) throw new Error('set not applied');
  await hub.close();
  return perEndpoint;
}

async function fanOut(services: number, rounds: number): Promise<{ setupMs: number; updateMs: number }> {
  const sinks = new Map<string, WatchSink>();
  const hub = new ResolverHub({
    name: 'bench',
    clock: systemClock,
    start: (service, sink) => {
      sinks.set(service, sink);
      return () => sinks.delete(service);
    },
  });
  const names = Array.from({ length: services }, (_, i) => `svc-${i}`);
  const lists = [endpoints(3, 0), endpoints(3, 1)];
  let pending = 0;
  let done: (() => void) | undefined;
  const t0 = performance.now();
  for (const name of names) {
    // two watchers per service share one upstream watch
    for (let w = 0; w < 2; w++) {
      hub.watch(name, () => {
        pending--;
        if (pending === 0) done?.();
      });
    }
  }
  const setupMs = performance.now() - t0;
  if (sinks.size !== services) throw new Error(`expected ${services} upstream watches, got ${sinks.size}`);
  const times: number[] = [];
  for (let r = 0; r < rounds + 1; r++) {
    const list = lists[r % 2]!;
    const t1 = performance.now();
    pending = services * 2;
    const all = new Promise<void>((resolve) => {
      done = resolve;
    });
    for (const name of names) sinks.get(name)?.endpoints(list);
    await all;
    if (r >= 1) times.push(performance.now() - t1);
  }
  await hub.close();
  return { setupMs, updateMs: median(times) };
}

/** Run the registry benchmark; `quick` uses fewer rounds (sizes stay at 10k and 1,000). */
export async function runRegistryBench(opts: { quick: boolean }): Promise<RegistryBenchResult[]> {
  const n = 10_000;
  const rounds = opts.quick ? 5 : 21;
  const out: RegistryBenchResult[] = [];
  out.push({
    area: AREA,
    name: 'apply a 10k-endpoint update through ResolverHub',
    value: await hubUpdate(n, rounds),
    unit: 'ms',
    target: '≤ 20 ms',
  });
  out.push({
    area: AREA,
    name: 'first listing of 10k etcd JSON values (parse + validate every value + hub)',
    value: await etcdUpdate(n, rounds),
    unit: 'ms',
  });
  out.push({
    area: AREA,
    name: 'one etcd watch event in a 10k-endpoint set (parse 1, rebuild, hub)',
    value: await etcdWatchEvent(n, rounds),
    unit: 'ms',
    target: '≤ 20 ms',
  });
  out.push({
    area: AREA,
    name: 're-list of an unchanged 10k-endpoint etcd set (after compaction)',
    value: await etcdRelistUnchanged(n, rounds),
    unit: 'ms',
    target: '≤ 20 ms',
  });
  const heap = await heapPerEndpoint(n);
  if (heap !== undefined)
    out.push({
      area: AREA,
      name: 'heap per endpoint (etcd state + hub set, 10k endpoints)',
      value: heap,
      unit: 'bytes',
      target: '≤ 2048 bytes',
    });
  const fan = await fanOut(1_000, opts.quick ? 5 : 21);
  out.push({
    area: AREA,
    name: 'start 1,000 service watches (2 watchers each)',
    value: fan.setupMs,
    unit: 'ms',
  });
  out.push({
    area: AREA,
    name: 'fan out one update to each of 1,000 services (2,000 listeners)',
    value: fan.updateMs,
    unit: 'ms',
  });
  return out;
}

function meets(r: RegistryBenchResult): string {
  if (!r.target) return '';
  const m = /([\d.]+)/.exec(r.target);
  const limit = m ? Number(m[1]) : Number.NaN;
  return r.value <= limit ? 'met' : 'MISSED';
}

/** The harness entry point (`pnpm bench --only registry`). */
export async function run(options: BenchOptions): Promise<BenchSection[]> {
  const results = await runRegistryBench(options);
  return [
    {
      title: 'Registry updates and watch fan-out',
      description:
        'In-process, no network: a 10,000-endpoint set applied through `ResolverHub` (with delivery to a listener), the same from etcd JSON values through validation, heap retained per endpoint, and one update fanned out to 1,000 watched services. Medians.',
      columns: ['measure', 'value', 'unit', 'target', ''],
      rows: results.map((r) => [r.name, r.value, r.unit, r.target ?? '—', meets(r)]),
    },
  ];
}

// `tsx test/bench/registry.ts [--quick]` prints the figures as JSON.
if (process.argv[1]?.endsWith('registry.ts')) {
  void runRegistryBench({ quick: process.argv.includes('--quick') }).then((r) => {
    process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  });
}
