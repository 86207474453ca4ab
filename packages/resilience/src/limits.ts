import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  type CallContext,
  type Clock,
  callOf,
  emitCallEvent,
  type Filter,
  ForwardingHandler,
  failDispatch,
  KEEP_ALIVE,
  MeshError,
  type MeshHandler,
  RelayController,
  type Timer,
} from '@proxyless/core';
import type { Dispatcher } from 'undici';
import type { ConcurrencyLimitConfig, RateLimitConfig } from './config.js';
import { checkConcurrencySettings, checkRateSettings } from './factory-checks.js';
import { cancelQueued } from './queued.js';

/** A concurrency limit filter, with its live counts and a way to change its settings in place. */
export type ConcurrencyLimitFilter = Filter & {
  readonly active: number;
  readonly queued: number;
  /**
   * New settings for the same counters (a config reload): the calls in flight keep their slots and
   * release them into the same count, so `max` is checked against every call in flight, whichever
   * settings admitted it. Queued calls are re-evaluated at once: served while the new `max` allows,
   * and those beyond the new `queue` (the latest first) fail with `queue_full`; the others keep
   * their queue timeout.
   */
  reconfigure(config: Partial<ConcurrencyLimitConfig> & { max: number }): void;
  /**
   * The limit is gone (removed by a reload): the queued calls are served at once, and calls
   * still reaching this filter pass through.
   */
  close(): void;
};

/**
 * The calls a destination has in flight through the stacks it had before this stage existed (a
 * config reload turned the limit on): a new limit counts them, as Envoy's thresholds count what is
 * in flight whatever admitted it. Their number only goes down.
 */
export interface EarlierCalls {
  count(): number;
  /** Call `fn` whenever one of them ends; returns the unsubscribe. */
  onEnd(fn: () => void): () => void;
}

/** Counts the calls of an {@link EarlierCalls} until none is left, then nothing more. */
export class EarlierCount {
  #earlier: EarlierCalls | undefined;
  #unsubscribe: (() => void) | undefined;
  constructor(earlier: EarlierCalls | undefined, onEnd?: () => void) {
    this.#earlier = earlier;
    if (earlier !== undefined && onEnd !== undefined) this.#unsubscribe = earlier.onEnd(onEnd);
    this.get();
  }
  get(): number {
    const e = this.#earlier;
    if (e === undefined) return 0;
    const n = e.count();
    if (n > 0) return n;
    this.#earlier = undefined;
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    return 0;
  }
}

/** A call waiting for a slot. */
interface Waiter {
  readonly grant: () => void;
  readonly fail: (reason: 'queue_full') => void;
}

/**
 * A bulkhead: at most `max` exchanges in flight to the destination — each holds its slot until its
 * body ends or fails, not just until the head — and at most `queue` waiting (for `queueTimeoutMs`,
 * 0 = as long as the call lasts); beyond that, `MESH_CONCURRENCY_LIMIT`.
 */
