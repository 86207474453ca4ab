import { createMesh, type Mesh, type MeshEvent } from 'proxyless';
import {
  type Backend,
  backendAttempts,
  errorCounts,
  latency,
  recoveryMs,
  runLoad,
  type Sample,
  startBackend,
} from './harness.js';
import type { ScenarioResult } from './report.js';

/** Scenarios 1–6: faults of the backends themselves, three backends, endpoints from the environment. */

async function withBackends<T>(
  names: readonly string[],
  run: (backends: Backend[]) => Promise<T>,
): Promise<T> {
  const backends = await Promise.all(names.map((n) => startBackend(n)));
  try {
    return await run(backends);
  } finally {
    await Promise.all(backends.map((b) => b.close()));
  }
}

function meshFor(backends: readonly Backend[], env: Record<string, string> = {}): Mesh {
  return createMesh({ env: { MESH_ENDPOINTS_CHAOS: backends.map((b) => b.address).join(','), ...env } });
}

/** The common figures of a run whose fault spans [faultFrom, faultTo) on the load's clock. */
async function figures(
  samples: readonly Sample[],
  backends: readonly Backend[],
  faultFrom: number,
  faultTo: number,
  recoverFrom: number,
): Promise<Omit<ScenarioResult, 'n' | 'name' | 'target' | 'met' | 'notes'>> {
  const healthy = latency(samples, 0, faultFrom);
  const fault = latency(samples, faultFrom, faultTo);
  const attempts = await backendAttempts(backends);
  return {
    requests: samples.length,
    errors: samples.filter((s) => s.error !== undefined).length,
    errorCodes: errorCounts(samples),
    amplification: attempts / samples.length,
    healthy,
    fault,
    recoveryMs: recoveryMs(samples, recoverFrom, Math.max(2 * healthy.p99, healthy.p99 + 10)),
  };
}

/** Attempts the mesh itself counted (every attempt's end, connect failures included). */
function meshAttempts(mesh: Mesh): number {
  return (mesh.stats('chaos')?.endpoints ?? []).reduce((n, e) => n + e.requests, 0);
}

export async function killNine(): Promise<ScenarioResult> {
  return withBackends(['a', 'b', 'c'], async (backends) => {
    const mesh = meshFor(backends);
    let killedAt = Number.POSITIVE_INFINITY;
    const victim = backends[2] as Backend;
    try {
      const { samples } = await runLoad(mesh, {
        url: 'http://chaos/',
        callers: 64,
        maxRequests: 20_000,
        maxMs: 30_000,
        // The kill comes after 5000 requests, or after 8 s on a machine too busy to get there.
        onProgress: (n, t) => {
          if (killedAt !== Number.POSITIVE_INFINITY || (n < 5000 && t < 8000)) return;
          killedAt = t;
          // Its count is read just before the kill: requests it took in that millisecond are lost.
          void victim.count().then(() => victim.signal('SIGKILL'));
        },
      });
      const f = await figures(samples, backends, killedAt, Number.POSITIVE_INFINITY, killedAt);
      return {
        n: 1,
        name: 'one of three backends `kill -9`ed during up to 20k GETs (30 s bound) at 64 callers',
        target: '0 errors, amplification ≤ 1.1×',
        ...f,
        met: f.errors === 0 && f.amplification <= 1.1,
        notes: [`mesh-counted attempts/request ${(meshAttempts(mesh) / f.requests).toFixed(3)}`],
      };
    } finally {
      await mesh.close();
    }
  });
}

/**
 * Per-try timeout of scenarios 2 and 3. On an idle machine 200 ms is plenty; the suite shares two
 * cores with its backends (and often with other work), where healthy calls reach a few hundred ms.
 */
const PER_TRY_MS = 500;

