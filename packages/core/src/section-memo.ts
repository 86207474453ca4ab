import type { Issues } from './issues.js';

/**
 * Config sections already parsed, by their JSON text. A large document repeats the same sections
 * under many services (one retry policy, one outlier-detection block) even when no two services'
 * policies are equal as a whole; a section's validity and parsed form do not depend on the service
 * it is written under. Only results parsed without an issue are kept.
 *
 * For documents parsed from JSON only (a file, a registry value): `JSON.stringify` names such a
 * value exactly, which it does not for values built in code (a function or `undefined` vanishes).
 */
export class SectionMemo {
  readonly #map = new Map<string, unknown>();
  readonly #limit: number;

  constructor(limit = 4096) {
    this.#limit = limit;
  }

  /** `parse(value)`, or what it returned for an equal value of `section` before. */
  read<T>(section: string, value: unknown, issues: Issues, parse: () => T | undefined): T | undefined {
    if (typeof value !== 'object' || value === null) return parse();
    const key = `${section}\u0000${JSON.stringify(value)}`;
    const hit = this.#map.get(key);
    if (hit !== undefined) return hit as T;
    const before = issues.list.length;
    const out = parse();
    if (out !== undefined && issues.list.length === before) {
      if (this.#map.size >= this.#limit) this.#map.clear();
      this.#map.set(key, out);
    }
    return out;
  }
}
