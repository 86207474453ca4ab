import { EventEmitter } from 'node:events';
import {
  type CallContext,
  type Clock,
  callOf,
  emitCallEvent,
  type Filter,
  failDispatch,
  type Logger,
  MAX_TIMER_MS,
  MeshError,
  noopLogger,
  type Timer,
} from '@proxyless/core';
import type CircuitBreaker from 'opossum';
import { BreakerExchange } from './breaker-exchange.js';
import { isFailure } from './breaker-outcome.js';
import { type CircuitBreakerConfig, DEFAULT_CIRCUIT_BREAKER } from './config.js';
import { checkBreakerSettings, checkSettingKeys } from './factory-checks.js';
import { type EarlierCalls, EarlierCount } from './limits.js';
import loadOpossum from './opossum-part.cjs';
import { holdQueued } from './queued.js';

/** State of a {@link DestinationBreaker}. */
export type BreakerState = 'closed' | 'open' | 'half-open';

const BUCKETS = 10;
/**
 * Longest timer Node accepts, as opossum's `resetTimeout`: opossum's own open → half-open timer
 * (a real `setTimeout`) is armed only when opossum itself opens, which it never does here (see
 * {@link DestinationBreaker}); the value is a second guard, not relied on.
 */
const NEVER_MS = MAX_TIMER_MS;

/**
 * Error-rate circuit breaking plus Envoy-style request thresholds for one destination.
 *
 * Opossum keeps the rolling statistics (`fires`, `failures`, `successes` over `rollingWindowMs`
 * in 10 buckets), and its rule decides when to open (applied here, to those statistics): at least
 * `volumeThreshold` attempts in the window and an error percentage above
 * `errorThresholdPercentage`. Opossum keeps time with real timers, so it is driven from the
 * injected clock instead:
 * - its window rotates through a `rotateBucketController`, lazily: before an outcome is counted
 *   or the stats are read, the buckets that elapsed on the clock since the last rotation are
 *   rotated (at most all 10). No timer recurs, so an idle breaker arms nothing, and moving a
 *   `VirtualClock` by a month costs nothing;
 * - its timeout is off;
 * - the open → half-open → closed transitions are kept here, on the clock. Opossum's own state is
 *   never moved (`open()` is not called on it): its 'open' handler would arm a real `setTimeout`
 *   for its reset. (Its constructor still reads `Date.now()` once, for its `toJSON` state.)
 *
 * Under a `VirtualClock` every transition is deterministic.
 */
export class DestinationBreaker {
  readonly #config: CircuitBreakerConfig;
  /** `maxRequests`, which a reload may change in place ({@link setMaxRequests}). */
  #maxRequests: number;
  readonly #clock: Clock;
  readonly #service: string;
  readonly #logger: Logger;
  readonly #rotate = new EventEmitter();
  readonly #opossum: CircuitBreaker<[() => Promise<unknown>], unknown>;
  #state: BreakerState = 'closed';
  #openedAt = 0;
  #resetTimer: Timer | undefined;
  /** Clock time the window's newest bucket started: buckets before it are rotated out lazily. */
  #bucketStart: number;
  #trials = 0;
  /** Clock time the latest trial was let through (half-open). */
  #trialAt = 0;
  /**
   * Clock time of the latest failure counted in the window, while it may still be in it: until
   * then a success is checked against the rule too (a window of 11 failures then 9 successes
   * reaches its volume on a success). With none, a success cannot open the breaker: not checked.
   */
  #lastFailureAt: number | undefined;
  /** Attempts in flight, shared with the breakers this one replaced or that replace it. */
  readonly #counts: { active: number };
  /** Calls in flight from before any breaker of the destination existed. */
  readonly #earlier: EarlierCount;
  #closed = false;
  /**
   * The destination's breaker in force (`undefined`: removed), shared by every breaker that
   * replaced another (a config reload): a replaced one admits and counts through it. One cell for
   * the line, not a pointer to the next breaker, so that a replaced breaker still held (by a call
   * kept alive, or its response) keeps the one in force alive, not every breaker built since.
   */
  #line: { current: DestinationBreaker | undefined };
  /** Replaced or removed ({@link retire}). */
  #retired = false;
  readonly #onStateChange: ((state: BreakerState) => void) | undefined;
  /** The latest state changes (up to 100), in order, for tests and logs. */
  readonly transitions: Array<{ at: number; state: BreakerState }> = [];

