/**
 * Start-up cost of the configuration, with a 1,000-service config document (every service with
 * endpoints and six policy sections):
 * - `import('proxyless')` plus `createMesh`, in fresh Node processes (cold: module loading and
 *   first runs of the code included), and `createMesh` again in a warm process;
 * - the validator alone (`checkConfigDocument`: validate and parse every section and endpoint
 *   list, merge every service's layers), cold in fresh processes after the import, and warm. Target: ≤ 50 ms. Two documents: the policies of the services repeat (as
 *   generated documents do: here two distinct policies), and every service's policy differs.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BenchOptions, type BenchSection, median } from './harness.js';

const SERVICES = 1000;
const TARGET_MS = 50;

/**
 * A config document with `n` services, each with endpoints and several policy sections. With
 * `distinct`, no two services have the same policy (a timeout and a breaker threshold per service).
 */
export function bigDocument(n: number, distinct = false): unknown {
  const services: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    services[`svc-${i}`] = {
      endpoints: `10.0.${(i >> 8) & 255}.${i & 255}:8080,10.1.${(i >> 8) & 255}.${i & 255}:8080=2`,
      timeout: distinct ? `${2000 + i}ms` : '2s',
      perTryTimeout: '500ms',
      retry: {
        maxRetries: 2,
        retryOn: ['connect-failure', 'gateway-error'],
        backoff: { base: '10ms', max: '100ms' },
      },
      circuitBreaker: {
        errorThresholdPercentage: 50,
        resetTimeout: '10s',
        maxRequests: distinct ? 512 + i : 512,
      },
      loadBalancer: { policy: i % 2 ? 'least_request' : 'peak_ewma', choiceCount: 2 },
      outlierDetection: { consecutive5xx: 3, baseEjectionTime: '15s' },
    };
  }
  return { defaults: { hedge: false, retry: { budget: { ratio: 0.1 } } }, services };
}

// Runs in a fresh process. `mesh`: prints {importMs, createMs, …}; `check`: the validator alone.
const CHILD = `
import { readFileSync } from 'node:fs';
const cpu = (c) => (c.user + c.system) / 1000;
const [mode, file] = process.argv.slice(2);
const c0 = process.cpuUsage();
const t0 = performance.now();
const { createMesh, checkConfigDocument } = await import('proxyless');
const t1 = performance.now();
const c1 = process.cpuUsage(c0);
if (mode === 'mesh') {
  const mesh = createMesh({ env: {}, configFile: file });
  const t2 = performance.now();
  const c2 = process.cpuUsage(c0);
  if (mesh.config('svc-999').resilience.retry?.maxRetries !== 2) throw new Error('document not applied');
  await mesh.close();
  process.stdout.write(JSON.stringify({ importMs: t1 - t0, createMs: t2 - t1, importCpuMs: cpu(c1), createCpuMs: cpu(c2) - cpu(c1) }));
} else {
  const doc = JSON.parse(readFileSync(file, 'utf8'));
  const run = () => {
    const c = process.cpuUsage();
    const t = performance.now();
    checkConfigDocument(doc);
    return { ms: performance.now() - t, cpuMs: cpu(process.cpuUsage(c)) };
  };
  const cold = run();
  // Warm: the median of runs 6 to 15, once V8 has compiled the validator (a single run there
  // measures whichever garbage collection or tier-up falls in it).
  const runs = [];
  for (let i = 0; i < 15; i++) runs.push(run());
  const middle = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const steady = runs.slice(5);
  process.stdout.write(
    JSON.stringify({ cold, warm: { ms: middle(steady.map((r) => r.ms)), cpuMs: middle(steady.map((r) => r.cpuMs)) } }),
  );
}
`;

type Timing = { ms: number; cpuMs: number };

