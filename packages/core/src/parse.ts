import { configError, type MeshError, quote } from './errors.js';

/** Milliseconds per unit, for Go-style durations (`1m30s`, `250ms`, `1.5h`). */
const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  // Both micro signs, as Go's time.ParseDuration: U+00B5 (micro sign) and U+03BC (Greek mu).
  '\u00b5s': 1e-3,
  '\u03bcs': 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};
const DURATION_PART = /(\d+(?:\.\d+)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/y;

export interface RangeOptions {
  /** Inclusive lower bound. */
  min?: number;
  /** Inclusive upper bound. */
  max?: number;
}

function rangeText(kind: string, o: RangeOptions, unit = ''): string {
  if (o.min !== undefined && o.max !== undefined) return `${kind} ${o.min}${unit}..${o.max}${unit}`;
  if (o.min !== undefined) return `${kind} ≥ ${o.min}${unit}`;
  if (o.max !== undefined) return `${kind} ≤ ${o.max}${unit}`;
  return kind;
}

/**
 * Parse a duration into milliseconds: a number (ms), plain digits (`"250"` = ms), or Go-style
 * units (`250ms`, `5s`, `1m30s`, `1.5h`, `100us`, `100µs` with either micro sign). Negative and empty values are rejected.
 * @throws MeshError `MESH_CONFIG_INVALID` naming `field` and the value.
 */
export function parseDuration(value: unknown, field: string, range?: RangeOptions): number {
  // No closure, default object or regex match for a value seen before: a config document parses
  // thousands of durations, most of them repeated, in code V8 has not compiled yet.
  let ms: number;
  if (typeof value === 'string') {
    const known = DURATIONS.get(value);
    if (known !== undefined) ms = known;
    else ms = parseDurationText(value, field, range);
  } else if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw badDuration(value, field, range);
    if (value > Number.MAX_SAFE_INTEGER) throw hugeDuration(value, field, range);
    ms = value;
  } else {
    throw badDuration(value, field, range);
  }
  if (
    range !== undefined &&
    ((range.min !== undefined && ms < range.min) || (range.max !== undefined && ms > range.max))
  )
    throw badDuration(value, field, range);
  return ms;
}

/**
 * A duration's milliseconds, or `undefined` when `value` is absent or no duration: for rules
 * across fields, which compare what is valid and leave a bad value to the field's own check.
 */
export function durationMsOrUndefined(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  try {
    return parseDuration(value, '');
  } catch {
    return undefined;
  }
}

/** A duration string not parsed before: its milliseconds, remembered. */
function parseDurationText(value: string, field: string, range: RangeOptions | undefined): number {
  const s = value.trim();
  if (s === '') throw badDuration(value, field, range);
  let ms: number;
  if (/^\d+(\.\d+)?$/.test(s)) {
    ms = Number(s);
  } else {
    ms = 0;
    let pos = 0;
    while (pos < s.length) {
      DURATION_PART.lastIndex = pos;
      const m = DURATION_PART.exec(s);
      if (!m) throw badDuration(value, field, range);
      ms += Number(m[1]) * UNIT_MS[m[2]!]!;
      pos = DURATION_PART.lastIndex;
    }
  }
  // Beyond ±MAX_SAFE_INTEGER ms (285,000 years) a duration is not the one written, and a string
  // of 400 digits would be Infinity: refused, never rounded.
  if (!(ms <= Number.MAX_SAFE_INTEGER)) throw hugeDuration(value, field, range);
  // A document repeats a few durations many times (and each is read twice: checked, then used).
  if (DURATIONS.size >= 512) DURATIONS.clear();
  DURATIONS.set(value, ms);
  return ms;
}

function badDuration(value: unknown, field: string, range: RangeOptions = {}): MeshError {
  return configError(
    field,
    `${rangeText('a duration', range, 'ms')} (e.g. 250ms, 5s, 1m30s or plain milliseconds)`,
    value,
  );
}

function hugeDuration(value: unknown, field: string, range: RangeOptions = {}): MeshError {
  return configError(
    field,
    `${rangeText('a duration', range, 'ms')} of at most ${Number.MAX_SAFE_INTEGER}ms (the largest number of milliseconds held exactly)`,
    value,
  );
}

