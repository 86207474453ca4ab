/**
 * Routing benchmark: the cost of one routing decision (`route()`) through a `service-router`
 * with 1 / 10 / 100 routes in front of a 90/10 splitter (ns and bytes per decision), for a
 * request that matches no explicit route (every matcher runs, the implicit catch-all wins:
 * the worst case) and one that matches the first route; and the cost of a config swap with
 * 1,000 routes: validating and compiling the entries (file/etcd) or parsing Consul's compiled
 * chain, after which the swap itself is one reference assignment.
 *
 * Standalone: `npx tsx --conditions=@proxyless/source test/bench/routing.ts [--quick]`.
 * In `pnpm bench` through `run()`.
 */
import { seededRandom } from '@proxyless/core';
import {
  chainFromConsul,
  compileRoutingConfig,
  type RouteRequest,
  type RoutingChain,
  route,
} from '../../packages/mesh/src/routing/index.js';
import { compileDiscoveryChain } from '../consul-double/discovery-chain.js';
import { type BenchOptions, type BenchSection, exposeGc, median } from './harness.js';

function entries(routes: number): Record<string, unknown>[] {
  const list = Array.from({ length: routes }, (_, i) => {
    const kind = i % 3;
    const http =
      kind === 0
        ? { PathPrefix: `/r${i}/` }
        : kind === 1
          ? { PathExact: `/r${i}`, Methods: ['GET', 'POST'] }
          : { PathPrefix: '/api/', Header: [{ Name: 'x-route', Exact: String(i) }] };
    return {
      Match: { HTTP: http },
      Destination: { ServiceSubset: i % 2 ? 'v2' : 'v1', RequestTimeout: '5s' },
    };
  });
  return [
    { Kind: 'service-defaults', Name: 'web', Protocol: 'http' },
    {
      Kind: 'service-resolver',
      Name: 'web',
      DefaultSubset: 'v1',
      Subsets: {
        v1: { Filter: 'Service.Meta.version == "1"' },
        v2: { Filter: 'Service.Meta.version == "2"' },
      },
    },
    {
      Kind: 'service-splitter',
      Name: 'web',
      Splits: [
        { Weight: 90, ServiceSubset: 'v1' },
        { Weight: 10, ServiceSubset: 'v2' },
      ],
    },
    { Kind: 'service-router', Name: 'web', Routes: list },
  ];
}

const MISS: RouteRequest = {
  method: 'GET',
  path: '/api/items?page=2',
  headers: { host: 'web', 'x-route': 'none', accept: 'application/json' },
};
const HIT: RouteRequest = { method: 'GET', path: '/r0/items', headers: { host: 'web' } };

/** Wall-clock and CPU (user + system) nanoseconds per decision over `n` decisions. */
function nsPerDecision(chain: RoutingChain, req: RouteRequest, n: number): { wall: number; cpu: number } {
  const random = seededRandom(1);
  let sink = 0;
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) sink += route(chain, req, random).splitIndex;
  const wall = Number(process.hrtime.bigint() - t0) / n;
  const c = process.cpuUsage(c0);
  if (sink === Number.MIN_SAFE_INTEGER) process.stdout.write('');
  return { wall, cpu: ((c.user + c.system) * 1000) / n };
}

/** Baseline in the same run: one `startsWith` per route on the request path, nothing else. */
function nsBaseline(routes: number, n: number): number {
  const prefixes = Array.from({ length: routes }, (_, i) => `/r${i}/`);
  let sink = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) for (let j = 0; j < routes; j++) if (MISS.path.startsWith(prefixes[j]!)) sink++;
  const ns = Number(process.hrtime.bigint() - t0) / n;
  if (sink === Number.MIN_SAFE_INTEGER) process.stdout.write('');
  return ns;
}

function bytesPerDecision(chain: RoutingChain, req: RouteRequest, n: number, gc: () => void): number {
  const random = seededRandom(1);
  let sink = 0;
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < n; i++) sink += route(chain, req, random).splitIndex;
  const after = process.memoryUsage().heapUsed;
  if (sink === Number.MIN_SAFE_INTEGER) process.stdout.write('');
  return Math.max(0, after - before) / n;
}