  constructor(
    config: Partial<CircuitBreakerConfig>,
    deps: {
      clock: Clock;
      service: string;
      logger?: Logger;
      /** Called on every state change (closed → open → half-open → closed). */
      onStateChange?: (state: BreakerState) => void;
      /**
       * The breaker this one replaces (a config reload): its attempts in flight stay counted
       * against `maxRequests` here, and release into the same count when they end.
       */
      previous?: DestinationBreaker;
      /**
       * With no `previous` (a reload turned the breaker on): the calls still in flight through the
       * destination's earlier stacks, counted against `maxRequests` until they end.
       */
      earlier?: EarlierCalls;
    },
  ) {
    checkBreakerSettings(config);
    this.#onStateChange = deps.onStateChange;
    this.#counts = deps.previous === undefined ? { active: 0 } : deps.previous.#counts;
    this.#line = deps.previous === undefined ? { current: this } : deps.previous.#line;
    this.#earlier = deps.previous === undefined ? new EarlierCount(deps.earlier) : deps.previous.#earlier;
    this.#config = { ...DEFAULT_CIRCUIT_BREAKER, ...config };
    this.#maxRequests = this.#config.maxRequests;
    this.#clock = deps.clock;
    this.#service = deps.service;
    this.#logger = deps.logger ?? noopLogger;
    const Opossum = loadOpossum();
    this.#opossum = new Opossum(
      // Never fired: outcomes are fed to opossum's statistics directly (see `call`).
      (fn: () => Promise<unknown>) => fn(),
      {
        name: deps.service,
        timeout: false,
        resetTimeout: NEVER_MS,
        errorThresholdPercentage: this.#config.errorThresholdPercentage,
        volumeThreshold: this.#config.volumeThreshold,
        rollingCountTimeout: this.#config.rollingWindowMs,
        rollingCountBuckets: BUCKETS,
        rotateBucketController: this.#rotate,
        enableSnapshots: false,
        rollingPercentilesEnabled: false,
      },
    );
    this.#bucketStart = this.#clock.now();
  }

  /**
   * Rotate the buckets that elapsed since the newest one started, as a timer every
   * `rollingWindowMs / 10` would have (a bucket starts at each multiple of that from the
   * breaker's creation), but only when the window is used: no timer recurs.
   */
  #catchUp(): void {
    const bucketMs = this.#config.rollingWindowMs / BUCKETS;
    const elapsed = Math.floor((this.#clock.now() - this.#bucketStart) / bucketMs);
    if (!(elapsed > 0)) return;
    // More than a window ago: every bucket is empty, whatever the count.
    for (let i = 0; i < Math.min(elapsed, BUCKETS); i++) this.#rotate.emit('rotate');
    this.#bucketStart += elapsed * bucketMs;
  }

  #set(state: BreakerState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.transitions.push({ at: this.#clock.now(), state });
    if (this.transitions.length > 100) this.transitions.shift();
    const log = state === 'closed' ? this.#logger.info : this.#logger.warn;
    log.call(this.#logger, `circuit breaker for "${this.#service}" is ${state}`, {
      service: this.#service,
      state,
    });
    this.#onStateChange?.(state);
  }

  #toOpen(): void {
    this.#openedAt = this.#clock.now();
    this.#trials = 0;
    this.#set('open');
    this.#resetTimer?.cancel();
    this.#resetTimer = this.#clock.setTimer(this.#config.resetTimeoutMs, () => this.#toHalfOpen());
  }

  /**
   * Open → half-open, once `resetTimeout` has passed: by the reset timer, or by the first attempt
   * admitted after it, whichever comes first. The attempt does not wait for the timer: a caller
   * looping on calls that fail fast (each rejection settles in microtasks) keeps the event loop
   * from its timers, and the breaker would stay open for as long as that loop runs.
   */
  #toHalfOpen(): void {
    if (this.#state !== 'open' || this.#closed) return;
    this.#resetTimer?.cancel();
    this.#resetTimer = undefined;
    this.#set('half-open');
  }

  #toClosed(): void {
    this.#resetTimer?.cancel();
    this.#trials = 0;
    this.#lastFailureAt = undefined;
    // Start the window afresh: the failures that opened the breaker are history.
    this.#catchUp();
    for (let i = 0; i < BUCKETS; i++) this.#rotate.emit('rotate');
    this.#set('closed');
  }

  /** Current state. */
  get state(): BreakerState {
    return this.#state;
  }

  /** Requests in flight through this breaker. */
  get active(): number {
    return this.#counts.active;
  }

  /** Clock time the breaker last opened. */
  get openedAt(): number {
    return this.#openedAt;
  }

  /** Calls and failures counted in the current window. */
  get stats(): { fires: number; failures: number; successes: number } {
    if (!this.#closed) this.#catchUp();
    const s = this.#opossum.stats;
    return { fires: s.fires, failures: s.failures, successes: s.successes };
  }

  #reject(ctx: CallContext, reason: string, extra: Record<string, unknown> = {}): MeshError {
    emitCallEvent(ctx, { type: 'circuit_open', reason });
    return new MeshError(
      'MESH_CIRCUIT_OPEN',
      reason === 'open' || reason === 'half_open_busy'
        ? `circuit breaker for "${this.#service}" is ${this.#state}; calls are rejected until it closes`
        : `circuit breaker for "${this.#service}": ${reason} threshold reached`,
      { details: { service: this.#service, state: this.#state, reason, ...extra } },
    );
  }

  /**
   * Admit one attempt, or return the error that rejects it. An admitted attempt holds a slot of
   * `maxRequests` until its exchange ends ({@link settle}).
   */
  admit(ctx: CallContext): MeshError | 'trial' | 'normal' | 'bypass' {
    if (this.#closed) return 'bypass';
    if (this.#state === 'open' && this.#clock.now() - this.#openedAt >= this.#config.resetTimeoutMs) {
      this.#toHalfOpen();
    }
    if (this.#state === 'open') {
      // When it half-opens (a trial call is let through), as a rate limit's `retryAfterMs` says.
      // Whole milliseconds, rounded up (as the rate limit's): the clock reads fractions.
      const retryAfterMs = Math.max(
        0,
        Math.ceil(this.#openedAt + this.#config.resetTimeoutMs - this.#clock.now()),
      );
      return this.#reject(ctx, 'open', { openedAt: this.#openedAt, retryAfterMs });
    }
    if (this.#counts.active + this.#earlier.get() >= this.#maxRequests) {
      return this.#reject(ctx, 'maxRequests', { max: this.#maxRequests });
    }
    if (this.#state === 'half-open') {
      if (this.#trials >= this.#config.halfOpenMaxCalls) {
        // Trials with no outcome for `resetTimeout` no longer hold their places: another is let
        // through (Polly's rule, one trial per break duration). Else one trial sent to an endpoint
        // that never answers would hold the destination shut until undici's `headersTimeout`.
        const waitMs = this.#trialAt + this.#config.resetTimeoutMs - this.#clock.now();
        // When another trial may go, in whole milliseconds (as `open`'s `retryAfterMs`).
        if (waitMs > 0) return this.#reject(ctx, 'half_open_busy', { retryAfterMs: Math.ceil(waitMs) });
        this.#trials = 0;
      }
      this.#trials++;
      this.#trialAt = this.#clock.now();
      this.#counts.active++;
      return 'trial';
    }
    this.#counts.active++;
    this.#catchUp();
    this.#opossum.emit('fire');
    return 'normal';
  }

  /**
   * The exchange of an admitted attempt ended: with a response (its status) or an error. A 5xx or a
   * failure of the endpoint counts against the destination; an error the endpoint did not cause
   * (the caller aborted, the request was invalid) does not.
   */
  settle(kind: 'trial' | 'normal', status: number | undefined, error: unknown): void {
    this.record(kind, status, error);
    this.release();
  }

  /**
   * Count an attempt's outcome: its response status as soon as the head arrives (as Envoy's
   * outlier detection does), or its error. A 5xx or a failure of the endpoint counts against the
   * destination; an error the endpoint did not cause (the caller aborted, the request was invalid,
   * the caller's body failed) does not.
   */
  record(kind: 'trial' | 'normal', status: number | undefined, error: unknown): void {
    const failed = error !== undefined ? isFailure(error) : (status ?? 0) >= 500;
    const current = this.#retired ? this.#line.current : undefined;
    if (current !== undefined && current !== this) {
      current.#recordForwarded(status, error);
      return;
    }
    if (kind === 'trial') {
      if (this.#state !== 'half-open') return;
      if (failed) this.#toOpen();
      else if (error !== undefined) this.#trials = Math.max(0, this.#trials - 1);
      else this.#toClosed();
      return;
    }
    if (failed) this.#failed();
    else if (!this.#closed) {
      this.#catchUp();
      this.#opossum.emit('success');
      if (this.#lastFailureAt !== undefined) {
        if (this.#clock.now() - this.#lastFailureAt < this.#config.rollingWindowMs) this.#check();
        else this.#lastFailureAt = undefined;
      }
    }
  }

  /**
   * The outcome of an attempt a replaced breaker admitted: it counts here as an attempt of this
   * window (its admission was counted in the replaced breaker's window, which is gone).
   */
  #recordForwarded(status: number | undefined, error: unknown): void {
    if (this.#closed) return;
    this.#catchUp();
    this.#opossum.emit('fire');
    this.record('normal', status, error);
  }

  /** The admitted attempt's exchange ended (body end, error or upgrade): free its `maxRequests` slot. */
  release(): void {
    this.#counts.active--;
  }

  /** Record a failure; open when opossum's rule says so (volume reached, error rate above threshold). */
  #failed(): void {
    if (this.#closed) return;
    this.#catchUp();
    this.#opossum.emit('failure');
    this.#lastFailureAt = this.#clock.now();
    this.#check();
  }

  /**
   * Opossum's rule over the window, after each outcome counted (a success too, while a failure is
   * in the window): at least `volumeThreshold` attempts and more than `errorThresholdPercentage`
   * of them failed.
   */
  #check(): void {
    if (this.#state !== 'closed') return;
    // The window's counts, summed from its buckets (opossum's `stats` also sums every other counter
    // it keeps: this runs after every success while a failure is in the window).
    let fires = 0;
    let failures = 0;
    for (const bucket of this.#opossum.status.window as Array<
      { fires: number; failures: number } | undefined
    >) {
      if (bucket === undefined) continue;
      fires += bucket.fires;
      failures += bucket.failures;
    }
    if (fires < this.#config.volumeThreshold) return;
    // Opened here, not through opossum's `open()`: its 'open' handler arms a real timer.
    if ((failures / fires) * 100 > this.#config.errorThresholdPercentage) this.#toOpen();
  }

  /** Force the breaker open (operations, tests). */
  open(): void {
    if (this.#state === 'open') return;
    this.#toOpen();
  }

  /**
   * A new `maxRequests` (a config reload): checked against the attempts in flight from now on;
   * the state, the window and the counts stay.
   */
  setMaxRequests(max: number): void {
    this.#maxRequests = max;
  }

  /**
   * Replaced by `successor` (a config reload that changed the error-rate settings), or removed
   * (no successor): {@link close}, and report the state the destination is left in when it is not
   * this breaker's — `successor`'s, or `closed` when the destination has no breaker any more — so
   * whoever follows `onStateChange` (events, the state gauge) is never left with a stale state.
   */
  retire(successor?: DestinationBreaker): void {
    if (this.#closed) return;
    this.#retired = true;
    // A successor built without this one as its previous joins this line: the breakers that
    // replaced this one reach it through the same cell.
    if (successor !== undefined && successor.#line !== this.#line) successor.#line = this.#line;
    if (this.#line.current === this || successor !== undefined) this.#line.current = successor;
    this.close();
    const now = successor === undefined ? 'closed' : successor.state;
    if (now === this.#state) return;
    this.#logger.info(
      successor === undefined
        ? `circuit breaker for "${this.#service}" removed`
        : `circuit breaker for "${this.#service}" replaced; it is ${now}`,
      { service: this.#service, state: now },
    );
    this.#onStateChange?.(now);
  }

  /**
   * Stop the timers and release opossum. Attempts still arriving (retries of calls in flight when
   * the destination's policy was replaced) go to the breaker that replaced this one
   * ({@link retire}), which admits them and counts their outcomes, as it does the outcomes of the
   * attempts in flight; with none (closed, or removed), they pass straight through.
   */
  close(): void {
    this.#closed = true;
    this.#resetTimer?.cancel();
    this.#opossum.shutdown();
  }

  /** The breaker as an interceptor (place it inside the retry stage so it sees every attempt). */
  filter(): Filter {
    return (dispatch) => (opts, handler) => {
      const ctx = callOf(opts);
      if (ctx === undefined) return dispatch(opts, handler);
      // A retired breaker's filter (retries of calls in flight) admits through its successor.
      const breaker = this.#retired ? (this.#line.current ?? this) : this;
      const admitted = breaker.admit(ctx);
      if (admitted === 'bypass') return dispatch(opts, handler);
      if (typeof admitted !== 'string') {
        failDispatch(handler, admitted);
        return true;
      }
      const exchange = new BreakerExchange(handler, breaker, admitted);
      holdQueued(ctx, exchange);
      return dispatch(opts, exchange);
    };
  }
}

/** A breaker filter for one destination, plus the breaker itself for inspection. */
export function createCircuitBreakerFilter(
  config: Partial<CircuitBreakerConfig> = {},
  deps: { clock: Clock; service: string; logger?: Logger },
): Filter & { breaker: DestinationBreaker } {
  checkSettingKeys('createCircuitBreakerFilter', config, 'circuitBreaker');
  const breaker = new DestinationBreaker(config, deps);
  const f = breaker.filter() as Filter & { breaker: DestinationBreaker };
  f.breaker = breaker;
  return f;
}