/** Scenarios 2 and 3: one endpoint stops answering; a per-try timeout sends the attempt elsewhere. */
async function stalled(n: 2 | 3): Promise<ScenarioResult> {
  return withBackends(['a', 'b', 'c'], async (backends) => {
    const victim = backends[2] as Backend;
    const mesh = meshFor(backends, { MESH_PER_TRY_TIMEOUT: `${PER_TRY_MS}ms` });
    // Scenario 3: from 2 s to 8 s the backend accepts connections and requests and never answers.
    const faultFrom = 2000;
    const faultTo = n === 2 ? 12_000 : 8000;
    const timers = [
      setTimeout(() => (n === 2 ? victim.signal('SIGSTOP') : void victim.setMode({ hang: true })), faultFrom),
      setTimeout(() => (n === 2 ? victim.signal('SIGCONT') : void victim.setMode({ hang: false })), faultTo),
    ];
    try {
      const { samples } = await runLoad(mesh, {
        url: 'http://chaos/',
        callers: 16,
        maxRequests: 400_000,
        maxMs: faultTo + 3000,
      });
      const f = await figures(samples, backends, faultFrom, faultTo, faultTo);
      const bound = PER_TRY_MS + f.healthy.p99;
      return {
        n,
        name:
          n === 2
            ? 'one backend `SIGSTOP`ped for 10 s, then `SIGCONT`'
            : 'a backend that accepts connections and never answers (6 s)',
        target: `0 errors for idempotent requests; p99 ≤ per-try timeout (${PER_TRY_MS} ms) + healthy p99`,
        ...f,
        met: f.errors === 0 && f.fault.p99 <= bound,
        notes: [`p99 bound ${bound.toFixed(1)} ms`, `perTryTimeout ${PER_TRY_MS}ms`],
      };
    } finally {
      for (const t of timers) clearTimeout(t);
      await mesh.close();
    }
  });
}

export const sigstop = (): Promise<ScenarioResult> => stalled(2);
export const neverAnswers = (): Promise<ScenarioResult> => stalled(3);

export async function slowBackend(): Promise<ScenarioResult> {
  return withBackends(['a', 'b', 'c'], async (backends) => {
    for (const b of backends) await b.setMode({ delayMs: 2 });
    const mesh = meshFor(backends, { MESH_LB_POLICY: 'peak_ewma' });
    const faultFrom = 3000;
    // Each backend's count when the slow-down starts: the slow one's share during the fault.
    let atFault: Promise<number[]> | undefined;
    const timer = setTimeout(() => {
      atFault = Promise.all(backends.map(async (b) => (await b.count()).requests));
      void atFault.then(() => backends[2]?.setMode({ delayMs: 20 }));
    }, faultFrom);
    try {
      const { samples } = await runLoad(mesh, {
        url: 'http://chaos/',
        callers: 16,
        maxRequests: 400_000,
        maxMs: 8000,
      });
      const f = await figures(samples, backends, faultFrom, Number.POSITIVE_INFINITY, faultFrom);
      return {
        n: 4,
        name: 'one backend 10× slower (2 ms → 20 ms), `peak_ewma`',
        target: 'p99 within 2× of healthy',
        ...f,
        met: f.fault.p99 <= 2 * f.healthy.p99,
        notes: [
          `slow backend's share of all requests ${(await share(backends, 2)).toFixed(3)}`,
          `during the fault ${(await faultShare(backends, 2, await atFault)).toFixed(3)}`,
        ],
      };
    } finally {
      clearTimeout(timer);
      await mesh.close();
    }
  });
}

/** Fraction of the requests since `before` (each backend's count then) the backend at `i` received. */
async function faultShare(
  backends: readonly Backend[],
  i: number,
  before: number[] | undefined,
): Promise<number> {
  if (before === undefined) return Number.NaN;
  const now = await Promise.all(backends.map(async (b) => (await b.count()).requests));
  const all = now.reduce((sum, n, j) => sum + n - (before[j] ?? 0), 0);
  return ((now[i] ?? 0) - (before[i] ?? 0)) / all;
}

/** Fraction of all requests the backend at `i` received. */
async function share(backends: readonly Backend[], i: number): Promise<number> {
  const mine = (await backends[i]?.count())?.requests ?? 0;
  return mine / (await backendAttempts(backends));
}

