import { EventEmitter } from 'node:events';
import {
  type CallContext,
  type CallResult,
  type Clock,
  emitCallEvent,
  type Filter,
  type Logger,
  MeshError,
  type Next,
  noopLogger,
  type Timer,
} from '@proxyless/core';
import CircuitBreaker from 'opossum';
import { type CircuitBreakerConfig, DEFAULT_CIRCUIT_BREAKER } from './config.js';

/** State of a {@link DestinationBreaker}. */
export type BreakerState = 'closed' | 'open' | 'half-open';

const BUCKETS = 10;
/** Longest timer Node accepts; opossum's own reset timer is parked there and never relied on. */
const NEVER_MS = 2_147_483_647;

/** Whether an outcome counts as a failure of the destination. */
function isFailure(error: unknown): boolean {
  if (!MeshError.is(error)) return true;
  switch (error.code) {
    case 'MESH_CONNECT_FAILED':
    case 'MESH_UPSTREAM_RESET':
    case 'MESH_INTERNAL':
      return true;
    case 'MESH_TIMEOUT':
      return error.details.limit === 'perTry' || error.details.limit === 'headers';
    default:
      return false;
  }
}

/**
 * Error-rate circuit breaking plus Envoy-style request thresholds for one destination.
 *
 * Opossum keeps the rolling statistics (`fires`, `failures`, `successes` over `rollingWindowMs`
 * in 10 buckets) and the open/closed state, and its rule decides when to open: at least
 * `volumeThreshold` attempts in the window and an error percentage above
 * `errorThresholdPercentage`. Opossum keeps time with real timers, so it is driven from the
 * injected clock instead: its window rotates through a `rotateBucketController` ticked by
 * `clock.setTimer`, its timeout is off, and the open → half-open → closed transitions are kept
 * here on the clock (opossum's own reset timer is never relied on). Under a `VirtualClock` every
 * transition is deterministic.
 */