export function createConcurrencyLimitFilter(
  config: Partial<ConcurrencyLimitConfig> & { max: number },
  options: { service?: string; earlier?: EarlierCalls } = {},
): ConcurrencyLimitFilter {
  checkConcurrencySettings(config);
  let max = config.max;
  let queueSize = config.queue ?? 0;
  let queueTimeoutMs = config.queueTimeoutMs ?? 0;
  let active = 0;
  let closed = false;
  const waiting: Waiter[] = [];
  /** Serve queued calls while there is room (the settings changed, or an earlier call ended). */
  const pump = (): void => {
    // Bounded: each turn takes one waiter off the queue.
    while (active + earlier.get() < max && waiting.length > 0) {
      active++;
      (waiting[0] as Waiter).grant();
    }
  };
  // Calls in flight through the stacks before this limit existed hold slots until they end.
  const earlier = new EarlierCount(options.earlier, () => {
    // Counted at every end, so the subscription goes with the last of them, queue or not.
    earlier.get();
    if (waiting.length > 0) pump();
  });

  const release = (): void => {
    // The slot passes from the releasing exchange to the next waiter (`active` stays the same),
    // unless a lowered `max` (or calls from before the limit) wants it back.
    const next = active + earlier.get() <= max ? waiting.shift() : undefined;
    if (next) next.grant();
    else active--;
  };
  const limitError = (ctx: CallContext, reason: string, waitedMs = queueTimeoutMs): MeshError => {
    const service = options.service ?? ctx.service;
    emitCallEvent(ctx, { type: 'rejected', reason, code: 'MESH_CONCURRENCY_LIMIT' });
    return new MeshError(
      'MESH_CONCURRENCY_LIMIT',
      reason === 'queue_timeout'
        ? `"${service}": waited ${waitedMs}ms for one of ${max} concurrent slots`
        : `"${service}": ${max} calls in flight and the queue (${queueSize}) is full`,
      { details: { service, max, queue: queueSize, reason } },
    );
  };

  const interceptor: Filter = (dispatch) => (opts, handler) => {
    const ctx = callOf(opts);
    if (ctx === undefined || closed) return dispatch(opts, handler);
    if (active + earlier.get() < max) {
      active++;
      return dispatch(opts, new Slot(handler, release));
    }
    if (waiting.length >= queueSize) {
      failDispatch(handler, limitError(ctx, 'queue_full'));
      return true;
    }
    // Queued: the caller gets a controller now; an abort or the queue timeout leaves the queue.
    let timer: Timer | undefined;
    let inner: Dispatcher.DispatchController | undefined;
    let left = false;
    const leave = (): void => {
      left = true;
      const i = waiting.indexOf(waiter);
      if (i >= 0) waiting.splice(i, 1);
      timer?.cancel();
    };
    const relay = new RelayController((reason) => {
      if (inner !== undefined) return inner.abort(reason);
      // Granted but not started (queued in the endpoint's pool): the stages below take it back.
      if (left) return void cancelQueued(ctx, reason);
      leave();
      handler.onResponseError?.(relay, reason);
    });
    const waiter: Waiter = {
      grant: () => {
        leave();
        dispatch(
          opts,
          new Slot(handler, closed ? noRelease : release, relay, (c) => {
            inner = c;
          }),
        );
      },
      fail: (reason) => {
        leave();
        handler.onResponseError?.(relay, limitError(ctx, reason));
      },
    };
    handler.onRequestStart?.(relay, {});
    if (relay.aborted) return true;
    waiting.push(waiter);
    const waitMs = queueTimeoutMs;
    if (waitMs > 0) {
      timer = ctx.clock.setTimer(
        waitMs,
        () => {
          leave();
          handler.onResponseError?.(relay, limitError(ctx, 'queue_timeout', waitMs));
        },
        KEEP_ALIVE,
      );
    }
    return true;
  };
  const filter = interceptor as ConcurrencyLimitFilter;
  Object.defineProperty(filter, 'active', { get: () => active });
  Object.defineProperty(filter, 'queued', { get: () => waiting.length });
  filter.reconfigure = (next) => {
    checkConcurrencySettings(next);
    max = next.max;
    queueSize = next.queue ?? 0;
    queueTimeoutMs = next.queueTimeoutMs ?? 0;
    pump();
    while (waiting.length > queueSize) (waiting[waiting.length - 1] as Waiter).fail('queue_full');
  };
  filter.close = () => {
    if (closed) return;
    closed = true;
    while (waiting.length > 0) (waiting[0] as Waiter).grant();
  };
  return filter;
}

const noRelease = (): void => {};

/** Holds one concurrency slot until the exchange ends (body end, error or upgrade). */
class Slot extends ForwardingHandler {
  #held = true;
  constructor(
    handler: MeshHandler,
    readonly release: () => void,
    readonly relay?: RelayController,
    readonly onInner?: (c: Dispatcher.DispatchController) => void,
  ) {
    super(handler);
  }
  #free(): void {
    if (!this.#held) return;
    this.#held = false;
    this.release();
  }
  override onRequestStart(c: Dispatcher.DispatchController, context: unknown): void {
    if (this.relay === undefined) {
      super.onRequestStart(c, context);
      return;
    }
    this.onInner?.(c);
    this.relay.setInner(c);
    if (this.relay.aborted) c.abort(this.relay.error!);
  }
  override onRequestUpgrade(
    c: Dispatcher.DispatchController,
    status: number,
    headers: IncomingHttpHeaders,
    socket: Duplex,
  ): void {
    this.#free();
    super.onRequestUpgrade(this.relay ?? c, status, headers, socket);
  }
  override onResponseStart(
    c: Dispatcher.DispatchController,
    status: number,
    headers: IncomingHttpHeaders,
    text?: string,
  ): void {
    super.onResponseStart(this.relay ?? c, status, headers, text);
  }
  override onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    super.onResponseData(this.relay ?? c, chunk);
  }
  override onResponseEnd(c: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    this.#free();
    super.onResponseEnd(this.relay ?? c, trailers);
  }
  override onResponseError(c: Dispatcher.DispatchController, error: Error): void {
    this.#free();
    super.onResponseError(this.relay ?? c, error);
  }
}

/**
 * A token bucket on an injected clock: `rps` tokens per second, at most `burst` stored. Its state
 * changes only when a token is taken or the settings change, so asking how many tokens there are
 * (or when the next one is due) never moves it: a token is available at time `t` exactly when
 * {@link msUntilNext} said it would be.
 */
export class TokenBucket {
  readonly #clock: Clock;
  #rps: number;
  /** Tokens per millisecond. */
  #rate: number;
  #burst: number;
  /** Tokens stored at clock time `#last` (before any refill since). */
  #tokens: number;
  #last: number;

