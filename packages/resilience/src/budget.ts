import type { Clock } from '@proxyless/core';
import type { RetryBudgetConfig } from './config.js';

const BUCKETS = 10;

/**
 * A retry budget over a sliding window (Finagle/Linkerd style): retries may add at most
 * `ratio` of the requests seen in the window, plus `minPerSecond` retries per second of window.
 * Shared by every call (retries and hedges) to one destination.
 */
export class RetryBudget {
  readonly #clock: Clock;
  readonly #ratio: number;
  readonly #reserve: number;
  readonly #bucketMs: number;
  readonly #requests = new Array<number>(BUCKETS).fill(0);
  readonly #retries = new Array<number>(BUCKETS).fill(0);
  #bucketIndex = 0;
  #bucketStart: number;

  constructor(config: RetryBudgetConfig, clock: Clock) {
    this.#clock = clock;
    this.#ratio = config.ratio;
    this.#reserve = (config.minPerSecond * config.windowMs) / 1000;
    this.#bucketMs = config.windowMs / BUCKETS;
    this.#bucketStart = clock.now();
  }

  #rotate(): void {
    const now = this.#clock.now();
    let steps = Math.floor((now - this.#bucketStart) / this.#bucketMs);
    if (steps <= 0) return;
    if (steps > BUCKETS) steps = BUCKETS;
    for (let i = 0; i < steps; i++) {
      this.#bucketIndex = (this.#bucketIndex + 1) % BUCKETS;
      this.#requests[this.#bucketIndex] = 0;
      this.#retries[this.#bucketIndex] = 0;
    }
    this.#bucketStart += Math.floor((now - this.#bucketStart) / this.#bucketMs) * this.#bucketMs;
  }

  /** Count one original request (not a retry). */
  recordRequest(): void {
    this.#rotate();
    this.#requests[this.#bucketIndex]!++;
  }

  /** Take one retry from the budget; `false` when it is exhausted. */
  tryWithdraw(): boolean {
    this.#rotate();
    const { requests, retries } = this.snapshot();
    if (retries + 1 > this.#reserve + this.#ratio * requests) return false;
    this.#retries[this.#bucketIndex]!++;
    return true;
  }

  /**
   * Give back a retry taken by {@link tryWithdraw} that was never sent (the circuit breaker refused
   * it): the newest retry still counted in the window is forgotten.
   */
  refund(): void {
    this.#rotate();
    for (let i = 0; i < BUCKETS; i++) {
      const b = (this.#bucketIndex - i + BUCKETS) % BUCKETS;
      if (this.#retries[b]! > 0) {
        this.#retries[b]!--;
        return;
      }
    }
  }

  /** Requests and retries counted in the current window. */
  snapshot(): { requests: number; retries: number } {
    this.#rotate();
    let requests = 0;
    let retries = 0;
    for (let i = 0; i < BUCKETS; i++) {
      requests += this.#requests[i]!;
      retries += this.#retries[i]!;
    }
    return { requests, retries };
  }
}
