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

export function envInteger(env: Env, name: string, range: RangeOptions = {}): number | undefined {
  const v = envString(env, name);
  if (v === undefined) return undefined;
  // `2.0` is the integer 2, as for the variables the config schemas declare (`MESH_RETRIES=2.0`);
  // an error quotes the value as written.
  const whole = /^\s*(-?\d+)\.0+\s*$/.exec(v);
  if (whole === null) return parseInteger(v, name, range);
  try {
    return parseInteger(whole[1], name, range);
  } catch {
    return parseInteger(v, name, range); // refused again, quoting the value as written
  }
}

export function envNumber(env: Env, name: string, range: RangeOptions = {}): number | undefined {
  const v = envString(env, name);
  return v === undefined ? undefined : parseNumber(v, name, range);
}

export function envDuration(env: Env, name: string, range: RangeOptions = {}): number | undefined {
  const v = envString(env, name);
  return v === undefined ? undefined : parseDuration(v, name, range);
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