/**
 * The milliseconds of a duration already known to be well formed — a number in range, or a string
 * parsed before — else `undefined` (not one, or not parsed yet: ask {@link parseDuration}).
 */
export function knownDuration(value: unknown): number | undefined {
  if (typeof value === 'string') return DURATIONS.get(value);
  return typeof value === 'number' && value >= 0 && value <= Number.MAX_SAFE_INTEGER ? value : undefined;
}

/** Duration strings already parsed (well formed; the range is checked per call). */
const DURATIONS = new Map<string, number>();

const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);

/** The boolean a word means (`true/false/1/0/yes/no/on/off`, any case, trimmed), if it is one. */
export function booleanWord(s: string): boolean | undefined {
  const w = s.trim().toLowerCase();
  return TRUE.has(w) ? true : FALSE.has(w) ? false : undefined;
}

/** `true/false/1/0/yes/no/on/off` (any case) or a boolean. */
export function parseBoolean(value: unknown, field: string): boolean {
  if (typeof value === 'boolean') return value;
  const b = typeof value === 'string' ? booleanWord(value) : undefined;
  if (b !== undefined) return b;
  throw configError(field, 'a boolean (true/false, 1/0, yes/no, on/off)', value);
}

/** An integer within bounds, from a number or a decimal string. */
export function parseInteger(value: unknown, field: string, range: RangeOptions = {}): number {
  const expected = (): string => rangeText('an integer', range); // built only for a bad value
  let n: number;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'string' && /^\s*-?\d+\s*$/.test(value)) n = Number(value);
  else throw configError(field, expected(), value);
  if (!Number.isSafeInteger(n)) throw configError(field, expected(), value);
  if ((range.min !== undefined && n < range.min) || (range.max !== undefined && n > range.max)) {
    throw configError(field, expected(), value);
  }
  return n;
}

/** A finite number within bounds, from a number or a decimal string. */
export function parseNumber(value: unknown, field: string, range: RangeOptions = {}): number {
  const expected = (): string => rangeText('a number', range); // built only for a bad value
  let n: number;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'string' && /^\s*-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$/.test(value))
    n = Number(value);
  else throw configError(field, expected(), value);
  if (!Number.isFinite(n)) throw configError(field, expected(), value);
  if ((range.min !== undefined && n < range.min) || (range.max !== undefined && n > range.max)) {
    throw configError(field, expected(), value);
  }
  return n;
}

/**
 * The one string form of a ratio: a percentage, digits with an optional fraction, then `%`
 * (`20%`, `0.5%`; blanks around the number and the sign are ignored). The JSON Schema states the
 * same pattern (`Ratio` in schema.ts), so Ajv and the mesh accept the same strings.
 */
export const PERCENT_PATTERN = '^\\s*\\d+(\\.\\d+)?\\s*%\\s*$';
const PERCENT = new RegExp(PERCENT_PATTERN);

/**
 * A ratio: a number 0..1, or a percentage string 0..100 % ({@link PERCENT_PATTERN}). A string
 * fraction (`"0.2"`, `"1e-1"`) is not a ratio: the document would be valid to the mesh and invalid
 * to the published JSON Schema. (Env values such as `MESH_RETRY_BUDGET=0.2` are decimals turned
 * into numbers before they get here.)
 * @throws MeshError `MESH_CONFIG_INVALID` naming `field` and the value.
 */
export function parseRatio(value: unknown, field: string): number {
  if (typeof value === 'string') {
    if (!PERCENT.test(value)) throw configError(field, 'a ratio 0..1 or a percentage like "20%"', value);
    return parseNumber(value.trim().slice(0, -1), field, { min: 0, max: 100 }) / 100;
  }
  if (typeof value !== 'number') throw configError(field, 'a ratio 0..1 or a percentage like "20%"', value);
  return parseNumber(value, field, { min: 0, max: 1 });
}

export interface HostPort {
  /** Host name or IP; IPv6 without brackets. */
  readonly address: string;
  readonly port: number;
}

const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$/;
/** A dotted IPv4 literal, as a regular-expression source without anchors (for larger patterns). */
export const IPV4_SOURCE =
  '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)(?:\\.(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)){3}';
const IPV4 = new RegExp(`^${IPV4_SOURCE}$`);