  constructor(config: RateLimitConfig, clock: Clock) {
    this.#clock = clock;
    this.#rps = config.rps;
    this.#rate = config.rps / 1000;
    this.#burst = config.burst;
    this.#tokens = config.burst;
    this.#last = clock.now();
  }

  /** Tokens stored at clock time `at` (not before the last change). */
  #at(at: number): number {
    return at > this.#last
      ? Math.min(this.#burst, this.#tokens + (at - this.#last) * this.#rate)
      : this.#tokens;
  }

  /** Take a token; `false` when none is available. */
  tryTake(): boolean {
    const now = this.#clock.now();
    const tokens = this.#at(now);
    if (tokens < 1) return false;
    this.#tokens = tokens - 1;
    this.#last = Math.max(now, this.#last);
    return true;
  }

  /**
   * Milliseconds until the next token (0: one is available): the least whole number of
   * milliseconds after which {@link tryTake} succeeds, if nothing takes a token meanwhile.
   */
  msUntilNext(): number {
    const now = this.#clock.now();
    if (this.#at(now) >= 1) return 0;
    // The closed form can be off by one either way from float rounding: checked against `#at`.
    let ms = Math.max(1, Math.ceil(this.#last + (1 - this.#tokens) / this.#rate - now));
    while (ms > 1 && this.#at(now + ms - 1) >= 1) ms--;
    while (this.#at(now + ms) < 1) ms++;
    return ms;
  }

  /** Tokens available now. */
  get tokens(): number {
    return this.#at(this.#clock.now());
  }

  /** Whether the bucket is full: a new bucket with these settings would have as many tokens. */
  get full(): boolean {
    return this.tokens >= this.#burst;
  }

  /**
   * New settings for the same bucket (a config reload): the tokens are refilled up to now at the
   * old rate, then capped at the new `burst`; from now on they refill at the new rate. The same
   * settings change nothing (a token stays due when it was).
   */
  reconfigure(config: RateLimitConfig): void {
    if (config.rps === this.#rps && config.burst === this.#burst) return;
    const now = this.#clock.now();
    this.#tokens = Math.min(config.burst, this.#at(now));
    this.#last = Math.max(now, this.#last);
    this.#rps = config.rps;
    this.#rate = config.rps / 1000;
    this.#burst = config.burst;
  }
}

/** A rate limit filter, with its bucket and a way to change its settings in place. */
export type RateLimitFilter = Filter & {
  /** The bucket (made at the first call when no clock was given). */
  readonly bucket: TokenBucket | undefined;
  /** New settings for the same bucket: see {@link TokenBucket.reconfigure}. */
  reconfigure(config: { rps: number; burst?: number }): void;
};

/** `burst` defaults to `rps` rounded up. */
function resolveRate(config: { rps: number; burst?: number }): RateLimitConfig {
  return { rps: config.rps, burst: config.burst ?? Math.max(1, Math.ceil(config.rps)) };
}

/**
 * A token-bucket rate limit per destination on the call's clock (or `clock` when given): calls
 * beyond `rps` (after a `burst`) fail at once with `MESH_RATE_LIMITED`, `details.retryAfterMs`
 * saying when a token will be free. With `bucket` (that of a limit released for the same
 * destination), its tokens go on, brought to these settings as by {@link TokenBucket.reconfigure}.
 */
export function createRateLimitFilter(
  config: { rps: number; burst?: number },
  options: { clock?: Clock; service?: string; bucket?: TokenBucket } = {},
): RateLimitFilter {
  checkRateSettings(config);
  let resolved = resolveRate(config);
  let bucket = options.bucket ?? (options.clock ? new TokenBucket(resolved, options.clock) : undefined);
  options.bucket?.reconfigure(resolved);
  const interceptor: Filter = (dispatch) => (opts, handler) => {
    const ctx = callOf(opts);
    if (ctx === undefined) return dispatch(opts, handler);
    if (bucket === undefined) bucket = new TokenBucket(resolved, ctx.clock);
    if (bucket.tryTake()) return dispatch(opts, handler);
    const service = options.service ?? ctx.service;
    const retryAfterMs = bucket.msUntilNext();
    emitCallEvent(ctx, {
      type: 'rejected',
      reason: 'rate_limited',
      code: 'MESH_RATE_LIMITED',
      delayMs: retryAfterMs,
    });
    failDispatch(
      handler,
      new MeshError(
        'MESH_RATE_LIMITED',
        `"${service}": over the rate limit of ${resolved.rps}/s (burst ${resolved.burst})`,
        { details: { service, rps: resolved.rps, burst: resolved.burst, retryAfterMs } },
      ),
    );
    return true;
  };
  const filter = interceptor as RateLimitFilter;
  Object.defineProperty(filter, 'bucket', { get: () => bucket });
  filter.reconfigure = (next) => {
    checkRateSettings(next);
    resolved = resolveRate(next);
    bucket?.reconfigure(resolved);
  };
  return filter;
}
