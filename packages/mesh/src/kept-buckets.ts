/**
 * The rate-limit buckets of destinations evicted while idle before their bucket was full again,
 * by service name (or `target:` and a routing target's key): the next destination built for it
 * goes on with the tokens, so an eviction never gives a call a token the bucket would not have.
 * An entry goes once its bucket is full (a new one would start the same), when its service's rate
 * limit is turned off or the service is no longer named; a config change brings it to the new
 * settings, as for a live destination. At most {@link MAX_KEPT_BUCKETS}: with that many kept, an
 * idle destination whose bucket is not full is not evicted yet.
 */

import type { TokenBucket } from '@proxyless/resilience';

/** At most this many rate-limit buckets of evicted destinations are kept. */
export const MAX_KEPT_BUCKETS = 1024;

/** The rate limit a kept bucket is brought to on a config change (`undefined`: none any more). */
export type RateLimitOf = () => { rps: number; burst: number } | undefined;

export class KeptBuckets {
  readonly #buckets = new Map<string, { service: string; bucket: TokenBucket; rateLimit: RateLimitOf }>();

  /**
   * Keep `bucket` (of a destination of `service` about to be evicted) under `key` unless it is
   * full or there is none. `false`: it is not full and {@link MAX_KEPT_BUCKETS} are kept already,
   * so the destination must stay for now.
   */
  keep(key: string, service: string, bucket: TokenBucket | undefined, rateLimit: RateLimitOf): boolean {
    if (bucket === undefined || bucket.full) return true;
    if (this.#buckets.size >= MAX_KEPT_BUCKETS) return false;
    this.#buckets.set(key, { service, bucket, rateLimit });
    return true;
  }

  /** The bucket kept for `key`, taken out (for the destination being built). */
  take(key: string): TokenBucket | undefined {
    const kept = this.#buckets.get(key);
    if (kept === undefined) return undefined;
    this.#buckets.delete(key);
    return kept.bucket.full ? undefined : kept.bucket;
  }

  /** Drop the buckets full again: a new destination's would start the same. */
  dropFull(): void {
    for (const [key, kept] of this.#buckets) if (kept.bucket.full) this.#buckets.delete(key);
  }

  /**
   * A config version was applied: a kept bucket takes the service's new rate limit now, as a live
   * destination's does (refilled up to now at the old rate, capped at the new burst), and goes
   * when its service has no rate limit any more or is not named.
   */
  apply(named: (service: string) => boolean): void {
    for (const [key, kept] of this.#buckets) {
      const rateLimit = named(kept.service) ? kept.rateLimit() : undefined;
      if (rateLimit === undefined || kept.bucket.full) this.#buckets.delete(key);
      else kept.bucket.reconfigure(rateLimit);
    }
  }

  clear(): void {
    this.#buckets.clear();
  }
}