/** True for an IPv6 literal (no brackets). */
export function isIPv6(s: string): boolean {
  if (!s.includes(':') || !/^[0-9A-Fa-f:.]+(%[\w.-]+)?$/.test(s)) return false;
  const parts = s.split('%')[0]!.split('::');
  if (parts.length > 2) return false;
  const groups = parts.flatMap((p) => (p === '' ? [] : p.split(':')));
  const max = parts.length === 2 ? 7 : 8;
  let count = 0;
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i]!;
    if (i === groups.length - 1 && IPV4.test(g)) count += 2;
    else if (/^[0-9A-Fa-f]{1,4}$/.test(g)) count += 1;
    else return false;
  }
  return parts.length === 2 ? count <= max : count === max;
}

/** True for a dotted IPv4 literal. */
export function isIPv4(s: string): boolean {
  return IPV4.test(s);
}

/** A last label that makes a host an IPv4 address to URL parsers (digits, or `0x` hex). */
const NUMERIC_LABEL = /(?:^|\.)(?:\d+|0[xX][0-9a-fA-F]*)\.?$/;

/**
 * True for an address a socket can be opened to: IPv4, IPv6 or a DNS name. A name whose last
 * label is a number (`10.0.0.256`) is an IPv4 address or nothing: the WHATWG URL parser, and so
 * undici and fetch, read it as IPv4 and reject it when it is not one.
 */
export function isValidHost(s: string): boolean {
  if (isIPv4(s) || isIPv6(s)) return true;
  return HOST_NAME.test(s) && !NUMERIC_LABEL.test(s);
}

/** A TCP port 1..65535. */
export function parsePort(value: unknown, field: string): number {
  return parseInteger(value, field, { min: 1, max: 65535 });
}

/**
 * `host:port`, `[v6]:port`. A bare IPv6 literal without brackets is rejected because its port
 * would be ambiguous.
 */
export function parseHostPort(value: unknown, field: string): HostPort {
  const expected = 'host:port (IPv6 in brackets: [::1]:8080)';
  if (typeof value !== 'string') throw configError(field, expected, value);
  const s = value.trim();
  let host: string;
  let portText: string;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0 || s[close + 1] !== ':') throw configError(field, expected, value);
    host = s.slice(1, close);
    portText = s.slice(close + 2);
    if (!isIPv6(host)) throw configError(field, expected, value);
  } else {
    const colon = s.lastIndexOf(':');
    if (colon <= 0 || s.indexOf(':') !== colon) throw configError(field, expected, value);
    host = s.slice(0, colon);
    portText = s.slice(colon + 1);
    if (!isValidHost(host)) throw configError(field, expected, value);
  }
  if (!/^\d{1,5}$/.test(portText)) throw configError(field, expected, value);
  const port = Number(portText);
  if (port < 1 || port > 65535) throw configError(field, `${expected} with a port 1..65535`, value);
  return { address: host, port };
}

/** A comma-separated list of `host:port`; blanks between commas are rejected. */
export function parseHostPortList(value: unknown, field: string): HostPort[] {
  if (typeof value !== 'string' || value.trim() === '') {
    throw configError(field, 'a comma-separated list of host:port', value);
  }
  return value.split(',').map((part, i) => parseHostPort(part, `${field}[${i}]`));
}

/** A comma-separated list of non-empty strings (trimmed). */
export function parseStringList(value: unknown, field: string): string[] {
  if (Array.isArray(value) && value.every((v) => typeof v === 'string' && v.trim() !== '')) {
    return value.map((v: string) => v.trim());
  }
  if (typeof value !== 'string') throw configError(field, 'a comma-separated list', value);
  const parts = value.split(',').map((p) => p.trim());
  if (parts.some((p) => p === ''))
    throw configError(field, 'a comma-separated list with no empty items', value);
  return parts;
}

/** One of a fixed set of words; a near miss (`DNS`, `inof`) is named in the error. */
export function parseEnum<T extends string>(value: unknown, field: string, allowed: readonly T[]): T {
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value.trim()))
    return value.trim() as T;
  const hint = typeof value === 'string' ? closestName(value.trim(), allowed) : undefined;
  throw configError(
    field,
    `one of ${allowed.join(', ')}${hint ? ` (did you mean ${quote(hint)}?)` : ''}`,
    value,
  );
}

