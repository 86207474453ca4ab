import type { Issues } from './issues.js';

/** Lookups of one section after which a section rarely found stops being keyed. */
const KEYING_SAMPLE = 128;

/** How one section's lookups fare in the document being parsed. */
interface SectionStats {
  lookups: number;
  hits: number;
  keying: boolean;
}

/**
 * Config sections already parsed, by their JSON text. A large document repeats the same sections
 * under many services (one retry policy, one outlier-detection block) even when no two services'
 * policies are equal as a whole; a section's validity and parsed form do not depend on the service
 * it is written under. Only results parsed without an issue are kept.
 *
 * A section whose values do not repeat (a `circuitBreaker` with each service's own `maxRequests`)
 * gains nothing from its key, which costs a `JSON.stringify`: after 128 lookups of it with fewer
 * than one in eight found, the rest of the document parses it without a key. `nextDocument()`
 * starts the count again.
 *
 * A key is the JSON text of a value that is JSON data exactly ({@link jsonKey}); a value built in
 * code that JSON would not name exactly (an `undefined` or function member vanishes, `NaN` becomes
 * `null`, a `Date` a string) is parsed without a key, so a hit never skips a check its parse makes.
 */
export class SectionMemo {
  /** Per section: JSON text → what its parse returned (no key concatenated per lookup). */
  readonly #maps = new Map<string, Map<string, unknown>>();
  #size = 0;
  readonly #stats = new Map<string, SectionStats>();
  readonly #limit: number;
  /** Inside {@link exactly}: the values read are parts of one found to be JSON data exactly. */
  #exact = false;

  /** The key of a value that is JSON data exactly, else `undefined` (see {@link jsonKey}). */
  static keyOf(value: unknown): string | undefined {
    return jsonKey(value);
  }

  constructor(limit = 4096) {
    this.#limit = limit;
  }

  /**
   * `parse(value, path, issues, arg)`, or what it returned for an equal value of `section` before.
   * (The parser's arguments are passed through, not captured: no closure per section read.)
   */
  read<T, A = undefined>(
    section: string,
    value: unknown,
    path: string,
    issues: Issues,
    parse: (value: unknown, path: string, issues: Issues, arg: A) => T | undefined,
    arg?: A,
  ): T | undefined {
    if (typeof value !== 'object' || value === null) return parse(value, path, issues, arg as A);
    let stats = this.#stats.get(section);
    if (stats === undefined) {
      stats = { lookups: 0, hits: 0, keying: true };
      this.#stats.set(section, stats);
    } else if (!stats.keying) return parse(value, path, issues, arg as A);
    const json = this.#exact ? JSON.stringify(value) : jsonKey(value);
    if (json === undefined) return parse(value, path, issues, arg as A);
    let map = this.#maps.get(section);
    if (map === undefined) {
      map = new Map();
      this.#maps.set(section, map);
    }
    const hit = map.get(json);
    stats.lookups++;
    if (hit !== undefined) {
      stats.hits++;
      return hit as T;
    }
    if (stats.lookups >= KEYING_SAMPLE && stats.hits * 8 < stats.lookups) stats.keying = false;
    const before = issues.list.length;
    const out = parse(value, path, issues, arg as A);
    if (out !== undefined && issues.list.length === before) {
      if (this.#size >= this.#limit) {
        this.#maps.clear();
        this.#size = 0;
        map = new Map();
        this.#maps.set(section, map);
      }
      map.set(json, out);
      this.#size++;
    }
    return out;
  }

  /**
   * Run `parse` knowing (`exact`) that every value it reads is part of one {@link jsonKey} keyed
   * already: its sections are keyed without walking them again. With `exact` false, as `parse()`.
   */
  exactly<T>(exact: boolean, parse: () => T): T {
    if (!exact || this.#exact) return parse();
    this.#exact = true;
    try {
      return parse();
    } finally {
      this.#exact = false;
    }
  }

  /** A new document: every section is keyed again until its own lookups say otherwise. */
  nextDocument(): void {
    this.#stats.clear();
  }
}

/**
 * The JSON text of `value` when it names it exactly — plain objects and arrays (no holes) of
 * strings, finite numbers, booleans and `null` — else `undefined`. Two values with the same key
 * are then equal as data, so whatever was found valid for one holds for the other. Values built in
 * code may hold what `JSON.stringify` drops or rewrites (an `undefined` member, a function, `NaN`,
 * a `Date`, a `Map`); those have no key. One pass over the value besides the stringify, with no
 * allocation: a small share of what validating it costs.
 */
export function jsonKey(value: unknown): string | undefined {
  if (!isJsonData(value, 0)) return undefined;
  return JSON.stringify(value);
}

/** Nesting beyond which a value is not keyed (config documents are a few levels deep; no cycles). */
const MAX_DEPTH = 32;

function isJsonData(v: unknown, depth: number): boolean {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(v);
    case 'object': {
      if (v === null) return true;
      if (depth >= MAX_DEPTH) return false;
      const proto = Object.getPrototypeOf(v);
      if (proto === Array.prototype) {
        const a = v as readonly unknown[];
        // A hole reads as `undefined`, which is refused like an `undefined` element.
        for (let i = 0; i < a.length; i++) if (!isJsonData(a[i], depth + 1)) return false;
        return true;
      }
      if (proto !== Object.prototype && proto !== null) return false;
      const o = v as Record<string, unknown>;
      for (const k in o) if (!isJsonData(o[k], depth + 1)) return false;
      return true;
    }
    default:
      // `undefined`, a function, a symbol or a bigint: JSON drops, rewrites or refuses them.
      return false;
  }
}
