/** A source of uniform numbers in [0, 1). Injected everywhere randomness is used. */
export interface Random {
  next(): number;
}

/** `Math.random()`; the only place it is called. */
export const systemRandom: Random = { next: () => Math.random() };

/**
 * A small, fast deterministic generator (mulberry32). Same seed, same sequence.
 * Good enough for load balancing and jitter; not for cryptography.
 */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return {
    next(): number {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    },
  };
}

/** An integer in [0, n). */
export function randomInt(random: Random, n: number): number {
  return Math.floor(random.next() * n);
}
