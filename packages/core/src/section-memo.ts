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
 * For documents parsed from JSON only (a file, a registry value): `JSON.stringify` names such a
 * value exactly, which it does not for values built in code (a function or `undefined` vanishes).
 */
export class SectionMemo {
  readonly #map = new Map<string, unknown>();
  readonly #stats = new Map<string, SectionStats>();
  readonly #limit: number;

  constructor(limit = 4096) {
    this.#limit = limit;
  }

  /** `parse(value)`, or what it returned for an equal value of `section` before. */
  read<T>(section: string, value: unknown, issues: Issues, parse: () => T | undefined): T | undefined {
    if (typeof value !== 'object' || value === null) return parse();
    let stats = this.#stats.get(section);
    if (stats === undefined) {
      stats = { lookups: 0, hits: 0, keying: true };
      this.#stats.set(section, stats);
    } else if (!stats.keying) return parse();
    const key = `${section}\u0000${JSON.stringify(value)}`;
    const hit = this.#map.get(key);
    stats.lookups++;
    if (hit !== undefined) {
      stats.hits++;
      return hit as T;
    }
    if (stats.lookups >= KEYING_SAMPLE && stats.hits * 8 < stats.lookups) stats.keying = false;
    const before = issues.list.length;
    const out = parse();
    if (out !== undefined && issues.list.length === before) {
      if (this.#map.size >= this.#limit) this.#map.clear();
      this.#map.set(key, out);
    }
    return out;
  }

  /** A new document: every section is keyed again until its own lookups say otherwise. */
  nextDocument(): void {
    this.#stats.clear();
  }
}
