import type { Random } from '@proxyless/core';

/** Exponential backoff settings: the first retry waits up to `baseMs`, doubling up to `capMs`. */
export interface BackoffOptions {
  baseMs: number;
  capMs: number;
}

/**
 * Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter"):
 * a uniformly random delay in `[0, min(cap, base × 2^attempt))`. Attempt 0 waits up to `base`.
 */
export function backoffDelay(attempt: number, options: BackoffOptions, random: Random): number {
  const exp = Math.min(options.capMs, options.baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random.next() * exp);
}
