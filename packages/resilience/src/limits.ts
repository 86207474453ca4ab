import {
  abortError,
  type CallContext,
  type CallResult,
  type Clock,
  emitCallEvent,
  type Filter,
  MeshError,
  type Next,
  type Timer,
} from '@proxyless/core';
import type { ConcurrencyLimitConfig, RateLimitConfig } from './config.js';

interface Waiter {
  grant(): void;
}

/**
 * At most `max` calls in flight to a destination; up to `queue` more wait (first come, first
 * served) for at most `queueTimeoutMs` (0 = until the call's deadline or abort). Anything beyond
 * fails at once with `MESH_CONCURRENCY_LIMIT`.
 */
export function createConcurrencyLimitFilter(
  config: Partial<ConcurrencyLimitConfig> & { max: number },
  options: { service?: string } = {},
): Filter & { readonly active: number; readonly queued: number } {
  const max = config.max;
  const queueSize = config.queue ?? 0;
  const queueTimeoutMs = config.queueTimeoutMs ?? 0;
  let active = 0;
  const waiting: Waiter[] = [];

  const release = (): void => {
    const w = waiting.shift();
    if (w) w.grant();
    else active--;
  };
  const limitError = (ctx: CallContext, reason: string): MeshError => {
    const service = options.service ?? ctx.service;
    emitCallEvent(ctx, { type: 'rejected', reason, code: 'MESH_CONCURRENCY_LIMIT' });
    return new MeshError(
      'MESH_CONCURRENCY_LIMIT',
      reason === 'queue_timeout'
        ? `"${service}": waited ${queueTimeoutMs}ms for one of ${max} concurrent slots`
        : `"${service}": ${max} calls in flight and the queue (${queueSize}) is full`,
      { details: { service, max, queue: queueSize, reason } },
    );
  };
  const run = (ctx: CallContext, next: Next): Promise<CallResult> => {
    let p: Promise<CallResult>;
    try {
      p = next(ctx);
    } catch (error) {
      p = Promise.reject(error);
    }
    return p.finally(release);
  };

  const filter: Filter = (ctx, next) => {
    if (active < max) {
      active++;
      return run(ctx, next);
    }
    if (waiting.length >= queueSize) return Promise.reject(limitError(ctx, 'queue_full'));
    if (ctx.signal?.aborted) return Promise.reject(abortError(ctx.signal));
    return new Promise<void>((resolve, reject) => {
      let timer: Timer | undefined;
      const signal = ctx.signal;
      const remove = (): void => {
        const i = waiting.indexOf(waiter);
        if (i >= 0) waiting.splice(i, 1);
        timer?.cancel();
        signal?.removeEventListener('abort', onAbort);
      };
      const onAbort = (): void => {
        remove();
        reject(abortError(signal!));
      };
      const waiter: Waiter = {
        grant() {
          // The slot passes from the releasing call to this one: `active` stays the same.
          remove();
          resolve();
        },
      };
      waiting.push(waiter);
      if (queueTimeoutMs > 0) {
        timer = ctx.clock.setTimer(queueTimeoutMs, () => {
          remove();
          reject(limitError(ctx, 'queue_timeout'));
        });
      }
      signal?.addEventListener('abort', onAbort, { once: true });
    }).then(() => run(ctx, next));
  };
  Object.defineProperty(filter, 'active', { get: () => active });
  Object.defineProperty(filter, 'queued', { get: () => waiting.length });
  return filter as Filter & { readonly active: number; readonly queued: number };
}

/** A token bucket on an injected clock: `rps` tokens per second, at most `burst` stored. */
export class TokenBucket {
  readonly #clock: Clock;
  readonly #rate: number;
  readonly #burst: number;
  #tokens: number;
  #last: number;

  constructor(config: RateLimitConfig, clock: Clock) {
    this.#clock = clock;
    this.#rate = config.rps / 1000;
    this.#burst = config.burst;
    this.#tokens = config.burst;
    this.#last = clock.now();
  }

  #refill(): void {
    const now = this.#clock.now();
    if (now > this.#last) {
      this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#last) * this.#rate);
      this.#last = now;
    }
  }

  /** Take a token; `false` when none is available. */
  tryTake(): boolean {
    this.#refill();
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return true;
    }
    return false;
  }

  /** Milliseconds until the next token. */
  msUntilNext(): number {
    this.#refill();
    return this.#tokens >= 1 ? 0 : Math.ceil((1 - this.#tokens) / this.#rate);
  }

  /** Tokens available now. */
  get tokens(): number {
    this.#refill();
    return this.#tokens;
  }
}

/**
 * A token-bucket rate limit per destination on the call's clock (or `clock` when given): calls
 * beyond `rps` (after a `burst`) fail at once with `MESH_RATE_LIMITED`, `details.retryAfterMs`
 * saying when a token will be free.
 */
export function createRateLimitFilter(
  config: { rps: number; burst?: number },
  options: { clock?: Clock; service?: string } = {},
): Filter {
  const resolved: RateLimitConfig = {
    rps: config.rps,
    burst: config.burst ?? Math.max(1, Math.ceil(config.rps)),
  };
  let bucket = options.clock ? new TokenBucket(resolved, options.clock) : undefined;
  return (ctx, next) => {
    if (bucket === undefined) bucket = new TokenBucket(resolved, ctx.clock);
    if (bucket.tryTake()) return next(ctx);
    const service = options.service ?? ctx.service;
    const retryAfterMs = bucket.msUntilNext();
    emitCallEvent(ctx, {
      type: 'rejected',
      reason: 'rate_limited',
      code: 'MESH_RATE_LIMITED',
      delayMs: retryAfterMs,
    });
    return Promise.reject(
      new MeshError(
        'MESH_RATE_LIMITED',
        `"${service}": over the rate limit of ${resolved.rps}/s (burst ${resolved.burst})`,
        {
          details: { service, rps: resolved.rps, burst: resolved.burst, retryAfterMs },
        },
      ),
    );
  };
}
