/**
 * Resilience policy overhead and retry amplification, in process (no sockets):
 *
 * - happy path: the full default policy stack (overall timeout, retry + budget, circuit breaker,
 *   per-try timeout/deadline header) vs no policies, around a terminal that answers at once.
 *   Throughput ratio and CPU µs per request, medians of alternating rounds. The ratio against an
 *   instant terminal is the worst case; the same comparison is then made over loopback HTTP.
 * - retry amplification: a destination failing 20 % of attempts with 503, default retries, vs the
 *   limit the budget allows (1 + ratio).
 */
import { Readable } from 'node:stream';
import {
  type CallContext,
  type CallResult,
  compose,
  createEndpoint,
  isIdempotentMethod,
  type MeshRequest,
  type Next,
  noopLogger,
  seededRandom,
  systemClock,
} from '@proxyless/core';
import { VirtualClock } from '@proxyless/core/testing';
import { createPolicyStack, resolveResilienceConfig } from '@proxyless/resilience';
import { createMesh } from 'proxyless';
import { startBackend } from './backends.js';
import { type BenchOptions, type BenchSection, median } from './harness.js';

/** One measured figure. */
export interface ResilienceBenchFigure {
  area: string;
  name: string;
  value: number;
  unit: string;
  target?: string;
}

const REQUEST: MeshRequest = Object.freeze({
  method: 'GET',
  path: '/',
  origin: 'http://bench',
  headers: {},
  body: null,
  idempotent: isIdempotentMethod('GET'),
  bodyReplayable: true,
  replayable: true,
});

const ENDPOINT = createEndpoint({ address: '127.0.0.1', port: 1 });
const OK: CallResult = Object.freeze({
  status: 200,
  headers: {},
  body: Readable.from([]),
  endpoint: ENDPOINT,
});
const failed = (): CallResult => ({ status: 503, headers: {}, body: Readable.from([]), endpoint: ENDPOINT });
// A fresh body per call: each exchange must end for its breaker slot and counters to be released.
const okTerminal: Next = () => Promise.resolve({ ...OK, body: Readable.from([]) });

function context(clock = systemClock, random = seededRandom(1)): CallContext {
  return {
    service: 'bench',
    request: REQUEST,
    attempt: 1,
    deadline: undefined,
    signal: undefined,
    clock,
    random,
    excludeEndpoints: undefined,
    attributes: new Map(),
    observer: undefined,
  };
}

async function round(call: Next, n: number): Promise<{ rps: number; cpuUs: number }> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    await call(context());
    // Exchanges end when their (empty) bodies end, on a later turn: let them, so the breaker's
    // in-flight count reflects real concurrency (1) rather than a microtask backlog.
    if ((i & 255) === 255) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  const elapsed = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { rps: (n / elapsed) * 1000, cpuUs: (cpu.user + cpu.system) / n };
}

async function happyPath(quick: boolean): Promise<ResilienceBenchFigure[]> {
  const n = quick ? 20_000 : 200_000;
  const rounds = quick ? 3 : 7;
  const stack = createPolicyStack(resolveResilienceConfig(), {
    service: 'bench',
    clock: systemClock,
    random: seededRandom(1),
    logger: noopLogger,
  });
  const bare = compose([], okTerminal);
  const full = compose(stack.filters, okTerminal);
  await round(bare, n / 10);
  await round(full, n / 10);
  const base: Array<{ rps: number; cpuUs: number }> = [];
  const withStack: Array<{ rps: number; cpuUs: number }> = [];
  for (let r = 0; r < rounds; r++) {
    base.push(await round(bare, n));
    withStack.push(await round(full, n));
  }
  stack.close();
  const baseRps = median(base.map((x) => x.rps));
  const fullRps = median(withStack.map((x) => x.rps));
  const overheadUs = median(withStack.map((x) => x.cpuUs)) - median(base.map((x) => x.cpuUs));
  return [
    { area: 'resilience', name: 'no policies, instant terminal', value: baseRps, unit: 'req/s' },
    { area: 'resilience', name: 'default stack, instant terminal', value: fullRps, unit: 'req/s' },
    {
      area: 'resilience',
      name: 'throughput ratio (default stack / none), instant terminal',
      value: fullRps / baseRps,
      unit: 'ratio',
    },
    {
      area: 'resilience',
      name: 'CPU overhead of the default stack',
      value: overheadUs,
      unit: 'µs/request',
      target: '≤ 5 µs',
    },
  ];
}

