import { type ConfigIssue, MeshError, quote } from './errors.js';
import {
  closestName,
  parseBoolean,
  parseDuration,
  parseInteger,
  parseNumber,
  parseRatio,
  type RangeOptions,
} from './parse.js';
import { unknownKeyExpected } from './unknown-key.js';

/**
 * Collects every problem in a document so it can be reported at once, by path, and nothing is
 * applied unless the whole document is valid. Each reader returns the parsed value, or
 * `undefined` after recording an issue.
 *
 * @example
 * const issues = new Issues();
 * const retries = issues.integer(doc.maxRetries, 'services.payments.retry.maxRetries', { min: 0 });
 * issues.throwIfAny('config file /etc/mesh.json');
 */
export class Issues {
  readonly list: ConfigIssue[] = [];

  get ok(): boolean {
    return this.list.length === 0;
  }

  add(field: string, expected: string, value: unknown): undefined {
    this.list.push({ field, expected, value });
    return undefined;
  }

  /**
   * Run a parser that throws `MESH_CONFIG_INVALID`, recording its issues instead (one issue with
   * its message when it lists none: an unreadable file, say), so one error still lists every problem.
   */
  try<T>(fn: () => T): T | undefined {
    try {
      return fn();
    } catch (error) {
      this.record(error);
      return undefined;
    }
  }

  /** Record the issues of a caught `MESH_CONFIG_INVALID` (as {@link try} does); rethrow anything else. */
  record(error: unknown): void {
    if (!MeshError.is(error, 'MESH_CONFIG_INVALID')) throw error;
    if (error.details.issues) this.list.push(...error.details.issues);
    else
      this.list.push({
        field: error.details.field ?? '$',
        expected: error.message,
        value: error.details.value,
        message: error.message,
      });
  }

  /** Throw one `MESH_CONFIG_INVALID` listing every issue, if there is any. */
  throwIfAny(what: string): void {
    if (this.ok) return;
    throw issuesError(what, this.list);
  }

  object(value: unknown, field: string): Record<string, unknown> | undefined {
    if (typeof value === 'object' && value !== null && !Array.isArray(value))
      return value as Record<string, unknown>;
    return this.add(field, 'an object', value);
  }

  array(value: unknown, field: string): unknown[] | undefined {
    if (Array.isArray(value)) return value;
    return this.add(field, 'an array', value);
  }

  string(
    value: unknown,
    field: string,
    options: { nonEmpty?: boolean; pattern?: RegExp; patternText?: string } = {},
  ): string | undefined {
    if (typeof value !== 'string') return this.add(field, 'a string', value);
    if ((options.nonEmpty ?? true) && value.trim() === '')
      return this.add(field, 'a non-empty string', value);
    if (options.pattern && !options.pattern.test(value))
      return this.add(field, options.patternText ?? `a string matching ${options.pattern}`, value);
    return value;
  }

  oneOf<T extends string>(value: unknown, field: string, allowed: readonly T[]): T | undefined {
    if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
    const hint = typeof value === 'string' ? closestName(value, allowed) : undefined;
    return this.add(
      field,
      `one of ${allowed.join(', ')}${hint ? ` (did you mean ${quote(hint)}?)` : ''}`,
      value,
    );
  }

  integer(value: unknown, field: string, range: RangeOptions = {}): number | undefined {
    if (typeof value !== 'number') return this.add(field, describeRange('an integer', range), value);
    return this.try(() => parseInteger(value, field, range));
  }

  number(value: unknown, field: string, range: RangeOptions = {}): number | undefined {
    if (typeof value !== 'number') return this.add(field, describeRange('a number', range), value);
    return this.try(() => parseNumber(value, field, range));
  }

  ratio(value: unknown, field: string): number | undefined {
    return this.try(() => parseRatio(value, field));
  }

  boolean(value: unknown, field: string): boolean | undefined {
    if (typeof value !== 'boolean') return this.add(field, 'true or false', value);
    return this.try(() => parseBoolean(value, field));
  }

  duration(value: unknown, field: string, range: RangeOptions = {}): number | undefined {
    return this.try(() => parseDuration(value, field, range));
  }

  stringArray(value: unknown, field: string): string[] | undefined {
    if (!Array.isArray(value)) return this.add(field, 'an array of strings', value);
    const out: string[] = [];
    value.forEach((v, i) => {
      if (typeof v === 'string') out.push(v);
      else this.add(`${field}[${i}]`, 'a string', v);
    });
    return out.length === value.length ? out : undefined;
  }

  stringRecord(value: unknown, field: string): Record<string, string> | undefined {
    const obj = this.object(value, field);
    if (!obj) return undefined;
    const out: Record<string, string> = {};
    let ok = true;
    for (const [k, v] of Object.entries(obj)) {
      if (typeof v === 'string') out[k] = v;
      else {
        ok = false;
        this.add(`${field}.${k}`, 'a string', v);
      }
    }
    return ok ? out : undefined;
  }

  /** Record an issue for every key of `obj` not in `allowed`, suggesting the closest known key. */
  unknownKeys(obj: Record<string, unknown>, field: string, allowed: readonly string[]): void {
    for (const k of Object.keys(obj)) {
      if (allowed.includes(k)) continue;
      this.add(field === '' ? k : `${field}.${k}`, unknownKeyExpected(k, allowed), obj[k]);
    }
  }
}

function describeRange(kind: string, r: RangeOptions): string {
  if (r.min !== undefined && r.max !== undefined) return `${kind} ${r.min}..${r.max}`;
  if (r.min !== undefined) return `${kind} ≥ ${r.min}`;
  if (r.max !== undefined) return `${kind} ≤ ${r.max}`;
  return kind;
}

/** One error for many issues: the message lists each `field: expected …, got …` line. */
export function issuesError(what: string, issues: readonly ConfigIssue[]): MeshError {
  const lines = issues.map((i) =>
    i.message !== undefined
      ? `${i.field}: ${i.message}`
      : `${i.field}: expected ${i.expected}, got ${quote(i.value)}`,
  );
  const first = issues[0];
  return new MeshError(
    'MESH_CONFIG_INVALID',
    issues.length === 1
      ? `${what}: ${lines[0]}`
      : `${what}: ${issues.length} problems:\n  ${lines.join('\n  ')}`,
    { details: { field: first?.field, value: first?.value, issues } },
  );
}
