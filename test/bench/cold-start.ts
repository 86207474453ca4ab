/**
 * Cold start: how long a fresh Node process takes to load `proxyless` and create a mesh, against
 * loading undici alone — the floor, since the mesh is built on it. Each probe is a new process
 * (ESM `import` and CJS `require`), rounds interleaved, medians reported. The modules-loaded count
 * is the CommonJS module cache after loading (the published ESM build loads undici through it too).
 * Target: import + `createMesh()` ≤ 1.2 × undici's own import time. The mesh loads undici's
 * data-plane parts only (core/undici.ts); the extra probe adds the rest of undici, which the first
 * `mesh.fetch` imports.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchOptions, BenchSection } from './harness.js';
import { median } from './harness.js';

interface Probe {
  name: string;
  file: string;
  source: string;
}

const TIMED = (load: string, create = '', close = ''): string => `const c0 = process.cpuUsage();
const t0 = performance.now();
${load}
const loaded = performance.now();
${create}
const done = performance.now();
const cpu = process.cpuUsage(c0);
process.stdout.write(JSON.stringify({ importMs: loaded - t0, totalMs: done - t0, cpuMs: (cpu.user + cpu.system) / 1000, modules: Object.keys(cache).length }));
${close}
`;

const PROBES: Probe[] = [
  {
    name: 'undici (ESM import)',
    file: 'undici.mjs',
    source: `import { createRequire } from 'node:module';\nconst cache = createRequire(import.meta.url).cache;\n${TIMED("await import('undici');")}`,
  },
  {
    name: 'proxyless (ESM import + createMesh)',
    file: 'proxyless.mjs',
    source: `import { createRequire } from 'node:module';\nconst cache = createRequire(import.meta.url).cache;\n${TIMED(
      "const { createMesh } = await import('proxyless');",
      'const mesh = createMesh();',
      'await mesh.close();',
    )}`,
  },
  {
    // What a mesh.fetch user pays in all: the first mesh.fetch imports the rest of undici (fetch).
    name: 'proxyless (ESM import + createMesh + undici fetch loaded)',
    file: 'proxyless-fetch.mjs',
    source: `import { createRequire } from 'node:module';\nconst cache = createRequire(import.meta.url).cache;\n${TIMED(
      "const { createMesh } = await import('proxyless');",
      "const mesh = createMesh();\nawait import('undici');",
      'await mesh.close();',
    )}`,
  },
  {
    name: 'undici (CJS require)',
    file: 'undici.cjs',
    source: `const cache = require.cache;\n${TIMED("require('undici');")}`,
  },
  {
    name: 'proxyless (CJS require + createMesh)',
    file: 'proxyless.cjs',
    source: `const cache = require.cache;\n${TIMED(
      "const { createMesh } = require('proxyless');",
      'const mesh = createMesh();',
      'void mesh.close();',
    )}`,
  },
];

interface Sample {
  processMs: number;
  importMs: number;
  totalMs: number;
  /** CPU time (user + system) of the same span: steadier than wall time on a shared machine. */
  cpuMs: number;
  modules: number;
}

function runProbe(file: string, cwd: string): Sample {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME };
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [file], { cwd, env, encoding: 'utf8', timeout: 30_000 });
  const processMs = performance.now() - t0;
  if (r.status !== 0) throw new Error(`cold-start probe ${file} failed: ${r.stderr || r.error}`);
  const out = JSON.parse(r.stdout) as Omit<Sample, 'processMs'>;
  return { processMs, ...out };
}

export async function run(options: BenchOptions): Promise<BenchSection[]> {
  // Probes sit beside the bench bundle (.tmp/bench), so packages resolve from the workspace root
  // to their built dist/ — what an application loads.
  const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'cold-start');
  mkdirSync(dir, { recursive: true });
  for (const p of PROBES) writeFileSync(path.join(dir, p.file), p.source);
  writeFileSync(
    path.join(dir, 'bare.mjs'),
    'process.stdout.write(JSON.stringify({ importMs: 0, totalMs: 0, cpuMs: 0, modules: 0 }));\n',
  );
  const rounds = options.quick ? 3 : 11;
  const samples = new Map<string, Sample[]>();
  const all = [{ name: 'node, nothing loaded', file: 'bare.mjs' }, ...PROBES];
  for (const p of all) runProbe(p.file, dir); // warm the file system cache
  for (let i = 0; i < rounds; i++) {
    for (const p of all) {
      const list = samples.get(p.name) ?? [];
      list.push(runProbe(p.file, dir));
      samples.set(p.name, list);
    }
  }
  const med = (name: string, key: keyof Sample): number => median(samples.get(name)!.map((s) => s[key]));
  const rows = all.map((p) => [
    p.name,
    med(p.name, 'processMs'),
    med(p.name, 'totalMs'),
    med(p.name, 'cpuMs'),
    med(p.name, 'modules'),
  ]);
  const ratio = (a: string, b: string, key: keyof Sample): number => med(a, key) / med(b, key);
  const esm = ratio('proxyless (ESM import + createMesh)', 'undici (ESM import)', 'totalMs');
  const cjs = ratio('proxyless (CJS require + createMesh)', 'undici (CJS require)', 'totalMs');
  const esmProcess = ratio('proxyless (ESM import + createMesh)', 'undici (ESM import)', 'processMs');
  const cjsProcess = ratio('proxyless (CJS require + createMesh)', 'undici (CJS require)', 'processMs');
  const esmCpu = ratio('proxyless (ESM import + createMesh)', 'undici (ESM import)', 'cpuMs');
  const cjsCpu = ratio('proxyless (CJS require + createMesh)', 'undici (CJS require)', 'cpuMs');
  const verdict = (r: number): string => (r <= 1.2 ? 'met' : 'NOT met');
  return [
    {
      title: 'Cold start: import + createMesh vs undici alone',
      description: `A new Node process per probe, ${rounds} interleaved rounds, medians. "in-process" is the time from the first line of the script to the end of the import (undici) or of \`createMesh()\` (proxyless), "CPU" the process's user + system time over the same span (steadier when the machine is shared); "process" is spawn to exit. Modules: the CommonJS module cache after loading. The mesh loads undici's Dispatcher class and errors at start, its request checks, request API and connection classes (Client, Pool, Agent) at the first call, and the rest of undici — fetch — at the first \`mesh.fetch\`; the "+ undici fetch loaded" row is what a fetch user pays in all.`,
      columns: ['probe', 'process ms', 'in-process ms', 'in-process CPU ms', 'modules loaded'],
      rows,
      notes: [
        `ESM: import + createMesh = ${esm.toFixed(2)}× undici's import in-process (${esmCpu.toFixed(2)}× in CPU time, ${esmProcess.toFixed(2)}× as whole processes); target ≤ 1.2×: ${verdict(esm)}`,
        `CJS: require + createMesh = ${cjs.toFixed(2)}× undici's require in-process (${cjsCpu.toFixed(2)}× in CPU time, ${cjsProcess.toFixed(2)}× as whole processes); target ≤ 1.2×: ${verdict(cjs)}`,
      ],
    },
  ];
}
