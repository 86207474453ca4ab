import { type ConfigIssue, MeshError, quote } from '@proxyless/core';

/** One problem in one config entry. */
export interface EntryIssue {
  /** `<Kind>/<Name>` of the entry (`service-router/payments`), or `entries[3]` when unnamed. */
  readonly entry: string;
  /** Field path inside the entry (`Routes[0].Match.HTTP.PathPrefix`); empty for the entry itself. */
  readonly path: string;
  /** What is wrong, in Consul's words where Consul has words for it. */
  readonly message: string;
  readonly value?: unknown;
}

/**
 * Collects every problem of a set of config entries so the whole set is reported at once and
 * nothing of it is applied.
 */
export class EntryIssues {
  readonly list: EntryIssue[] = [];

  get ok(): boolean {
    return this.list.length === 0;
  }

  add(entry: string, path: string, message: string, value?: unknown): undefined {
    this.list.push({ entry, path, message, ...(value !== undefined ? { value } : {}) });
    return undefined;
  }

  /**
   * Throw one `MESH_CONFIG_INVALID` naming every entry, field path and value, if any.
   * `details.issues[].field` is `<Kind>/<Name> <path>`; `details.entries` lists the entry names.
   */
  throwIfAny(what: string): void {
    if (this.ok) return;
    throw entryIssuesError(what, this.list);
  }
}

/** The problem in words, with the value when there is one. */
function sentence(i: EntryIssue): string {
  return `${i.message}${i.value !== undefined ? ` (got ${quote(i.value)})` : ''}`;
}

function line(i: EntryIssue): string {
  const at = i.path === '' ? i.entry : `${i.entry} ${i.path}`;
  return `${at}: ${sentence(i)}`;
}

/** The error for a list of entry issues. */
export function entryIssuesError(what: string, issues: readonly EntryIssue[]): MeshError {
  const lines = issues.map(line);
  const configIssues: ConfigIssue[] = issues.map((i) => ({
    field: i.path === '' ? i.entry : `${i.entry} ${i.path}`,
    value: i.value,
    expected: i.message,
    message: sentence(i),
  }));
  const first = issues[0];
  return new MeshError(
    'MESH_CONFIG_INVALID',
    issues.length === 1
      ? `${what}: ${lines[0]}`
      : `${what}: ${issues.length} problems:\n  ${lines.join('\n  ')}`,
    {
      details: {
        field: configIssues[0]?.field,
        value: first?.value,
        entry: first?.entry,
        entries: [...new Set(issues.map((i) => i.entry))],
        issues: configIssues,
      },
    },
  );
}

const GO_DURATION_PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * A Go `time.Duration` in milliseconds: a duration string (`"5s"`, `"1m30s"`, `"1.5s"`, `"0"`)
 * or a number of nanoseconds (how Go marshals a `time.Duration` without a string marshaller,
 * e.g. `Resolver.RequestTimeout` in a compiled chain). `undefined` when invalid or negative.
 */
export function goDurationMs(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value / 1e6 : undefined;
  if (typeof value !== 'string') return undefined;
  if (value === '0') return 0;
  let ms = 0;
  let pos = 0;
  if (value.length === 0) return undefined;
  while (pos < value.length) {
    GO_DURATION_PART.lastIndex = pos;
    const m = GO_DURATION_PART.exec(value);
    if (!m) return undefined;
    ms += Number(m[1]) * (UNIT_MS[m[2] ?? ''] ?? 0);
    pos = GO_DURATION_PART.lastIndex;
  }
  return ms;
}

/** Namespaces and partitions other than `default` are Consul Enterprise: record an issue. */
export function checkTenancy(
  o: { Namespace?: string; Partition?: string },
  label: string,
  at: string,
  issues: EntryIssues,
) {
  for (const k of ['Namespace', 'Partition'] as const) {
    const v = o[k];
    if (v !== undefined && v !== '' && v !== 'default') {
      issues.add(
        label,
        `${at}${k}`,
        `${k === 'Namespace' ? 'Namespaces' : 'Partitions'} are a Consul Enterprise feature`,
        v,
      );
    }
  }
}

/** Record an issue when `v` is set and not a valid, non-negative Go duration. */
export function checkDuration(v: unknown, label: string, path: string, issues: EntryIssues): void {
  if (v !== undefined && goDurationMs(v) === undefined) {
    issues.add(
      label,
      path,
      'expected a Go duration such as "5s" or "1m30s" (or nanoseconds), not negative',
      v,
    );
  }
}