/** Levenshtein distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  const prev = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

/**
 * The candidate a misspelt `name` most likely meant, or undefined. First the one candidate that
 * continues `name` at a word boundary (`MESH_HEDGE` → `MESH_HEDGE_DELAY`, `least` →
 * `least_request`), when only one does; then the nearest by edit distance within a reasonable
 * distance, ties going to the candidate with as many words (`_`-separated) and then to the longer
 * common beginning (`MESH_RETRY` → `MESH_RETRIES`, not `MESH_REGISTRY` or `MESH_RETRY_ON`).
 */
export function closestName(name: string, candidates: Iterable<string>): string | undefined {
  const upper = name.toUpperCase();
  const list = [...candidates];
  // The same name in another case (`passThrough` for `passthrough`) before any longer one.
  const sameName = list.filter((c) => c.toUpperCase() === upper);
  if (sameName.length === 1) return sameName[0];
  const continuing = name === '' ? [] : list.filter((c) => continuesAtWordBoundary(name, c));
  if (continuing.length === 1) return continuing[0];
  // Each word the start of the candidate's word (`minHosts` → `minimumHosts`, `maxReq` →
  // `maxRequests`), when only one candidate reads so.
  const abbreviating = name === '' ? [] : list.filter((c) => abbreviates(name, c));
  if (abbreviating.length === 1) return abbreviating[0];
  const words = upper.split('_').length;
  let best: string | undefined;
  let bestKey: readonly number[] = [Number.POSITIVE_INFINITY];
  for (const c of list) {
    const u = c.toUpperCase();
    const key = [editDistance(upper, u), Math.abs(u.split('_').length - words), -commonPrefix(upper, u)];
    if (lexLess(key, bestKey)) {
      bestKey = key;
      best = c;
    }
  }
  if (best === undefined) return undefined;
  const distance = bestKey[0] as number;
  // Within a third of the name; or, for a candidate that begins as the name does (three letters
  // or more: `retires` → `retry`), within half of it.
  if (distance <= Math.max(2, Math.floor(name.length / 3))) return best;
  // (A name the candidate merely continues mid-word, `MESH_HEDG` → `MESH_HEDGER_X`, is no typo.)
  const prefix = -(bestKey[2] as number);
  return prefix >= 3 && prefix < name.length && distance <= Math.floor(name.length / 2) ? best : undefined;
}

/** The words of a name: split at `_`, `-`, `.` and camelCase humps, upper-cased. */
function wordsOf(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .split(/[\s_.-]+/)
    .filter((w) => w !== '')
    .map((w) => w.toUpperCase());
}

/** `name` has as many words as `candidate`, each the start of its word, and is not the same. */
function abbreviates(name: string, candidate: string): boolean {
  const a = wordsOf(name);
  const b = wordsOf(candidate);
  if (a.length !== b.length || a.length === 0) return false;
  let shorter = false;
  for (let i = 0; i < a.length; i++) {
    const w = a[i] as string;
    const full = b[i] as string;
    if (!full.startsWith(w)) return false;
    if (w.length < full.length) shorter = true;
  }
  return shorter;
}

/** `candidate` is `name` (any case) and more, the more starting a new word: `_`, `-`, `.` or camelCase. */
function continuesAtWordBoundary(name: string, candidate: string): boolean {
  if (candidate.length <= name.length || !candidate.toUpperCase().startsWith(name.toUpperCase()))
    return false;
  const next = candidate[name.length] as string;
  if (next === '_' || next === '-' || next === '.') return true;
  const last = candidate[name.length - 1] as string;
  return /[A-Z]/.test(next) && /[a-z0-9]/.test(last);
}

function commonPrefix(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

function lexLess(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = b[i] ?? Number.POSITIVE_INFINITY;
    if (x !== y) return x < y;
  }
  return false;
}

/**
 * A copy of `obj` without `keys`, property by property: an object rest pattern
 * (`const { a, ...rest } = obj`) takes a slow path in V8 for objects parsed from JSON, which costs
 * a large config document milliseconds.
 */
export function omitKeys<T extends object, K extends keyof T>(obj: T, keys: readonly K[]): Omit<T, K> {
  const out: Record<string, unknown> = {};
  for (const k in obj) {
    if (!Object.hasOwn(obj, k) || (keys as readonly PropertyKey[]).includes(k)) continue;
    out[k] = obj[k];
  }
  return out as Omit<T, K>;
}
