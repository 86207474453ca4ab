import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { seededRandom } from '@proxyless/core';
/**
 * The benchmark harness's shared shapes. Each area writes `test/bench/<area>.ts` exporting
 * `run(options): Promise<BenchSection[]>`; `run.ts` runs them in one process, one after another,
 * and prints every section as a markdown table. Ratios are always against a baseline measured in
 * the same run: absolute figures move ±20 % between runs and machines.
 */
export interface BenchSection {
  title: string;
  /** What the baseline is and how ratios are computed. */
  description?: string;
  columns: string[];
  rows: Array<Array<string | number>>;
  /** Targets and whether they were met, in words. */
  notes?: string[];
}

export interface BenchOptions {
  /** Short mode for smoke runs (`pnpm bench --quick`): fewer rounds, smaller sizes. */
  quick: boolean;
}

export type BenchModule = { run(options: BenchOptions): Promise<BenchSection[]> };

export function formatSection(s: BenchSection): string {
  const fmt = (v: string | number): string =>
    typeof v === 'number'
      ? Number.isInteger(v)
        ? String(v)
        : v.toFixed(Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2)
      : v;
  const lines = [`### ${s.title}`, ''];
  if (s.description) lines.push(s.description, '');
  lines.push(`| ${s.columns.join(' | ')} |`, `|${s.columns.map(() => '---').join('|')}|`);
  for (const r of s.rows) lines.push(`| ${r.map(fmt).join(' | ')} |`);
  if (s.notes?.length) lines.push('', ...s.notes.map((n) => `- ${n}`));
  return `${lines.join('\n')}\n`;
}

/** Median of a list of numbers (the list is not modified). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The q-quantile (0..1) of a list by nearest rank. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

/** `gc()` when the runtime allows exposing it (Node does, through a V8 flag), else `undefined`. */
export function exposeGc(): (() => void) | undefined {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return g;
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
}

/** A Fisher–Yates shuffle over the mesh's seeded generator: the same orders every run. */
export function seededShuffle(seed: number): <T>(xs: readonly T[]) => T[] {
  const random = seededRandom(seed);
  return <T>(xs: readonly T[]): T[] => {
    const out = [...xs];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(random.next() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  };
}
