/**
 * Start-up cost of the configuration: `import('proxyless')` plus `createMesh` with a 1,000-service
 * config document (every service with endpoints and five policy sections), measured in fresh
 * Node processes (cold: module loading and validator compilation included), and `createMesh`
 * again in a warm process. Target: import + createMesh ≤ 50 ms.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BenchOptions, type BenchSection, median } from './harness.js';

const SERVICES = 1000;

/** A config document with `n` services, each with endpoints and several policy sections. */
export function bigDocument(n: number): unknown {
  const services: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    services[`svc-${i}`] = {
      endpoints: `10.0.${(i >> 8) & 255}.${i & 255}:8080,10.1.${(i >> 8) & 255}.${i & 255}:8080=2`,
      timeout: '2s',
      perTryTimeout: '500ms',
      retry: {
        maxRetries: 2,
        retryOn: ['connect-failure', 'gateway-error'],
        backoff: { base: '10ms', max: '100ms' },
      },
      circuitBreaker: { errorThresholdPercentage: 50, resetTimeout: '10s', maxRequests: 512 },
      loadBalancer: { policy: i % 2 ? 'least_request' : 'peak_ewma', choiceCount: 2 },
      outlierDetection: { consecutive5xx: 3, baseEjectionTime: '15s' },
    };
  }
  return { defaults: { hedge: false, retry: { budget: { ratio: 0.1 } } }, services };
}

// Runs in a fresh process: prints {importMs, createMs} as JSON.
const CHILD = `
const cpu = (c) => (c.user + c.system) / 1000;
const c0 = process.cpuUsage();
const t0 = performance.now();
const { createMesh } = await import('proxyless');
const t1 = performance.now();
const c1 = process.cpuUsage(c0);
const mesh = createMesh({ env: {}, configFile: process.argv[2] });
const t2 = performance.now();
const c2 = process.cpuUsage(c0);
if (mesh.config('svc-999').resilience.retry?.maxRetries !== 2) throw new Error('document not applied');
await mesh.close();
process.stdout.write(JSON.stringify({ importMs: t1 - t0, createMs: t2 - t1, importCpuMs: cpu(c1), createCpuMs: cpu(c2) - cpu(c1) }));
`;

export async function run(options: BenchOptions): Promise<BenchSection[]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'proxyless-bench-config-'));
  const file = path.join(dir, 'mesh.json');
  writeFileSync(file, JSON.stringify(bigDocument(SERVICES)));
  // The child script sits beside this bundle so that `proxyless` resolves from the workspace.
  const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'config-child.mjs');
  writeFileSync(child, CHILD);
  const rounds = options.quick ? 3 : 9;
  const cold: Array<{ importMs: number; createMs: number; importCpuMs: number; createCpuMs: number }> = [];
  try {
    for (let i = 0; i < rounds; i++) {
      cold.push(JSON.parse(execFileSync(process.execPath, [child, file], { encoding: 'utf8' })));
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
    return [
      {
        title: `config: import + createMesh with a ${SERVICES.toLocaleString('en')}-service document`,
        description: `Medians of ${rounds} fresh Node processes (cold), and of ${rounds} createMesh calls in this process (warm).`,
        columns: ['measure', 'wall ms', 'CPU ms'],
        rows: [
          ['import("proxyless"), cold', importMs, median(cold.map((c) => c.importCpuMs))],
          [
            'createMesh (validate + layer 1,000 services), cold',
            createMs,
            median(cold.map((c) => c.createCpuMs)),
          ],
          ['import + createMesh, cold', total, median(cold.map((c) => c.importCpuMs + c.createCpuMs))],
          ['createMesh, warm', median(warm), median(warmCpu)],
        ],
        notes: [
          `target import + createMesh ≤ 50 ms: ${total <= 50 ? 'met' : 'NOT met'} (${total.toFixed(1)} ms)`,
        ],
      },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(child, { force: true });
  }
}