async function amplification(quick: boolean): Promise<ResilienceBenchFigure[]> {
  const requests = quick ? 2_000 : 20_000;
  const clock = new VirtualClock();
  const random = seededRandom(7);
  const config = resolveResilienceConfig({ circuitBreaker: false, retry: { retryOn: ['5xx'] } });
  const stack = createPolicyStack(config, { service: 'bench', clock, random, logger: noopLogger });
  let attempts = 0;
  const failRandom = seededRandom(99);
  const flaky: Next = () => {
    attempts++;
    return Promise.resolve(failRandom.next() < 0.2 ? failed() : { ...OK, body: Readable.from([]) });
  };
  const call = compose(stack.filters, flaky);
  let ok = 0;
  // 100 requests per virtual second: the budget's 10 retries/s reserve is 10 % of the traffic.
  for (let i = 0; i < requests; i++) {
    const p = call(context(clock, random));
    let settled = false;
    void p.finally(() => {
      settled = true;
    });
    // A retry's backoff timer is armed only once the retried response's body has drained (a later
    // turn): fire timers as they appear, and let turns pass, until the call settles (bounded).
    for (let spin = 0; !settled && spin < 10_000; spin++) {
      if (clock.pendingTimers > 0) await clock.next();
      else await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const r = await p;
    if (r.status === 200) ok++;
    await clock.advance(10);
  }
  stack.close();
  const budget = config.retry!.budget;
  const limit = 1 + budget.ratio + (budget.minPerSecond * 10) / 1000;
  return [
    {
      area: 'resilience',
      name: 'attempts per request at 20 % failures',
      value: attempts / requests,
      unit: 'ratio',
      target: `≤ ${limit.toFixed(2)} (budget: 1 + ratio + reserve)`,
    },
    {
      area: 'resilience',
      name: 'success rate at 20 % failures with retries',
      value: (ok / requests) * 100,
      unit: '%',
    },
  ];
}

/**
 * The same comparison over loopback HTTP: `mesh.request` to a backend in its own process, 32
 * concurrent callers, default policies vs every policy off, alternating rounds, medians.
 */
async function loopback(quick: boolean): Promise<ResilienceBenchFigure[]> {
  const backend = await startBackend();
  const endpoints = `127.0.0.1:${backend.port}`;
  const mesh = createMesh({
    env: {},
    services: {
      withpolicies: { endpoints },
      nopolicies: { endpoints, timeout: false, retry: false, circuitBreaker: false },
    },
  });
  const requests = quick ? 2_000 : 10_000;
  const rounds = quick ? 3 : 7;
  const roundOf = async (url: string, n: number): Promise<{ rps: number; cpuUs: number }> => {
    let issued = 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const worker = async (): Promise<void> => {
      while (issued < n) {
        issued++;
        await (await mesh.request(url)).body.text();
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    const elapsed = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    return { rps: (n / elapsed) * 1000, cpuUs: (cpu.user + cpu.system) / n };
  };
  const off: Array<{ rps: number; cpuUs: number }> = [];
  const on: Array<{ rps: number; cpuUs: number }> = [];
  try {
    await roundOf('http://nopolicies/', 1000);
    await roundOf('http://withpolicies/', 1000);
    for (let r = 0; r < rounds; r++) {
      off.push(await roundOf('http://nopolicies/', requests));
      on.push(await roundOf('http://withpolicies/', requests));
    }
  } finally {
    await mesh.close();
    await backend.stop();
  }
  const ratio = median(on.map((x) => x.rps)) / median(off.map((x) => x.rps));
  const cpu = median(on.map((x) => x.cpuUs)) - median(off.map((x) => x.cpuUs));
  return [
    {
      area: 'resilience',
      name: 'loopback mesh.request throughput ratio (default policies / none)',
      value: ratio,
      unit: 'ratio',
      target: '≥ 0.95 (≤ 5 % loss)',
    },
    {
      area: 'resilience',
      name: 'loopback client CPU added by the default policies',
      value: cpu,
      unit: 'µs/request',
      target: '≤ 5 µs',
    },
  ];
}

/** Run the resilience benchmarks and return every figure. */
export async function runResilienceBench(opts: { quick: boolean }): Promise<ResilienceBenchFigure[]> {
  return [
    ...(await happyPath(opts.quick)),
    ...(await loopback(opts.quick)),
    ...(await amplification(opts.quick)),
  ];
}

/** The `pnpm bench` harness entry: the figures as one table. */
export async function run(options: BenchOptions): Promise<BenchSection[]> {
  const figures = await runResilienceBench(options);
  return [
    {
      title: 'Resilience policies',
      description:
        'Instant terminal: in process, no sockets, baseline = the same terminal with no filters. Loopback: mesh.request to a backend process, 32 callers, baseline = the same mesh with every policy off. Alternating rounds, medians. Amplification: 20 % of attempts answer 503, 100 requests per virtual second.',
      columns: ['figure', 'value', 'unit', 'target'],
      rows: figures.map((f) => [f.name, f.value, f.unit, f.target ?? '']),
    },
  ];
}