export class DestinationBreaker {
  readonly #config: CircuitBreakerConfig;
  readonly #clock: Clock;
  readonly #service: string;
  readonly #logger: Logger;
  readonly #rotate = new EventEmitter();
  readonly #opossum: CircuitBreaker<[() => Promise<CallResult>], CallResult>;
  #state: BreakerState = 'closed';
  #openedAt = 0;
  #resetTimer: Timer | undefined;
  #rotateTimer: Timer | undefined;
  #trials = 0;
  #active = 0;
  #closed = false;
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
    },
  ) {
    this.#onStateChange = deps.onStateChange;
    this.#config = { ...DEFAULT_CIRCUIT_BREAKER, ...config };
    this.#clock = deps.clock;
    this.#service = deps.service;
    this.#logger = deps.logger ?? noopLogger;
    this.#opossum = new CircuitBreaker(
      // Never fired: outcomes are fed to opossum's statistics directly (see `call`).
      (fn: () => Promise<CallResult>) => fn(),
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
    this.#opossum.on('open', () => this.#toOpen());
    this.#scheduleRotate();
  }

  #scheduleRotate(): void {
    if (this.#closed) return;
    this.#rotateTimer = this.#clock.setTimer(this.#config.rollingWindowMs / BUCKETS, () => {
      this.#rotate.emit('rotate');
      this.#scheduleRotate();
    });
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
    this.#resetTimer = this.#clock.setTimer(this.#config.resetTimeoutMs, () => {
      if (this.#state === 'open' && !this.#closed) this.#set('half-open');
    });
  }

  #toClosed(): void {
    this.#resetTimer?.cancel();
    this.#trials = 0;
    // Start the window afresh: the failures that opened the breaker are history.
    for (let i = 0; i < BUCKETS; i++) this.#rotate.emit('rotate');
    this.#opossum.close();
    this.#set('closed');
  }

  /** Current state. */
  get state(): BreakerState {
    return this.#state;
  }

  /** Requests in flight through this breaker. */
  get active(): number {
    return this.#active;
  }

  /** Clock time the breaker last opened. */
  get openedAt(): number {
    return this.#openedAt;
  }

  /** Calls and failures counted in the current window. */
  get stats(): { fires: number; failures: number; successes: number } {
    const s = this.#opossum.stats;
    return { fires: s.fires, failures: s.failures, successes: s.successes };
  }

  #reject(ctx: CallContext, reason: string, extra: Record<string, unknown> = {}): Promise<never> {
    emitCallEvent(ctx, { type: 'circuit_open', reason });
    return Promise.reject(
      new MeshError(
        'MESH_CIRCUIT_OPEN',
        reason === 'open' || reason === 'half_open_busy'
          ? `circuit breaker for "${this.#service}" is ${this.#state}; calls are rejected until it closes`
          : `circuit breaker for "${this.#service}": ${reason} threshold reached`,
        { details: { service: this.#service, state: this.#state, reason, ...extra } },
      ),
    );
  }

  /** Run one attempt through the breaker. After `close()`, attempts pass straight through. */
  call(ctx: CallContext, next: Next): Promise<CallResult> {
    if (this.#closed) return next(ctx);
    if (this.#state === 'open') return this.#reject(ctx, 'open', { openedAt: this.#openedAt });
    if (this.#active >= this.#config.maxRequests) {
      return this.#reject(ctx, 'maxRequests', { max: this.#config.maxRequests });
    }
    this.#active++;
    if (this.#state === 'half-open') {
      if (this.#trials >= this.#config.halfOpenMaxCalls) {
        this.#active--;
        return this.#reject(ctx, 'half_open_busy');
      }
      this.#trials++;
      return this.#trial(ctx, next).finally(() => {
        this.#active--;
      });
    }
    // Closed: count the attempt in opossum's rolling window. Outcomes are fed to its statistics
    // directly rather than through `fire()`, whose promise chain would add several microtask
    // hops to every request; the open decision is opossum's rule, applied in `#failed`.
    this.#opossum.emit('fire');
    let p: Promise<CallResult>;
    try {
      p = next(ctx);
    } catch (error) {
      p = Promise.reject(error);
    }
    return p.then(
      (result) => {
        this.#active--;
        if (result.status >= 500) this.#failed();
        else this.#opossum.emit('success');
        return result;
      },
      (error: unknown) => {
        this.#active--;
        if (isFailure(error)) this.#failed();
        else this.#opossum.emit('success');
        throw error;
      },
    );
  }

  /** Record a failure; open when opossum's rule says so (volume reached, error rate above threshold). */
  #failed(): void {
    if (this.#closed) return;
    this.#opossum.emit('failure');
    if (this.#state !== 'closed') return;
    const s = this.#opossum.stats;
    if (s.fires < this.#config.volumeThreshold) return;
    if ((s.failures / s.fires) * 100 > this.#config.errorThresholdPercentage) this.#opossum.open();
  }

  async #trial(ctx: CallContext, next: Next): Promise<CallResult> {
    let result: CallResult;
    try {
      result = await next(ctx);
    } catch (error) {
      if (this.#state === 'half-open') {
        if (isFailure(error)) this.#toOpen();
        else this.#trials--;
      }
      throw error;
    }
    if (this.#state === 'half-open') {
      if (result.status >= 500) this.#toOpen();
      else this.#toClosed();
    }
    return result;
  }

  /** Force the breaker open (operations, tests). */
  open(): void {
    if (this.#state === 'open') return;
    if (this.#opossum.opened) this.#toOpen();
    else this.#opossum.open(); // emits 'open', which moves this breaker to open
  }

  /**
   * Stop the timers and release opossum. Attempts still arriving (retries of calls in flight when
   * the destination's policy was replaced) pass straight through.
   */
  close(): void {
    this.#closed = true;
    this.#resetTimer?.cancel();
    this.#rotateTimer?.cancel();
    this.#opossum.shutdown();
  }

  /** The breaker as a filter (place it inside the retry filter so it sees every attempt). */
  filter(): Filter {
    return (ctx, next) => this.call(ctx, next);
  }
}

/** A breaker filter for one destination, plus the breaker itself for inspection. */
export function createCircuitBreakerFilter(
  config: Partial<CircuitBreakerConfig> = {},
  deps: { clock: Clock; service: string; logger?: Logger },
): Filter & { breaker: DestinationBreaker } {
  const breaker = new DestinationBreaker(config, deps);
  const f = breaker.filter() as Filter & { breaker: DestinationBreaker };
  f.breaker = breaker;
  return f;
}