function msOf(fn: () => unknown, rounds: number): number {
  return median(
    Array.from({ length: rounds }, () => {
      const t0 = process.hrtime.bigint();
      fn();
      return Number(process.hrtime.bigint() - t0) / 1e6;
    }),
  );
}

export async function run(options: BenchOptions): Promise<BenchSection[]> {
  const n = options.quick ? 200_000 : 2_000_000;
  const rounds = options.quick ? 3 : 7;
  const gc = exposeGc();
  const rows: (string | number)[][] = [];
  for (const size of [1, 10, 100]) {
    const chain = compileRoutingConfig(entries(size)).chain('web');
    for (const [label, req] of [
      ['no explicit match (all matchers run)', MISS],
      ['first route matches', HIT],
    ] as const) {
      nsPerDecision(chain, req, Math.min(n, 100_000)); // warm-up
      const runs = Array.from({ length: rounds }, () => nsPerDecision(chain, req, n));
      const ns = median(runs.map((r) => r.cpu));
      const wall = median(runs.map((r) => r.wall));
      const bytes = gc
        ? Math.min(...Array.from({ length: 3 }, () => bytesPerDecision(chain, req, n, gc)))
        : Number.NaN;
      const target = size === 10 ? (ns <= 1000 ? '≤ 1 µs: met' : '≤ 1 µs: NOT met') : '';
      const base = label === 'first route matches' ? nsBaseline(1, n) : nsBaseline(size + 1, n);
      rows.push([size, label, ns, wall, bytes, wall / base, target]);
    }
  }
  const big = entries(1000);
  const compileMs = msOf(() => compileRoutingConfig(big).chain('web'), rounds);
  const lookup = {
    get: (kind: string, name: string) =>
      big.find((e) => e.Kind === kind && e.Name === name) as Record<string, unknown> | undefined,
  };
  const consulBody = {
    Chain: compileDiscoveryChain(lookup, 'web', { datacenter: 'dc1', clusterId: 'bench' }),
  };
  const parseMs = msOf(() => chainFromConsul(consulBody), rounds);
  return [
    {
      title: 'Routing: cost of one routing decision',
      description:
        'CPU time (user + system, `process.cpuUsage`) and wall time, medians of rounds of back-to-back `route()` calls on one compiled chain (service-router with N routes mixing path prefix, exact path + methods and header matchers, in front of a 90/10 splitter). Bytes: heap growth over a round after a full GC, divided by the decisions (least of three). Baseline: a bare loop of one `startsWith` per route tried (the least any matcher could cost), measured in the same run. On a shared machine the wall time includes waiting for a core; CPU time does not, so the target is checked against CPU time.',
      columns: [
        'routes',
        'request',
        'CPU ns/decision',
        'wall ns/decision',
        'bytes/decision',
        'wall × baseline',
        'target',
      ],
      rows,
      notes: [
        'Target: ≤ 1 µs per decision with 10 routes; no allocation per decision (decisions are precomputed and shared; the few bytes on the splitter path are the random draw).',
      ],
    },
    {
      title: 'Routing: config swap with 1,000 routes',
      description:
        'Median time to turn a new config version into a routing chain, off the request path; the swap is then one reference assignment between requests.',
      columns: ['source', 'ms'],
      rows: [
        ['file / etcd: validate + compile 1,000-route entries', compileMs],
        ['Consul: parse the compiled discovery chain (1,000 routes)', parseMs],
      ],
    },
  ];
}

const isMain = process.argv[1]?.endsWith('routing.ts') || process.argv[1]?.endsWith('routing.js');
if (isMain) {
  void run({ quick: process.argv.includes('--quick') }).then((sections) => {
    for (const s of sections) process.stdout.write(`${JSON.stringify(s, null, 1)}\n`);
  });
}