export async function errors503(): Promise<ScenarioResult> {
  return withBackends(['a', 'b', 'c'], async (backends) => {
    const mesh = meshFor(backends, { MESH_CIRCUIT_RESET_TIMEOUT: '2s' });
    const breaker: string[] = [];
    const sub = mesh.onEvent((e: MeshEvent) => {
      if (e.type === 'circuit_breaker') breaker.push(e.state);
    });
    const faultFrom = 2000;
    const faultTo = 12_000;
    const timers = [
      setTimeout(() => void Promise.all(backends.map((b) => b.setMode({ errorEvery: 2 }))), faultFrom),
      setTimeout(() => void Promise.all(backends.map((b) => b.setMode({ errorEvery: 0 }))), faultTo),
    ];
    try {
      const { samples } = await runLoad(mesh, {
        url: 'http://chaos/',
        callers: 16,
        maxRequests: 400_000,
        maxMs: faultTo + 5000,
      });
      const f = await figures(samples, backends, faultFrom, faultTo, faultTo);
      const opened = breaker.includes('open');
      const closedAgain = opened && breaker.lastIndexOf('closed') > breaker.indexOf('open');
      return {
        n: 5,
        name: '50% 503s from every backend for 10 s',
        target: 'amplification ≤ 1.2×; the breaker opens and closes',
        ...f,
        met: f.amplification <= 1.2 && opened && closedAgain,
        notes: [`breaker: ${breaker.join(' → ') || 'no change'}`, 'circuitBreaker.resetTimeout 2s'],
      };
    } finally {
      for (const t of timers) clearTimeout(t);
      sub.dispose();
      await mesh.close();
    }
  });
}

export async function resets(): Promise<ScenarioResult> {
  return withBackends(['a', 'b', 'c'], async (backends) => {
    const mesh = meshFor(backends);
    const faultFrom = 1000;
    const timer = setTimeout(() => void backends[2]?.setMode({ reset: true }), faultFrom);
    try {
      const { samples } = await runLoad(mesh, {
        url: 'http://chaos/',
        callers: 16,
        maxRequests: 6000,
        maxMs: 8000,
        // Every 8th request is a POST with a unique id, to find any replay on the backends.
        init: (i) =>
          i % 8 === 0
            ? { method: 'POST', body: `{"order":${i}}`, headers: { 'x-request-id': `order-${i}` } }
            : { method: 'GET' },
      });
      const f = await figures(samples, backends, faultFrom, Number.POSITIVE_INFINITY, faultFrom);
      const ids = new Map<string, number>();
      for (const b of backends)
        for (const id of (await b.count()).postIds) ids.set(id, (ids.get(id) ?? 0) + 1);
      const replays = [...ids.values()].filter((c) => c > 1).length;
      const getHead = samples.filter((s) => s.method === 'GET' && s.phase === 'head').length;
      const getBody = samples.filter((s) => s.method === 'GET' && s.phase === 'body').length;
      const posts = samples.filter((s) => s.method === 'POST' && s.error !== undefined);
      // Up to the response head a failure is the mesh's (a MeshError code); after it the caller
      // gets undici's own error from the body, as without the mesh (README, Errors).
      const unclear = [
        ...new Set(
          samples
            .filter((s) => s.error !== undefined)
            .filter((s) => !s.error?.startsWith('MESH_') && !s.error?.startsWith('HTTP_'))
            .filter((s) => !(s.phase === 'body' && s.error?.startsWith('UND_ERR_')))
            .map((s) => `${s.error} (${s.phase ?? 'no phase'})`),
        ),
      ];
      return {
        n: 6,
        name: 'connections reset (before the head and mid-body) by one backend of three',
        target:
          "GETs retried before the head; POSTs never replayed; each failure a clear error: a mesh code, or undici's own once the body has started",
        ...f,
        met: replays === 0 && getHead === 0 && unclear.length === 0,
        notes: [
          `GET errors before the head ${getHead}, mid-body ${getBody}`,
          `POST errors ${posts.length} (${[...new Set(posts.map((s) => s.error))].join(', ') || 'none'})`,
          `POSTs replayed ${replays}`,
          ...(unclear.length > 0
            ? [`errors with neither a mesh code nor undici's after the head: ${unclear.join(', ')}`]
            : []),
        ],
      };
    } finally {
      clearTimeout(timer);
      await mesh.close();
    }
  });
}
