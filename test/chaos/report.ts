/** One row of the chaos table. */
export interface ScenarioResult {
  readonly n: number;
  readonly name: string;
  readonly target: string;
  readonly requests: number;
  readonly errors: number;
  readonly errorCodes: ReadonlyMap<string, number>;
  /** Requests received by the backends per client request. */
  readonly amplification: number;
  readonly healthy: { readonly p50: number; readonly p99: number };
  readonly fault: { readonly p50: number; readonly p99: number };
  readonly recoveryMs: number | undefined;
  readonly met: boolean;
  readonly notes: readonly string[];
}

const ms = (v: number): string => (Number.isFinite(v) ? v.toFixed(1) : '—');

function codes(r: ScenarioResult): string {
  return [...r.errorCodes].map(([c, k]) => `${c} ×${k}`).join(', ');
}

/** The table, as Markdown. */
export function markdownTable(results: readonly ScenarioResult[]): string {
  const head =
    '| # | scenario | target | requests | errors | attempts/request | p50 / p99 healthy (ms) | p50 / p99 fault (ms) | recovery (ms) | result |\n' +
    '|---|---|---|---:|---:|---:|---:|---:|---:|---|';
  const rows = results.map((r) => {
    const verdict = r.met ? 'met' : `**missed**: ${[codes(r), ...r.notes].filter(Boolean).join('; ')}`;
    const detail = r.met && r.notes.length > 0 ? `met (${r.notes.join('; ')})` : verdict;
    return `| ${r.n} | ${r.name} | ${r.target} | ${r.requests} | ${r.errors} | ${r.amplification.toFixed(3)} | ${ms(r.healthy.p50)} / ${ms(r.healthy.p99)} | ${ms(r.fault.p50)} / ${ms(r.fault.p99)} | ${r.recoveryMs === undefined ? '—' : r.recoveryMs} | ${detail} |`;
  });
  return [head, ...rows].join('\n');
}

/** The table for a terminal. */
export function textTable(results: readonly ScenarioResult[]): string {
  const lines = results.map(
    (r) =>
      `${String(r.n).padStart(2)}  ${r.met ? 'met   ' : 'MISSED'}  req ${String(r.requests).padStart(6)}  err ${String(r.errors).padStart(5)}  amp ${r.amplification.toFixed(3)}  healthy ${ms(r.healthy.p50)}/${ms(r.healthy.p99)}  fault ${ms(r.fault.p50)}/${ms(r.fault.p99)}  recover ${r.recoveryMs ?? '—'} ms  ${r.name}${r.errors > 0 ? `\n      errors: ${codes(r)}` : ''}${r.notes.length > 0 ? `\n      ${r.notes.join('; ')}` : ''}`,
  );
  return lines.join('\n');
}
