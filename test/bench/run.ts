/**
 * `pnpm bench` — runs every benchmark area in one process, one after another, and prints one
 * markdown table per section. `--quick` for a short smoke run; `--only http,in-process,balancer` to select;
 * `--out FILE` also writes the markdown (docs/benchmarks.md is refreshed from it).
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { type BenchModule, type BenchSection, formatSection } from './harness.js';

const AREAS: Record<string, () => Promise<BenchModule>> = {
  http: () => import('./http.js'),
  'in-process': () => import('./in-process.js'),
  balancer: () => import('./balancer.js'),
  resilience: () => import('./resilience.js'),
  registry: () => import('./registry.js'),
  config: () => import('./config.js'),
  telemetry: () => import('./telemetry.js'),
  routing: () => import('./routing.js'),
  'cold-start': () => import('./cold-start.js'),
};

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const onlyArg = args[args.indexOf('--only') + 1];
  const only = args.includes('--only') && onlyArg ? new Set(onlyArg.split(',')) : undefined;
  const outArg = args.includes('--out') ? args[args.indexOf('--out') + 1] : undefined;
  const header = [
    `Run: ${new Date().toISOString()} · node ${process.version} · ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'} · ${quick ? 'quick' : 'full'} mode`,
    `Command: pnpm bench${quick ? ' --quick' : ''}${only ? ` --only ${[...only].join(',')}` : ''}`,
    '',
  ];
  const out: string[] = [...header];
  process.stdout.write(`${header.join('\n')}\n`);
  let failed = false;
  for (const [name, load] of Object.entries(AREAS)) {
    if (only && !only.has(name)) continue;
    let sections: BenchSection[];
    try {
      sections = await (await load()).run({ quick });
    } catch (error) {
      failed = true;
      const msg = `### ${name}\n\nFAILED: ${(error as Error).stack ?? String(error)}\n`;
      process.stdout.write(`${msg}\n`);
      out.push(msg);
      continue;
    }
    for (const s of sections) {
      const text = formatSection(s);
      process.stdout.write(`${text}\n`);
      out.push(text);
    }
  }
  if (outArg) writeFileSync(outArg, `${out.join('\n')}\n`);
  process.exitCode = failed ? 1 : 0;
}

void main();
