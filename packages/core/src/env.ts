import { configError, MeshError } from './errors.js';
import {
  type HostPort,
  parseBoolean,
  parseDuration,
  parseEnum,
  parseHostPortList,
  parseInteger,
  parseNumber,
  parseStringList,
  type RangeOptions,
} from './parse.js';

/** The environment as a plain record (`process.env`, or a test's own). */
export type Env = Readonly<Record<string, string | undefined>>;

/** Documentation of one environment variable, owned by the package that reads it. */
export interface EnvVarSpec {
  /** Full name, or the prefix for a family (`MESH_ENDPOINTS_`), with `prefix: true`. */
  readonly name: string;
  readonly prefix?: boolean;
  /** Shown in the configuration table: `duration`, `integer 1..1024`, `boolean`, … */
  readonly type: string;
  /** Shown in the table; `—` when there is none. */
  readonly defaultValue: string;
  readonly description: string;
  /** The config-document field the variable sets (`retry.maxRetries`), when it sets one. */
  readonly field?: string;
}

/** The value, or `undefined` when unset or blank (blank means unset). */
export function envString(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

export function envBoolean(env: Env, name: string): boolean | undefined {
  const v = envString(env, name);
  return v === undefined ? undefined : parseBoolean(v, name);
}

/**
 * A number as JSON writes one (`-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?`): an environment
 * variable's number is read as a config document's (`1e3` is 1000), and what JSON refuses
 * (`010`, `.5`, `5.`, `+5`, `0x10`, `Infinity`) is an error, not a guess. Blanks around it are
 * trimmed first.
 */
export const JSON_NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;

/** A number as JavaScript would read it, more loosely than JSON (`010`, `.5`, `5.`, `+5`). */
const LOOSE_NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/**
 * The note for a refused value that is a number JSON does not write (`.5`, `010`, `+5`, `5.`):
 * how JSON writes it (`; numbers are read as JSON writes them: 0.5, not .5`), else `''`.
 */
export function jsonNumberNote(text: string): string {
  const t = text.trim();
  if (JSON_NUMBER.test(t) || !LOOSE_NUMBER.test(t)) return '';
  return `; numbers are read as JSON writes them: ${String(Number(t))}, not ${t}`;
}

/**
 * `parse` on the number `text` is as JSON reads it (`NaN` when it is none, which every number
 * parser refuses); a refusal names the variable and quotes its value as written.
 */
function envNumeric(name: string, text: string, numeric: boolean, parse: (n: number) => number): number {
  try {
    return parse(numeric ? Number(text) : Number.NaN);
  } catch (error) {
    const issue = MeshError.is(error, 'MESH_CONFIG_INVALID') ? error.details.issues?.[0] : undefined;
    if (issue === undefined) throw error;
    throw configError(name, `${issue.expected}${numeric ? '' : jsonNumberNote(text)}`, text);
  }
}

export function envInteger(env: Env, name: string, range: RangeOptions = {}): number | undefined {
  const v = envString(env, name);
  if (v === undefined) return undefined;
  // `1e3` is 1000 and `2.0` is 2, as in a document; `1.5e0` is no integer.
  return envNumeric(name, v, JSON_NUMBER.test(v), (n) => parseInteger(n, name, range));
}

export function envNumber(env: Env, name: string, range: RangeOptions = {}): number | undefined {
  const v = envString(env, name);
  return v === undefined
    ? undefined
    : envNumeric(name, v, JSON_NUMBER.test(v), (n) => parseNumber(n, name, range));
}

/** Plain milliseconds in a duration's own notation (`250`, `.5`), besides a JSON number. */
const MILLISECONDS = /^(\d+(\.\d+)?|\.\d+)$/;

export function envDuration(env: Env, name: string, range: RangeOptions = {}): number | undefined {
  const v = envString(env, name);
  if (v === undefined) return undefined;
  if (!JSON_NUMBER.test(v) && !MILLISECONDS.test(v)) return parseDuration(v, name, range);
  return envNumeric(name, v, true, (n) => parseDuration(n, name, range));
}

export function envEnum<T extends string>(env: Env, name: string, allowed: readonly T[]): T | undefined {
  const v = envString(env, name);
  return v === undefined ? undefined : parseEnum(v, name, allowed);
}

export function envHostPortList(env: Env, name: string): HostPort[] | undefined {
  const v = envString(env, name);
  return v === undefined ? undefined : parseHostPortList(v, name);
}

export function envStringList(env: Env, name: string): string[] | undefined {
  const v = envString(env, name);
  return v === undefined ? undefined : parseStringList(v, name);
}

/**
 * `MESH_ENDPOINTS_<SERVICE>` suffix for a service name: upper-cased, `-` and `.` as `_`.
 * `payments-v2.eu` → `PAYMENTS_V2_EU`.
 */
export function envServiceSuffix(service: string): string {
  return service.toUpperCase().replace(/[-.]/g, '_');
}
