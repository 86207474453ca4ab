/**
 * Retry delays of the Consul watch loop after a failed call.
 *
 * Consul's own watches (`api/watch/plan.go`) wait 5 s·n², at most 180 s, after the n-th error. A
 * retry that can come at once (full jitter draws 0) turns an outage into a thundering herd: every
 * process and every watch calls again within milliseconds, each with a full non-blocking read.
 * So the delay here is exponential with a floor: the n-th retry waits a uniform time in
 * `[d/2, d)` where `d = min(cap, base·2ⁿ)` ("equal jitter"). After a 429 or 503 (Consul's rate
 * limiters, go-connlimit) the base is longer (`throttledBaseMs`), and a `Retry-After` header is
 * honoured on top.
 */
import type { Random } from '@proxyless/core';

/** Backoff of the Consul watch loop. */
export interface ConsulBackoffOptions {
  /** Upper bound of the first retry after an error, in ms. @defaultValue 1_000 */
  baseMs: number;
  /** Longest delay, in ms. @defaultValue 60_000 */
  capMs: number;
  /**
   * Upper bound of the first retry after a 429 or 503, in ms (Consul's watch uses 5 s).
   * @defaultValue 5 × baseMs (5_000)
   */
  throttledBaseMs?: number;
}

/** The default backoff: 1 s doubling to 60 s; 5 s doubling after 429/503. */
export const DEFAULT_CONSUL_BACKOFF: Readonly<Required<ConsulBackoffOptions>> = Object.freeze({
  baseMs: 1_000,
  capMs: 60_000,
  throttledBaseMs: 5_000,
});

/** A `Retry-After` value is honoured up to this, in ms (10 minutes, Consul's longest wait). */
export const MAX_RETRY_AFTER_MS = 600_000;

/**
 * Delay before retry number `failures + 1` (`failures` = 0 for the first retry): uniform in
 * `[d/2, d)`, `d = min(cap, base·2^failures)`, with the throttled base after a 429/503.
 */
export function consulRetryDelay(
  failures: number,
  options: ConsulBackoffOptions,
  random: Random,
  throttled = false,
): number {
  const base = throttled ? (options.throttledBaseMs ?? options.baseMs * 5) : options.baseMs;
  const cap = Math.max(options.capMs, base);
  const d = Math.min(cap, base * 2 ** Math.min(failures, 30));
  return Math.floor(d / 2 + random.next() * (d / 2));
}

/**
 * `Retry-After` in ms (delta-seconds or an HTTP date, RFC 9110 §10.2.3), or `undefined` when
 * absent or unparsable; bounded by {@link MAX_RETRY_AFTER_MS}.
 */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  let ms: number | undefined;
  if (/^\d+$/.test(text)) ms = Number(text) * 1000;
  else {
    const at = Date.parse(text);
    if (!Number.isNaN(at)) ms = Math.max(0, at - nowMs);
  }
  return ms === undefined ? undefined : Math.min(ms, MAX_RETRY_AFTER_MS);
}
