/**
 * Small, allocation-free 32-bit hashing for consistent-hash balancing: FNV-1a over UTF-16 code
 * units with a murmur3 finaliser for avalanche. Pick-path functions write their result into
 * {@link HASH_OUT} instead of returning it, so no number is boxed on the heap.
 */

/** Where {@link hashInto} and `requestHash` leave their unsigned 32-bit result. */
export const HASH_OUT = new Uint32Array(1);

/** murmur3 `fmix32`: spreads every input bit over the output. */
export function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hash `s[start, end)` with `seed` into `HASH_OUT[0]`. */
export function hashInto(s: string, start: number, end: number, seed: number): void {
  let h = 0x811c9dc5 ^ Math.imul(seed, 0x9e3779b1);
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    h = Math.imul(h ^ (c & 0xff), 0x01000193);
    h = Math.imul(h ^ (c >>> 8), 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  HASH_OUT[0] = h;
}

/** Hash `s[start, end)` with `seed`; unsigned 32-bit. */
export function hashRange(s: string, start: number, end: number, seed = 0): number {
  hashInto(s, start, end, seed);
  return HASH_OUT[0] as number;
}

/** Hash a whole string; unsigned 32-bit. */
export function hashString(s: string, seed = 0): number {
  hashInto(s, 0, s.length, seed);
  return HASH_OUT[0] as number;
}