export async function run(options: BenchOptions): Promise<BenchSection[]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'proxyless-bench-config-'));
  const file = path.join(dir, 'mesh.json');
  const distinctFile = path.join(dir, 'mesh-distinct.json');
  writeFileSync(file, JSON.stringify(bigDocument(SERVICES)));
  writeFileSync(distinctFile, JSON.stringify(bigDocument(SERVICES, true)));
  // The child script sits beside this bundle so that `proxyless` resolves from the workspace.
  const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'config-child.mjs');
  writeFileSync(child, CHILD);
  const rounds = options.quick ? 3 : 9;
  const spawn = <T>(mode: string, doc: string): T =>
    JSON.parse(execFileSync(process.execPath, [child, mode, doc], { encoding: 'utf8' })) as T;
  const cold: Array<{ importMs: number; createMs: number; importCpuMs: number; createCpuMs: number }> = [];
  const check: Array<{ cold: Timing; warm: Timing }> = [];
  const checkDistinct: Array<{ cold: Timing; warm: Timing }> = [];
  try {
    // Rounds interleaved, so that a busy moment of the machine weighs on every measure alike.
    for (let i = 0; i < rounds; i++) {
      cold.push(spawn('mesh', file));
      check.push(spawn('check', file));
      checkDistinct.push(spawn('check', distinctFile));
    }
    const { createMesh } = await import('proxyless');
    const warm: number[] = [];
    const warmCpu: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const c = process.cpuUsage();
      const t = performance.now();
      const mesh = createMesh({ env: {}, configFile: file });
      warm.push(performance.now() - t);
      const u = process.cpuUsage(c);
      warmCpu.push((u.user + u.system) / 1000);
      await mesh.close();
    }
    const importMs = median(cold.map((c) => c.importMs));
    const createMs = median(cold.map((c) => c.createMs));
    const total = median(cold.map((c) => c.importMs + c.createMs));
    const row = (label: string, xs: readonly Timing[]): [string, number, number] => [
      label,
      median(xs.map((x) => x.ms)),
      median(xs.map((x) => x.cpuMs)),
    ];
    const validatorRows = [
      row(
        'validator, repeated policies, cold',
        check.map((c) => c.cold),
      ),
      row(
        'validator, repeated policies, warm',
        check.map((c) => c.warm),
      ),
      row(
        'validator, every policy distinct, cold',
        checkDistinct.map((c) => c.cold),
      ),
      row(
        'validator, every policy distinct, warm',
        checkDistinct.map((c) => c.warm),
      ),
    ];
    const verdict = (label: string, ms: number, target: number): string =>
      `${label} ≤ ${target} ms: ${ms <= target ? 'met' : 'NOT met'} (${ms.toFixed(1)} ms)`;
    return [
      {
        title: `config: import + createMesh with a ${SERVICES.toLocaleString('en')}-service document`,
        description: `Medians of ${rounds} fresh Node processes (cold), and of ${rounds} createMesh calls in this process (warm). The validator rows time checkConfigDocument alone (validate + parse + layer every service; the JSON already parsed): cold is its first call in a fresh process after the import, warm the median of its 7th to 16th calls.`,
        columns: ['measure', 'wall ms', 'CPU ms'],
        rows: [
          ['import("proxyless"), cold', importMs, median(cold.map((c) => c.importCpuMs))],
          [
            'createMesh (read, validate + layer 1,000 services, start), cold',
            createMs,
            median(cold.map((c) => c.createCpuMs)),
          ],
          ['import + createMesh, cold', total, median(cold.map((c) => c.importCpuMs + c.createCpuMs))],
          ['createMesh, warm', median(warm), median(warmCpu)],
          ...validatorRows,
        ],
        notes: [
          ...validatorRows.map(([label, ms]) => verdict(`target ${label}`, ms, TARGET_MS)),
          `${verdict('import + createMesh, cold (the whole start-up, import included)', total, TARGET_MS)}; the import alone is the cold-start table's subject (≤ 1.2× undici's own import)`,
        ],
      },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(child, { force: true });
  }
}
