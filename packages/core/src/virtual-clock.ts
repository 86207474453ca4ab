import { setImmediate as realSetImmediate } from 'node:timers';
import { type Clock, sleepOn, type Timer } from './clock.js';

interface Scheduled {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

function noop(): void {}

/** Options of a {@link VirtualClock}. */
export interface VirtualClockOptions {
  /**
   * The wall-clock time (Unix epoch ms) `wallNow()` reads at `start`; it moves with virtual time.
   * @defaultValue `start`, so `new VirtualClock(Date.parse('…'))` sets both readings to that date
   */
  wall?: number;
}

/**
 * A clock that moves only when told. Timers fire in time order during `advance`, with pending
 * promise callbacks run between them, so code that awaits `clock.sleep` behaves as on real time.
 * Its wall clock (`wallNow()`, for HTTP dates such as `Retry-After`) is virtual too: never the
 * real date, so a test reads the same dates on every run.
 *
 * @example
 * const clock = new VirtualClock();
 * const done = clock.sleep(1000);
 * await clock.advance(1000); // `done` is now resolved
 * @example
 * const clock = new VirtualClock(0, { wall: Date.parse('Wed, 21 Oct 2015 07:28:00 GMT') });
 * await clock.advance(5000); // wallNow() is now 07:28:05 GMT that day
 */
export class VirtualClock implements Clock {
  #now: number;
  /** `wallNow() - now()`. */
  #wallOffset: number;
  #seq = 0;
  #queue: Scheduled[] = [];

  constructor(start = 0, options: VirtualClockOptions = {}) {
    finiteTime('VirtualClock: start', start);
    if (options.wall !== undefined) finiteTime('VirtualClock: options.wall', options.wall);
    this.#now = start;
    this.#wallOffset = (options.wall ?? start) - start;
  }

  now(): number {
    return this.#now;
  }

  /** The virtual wall-clock time, Unix epoch ms: the date set (see {@link setWallTime}) plus time advanced since. */
  wallNow(): number {
    return this.#now + this.#wallOffset;
  }

  /** Set the virtual date `wallNow()` reads from now on (epoch ms); `now()` and timers are untouched. */
  setWallTime(epochMs: number): void {
    finiteTime('VirtualClock.setWallTime', epochMs);
    this.#wallOffset = epochMs - this.#now;
  }

  setTimer(ms: number, fn: () => void): Timer {
    const entry: Scheduled = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn, cancelled: false };
    // Keep the queue sorted by (at, seq): stable order for timers due at the same time.
    let i = this.#queue.length;
    while (i > 0) {
      const prev = this.#queue[i - 1]!;
      if (prev.at < entry.at || (prev.at === entry.at && prev.seq < entry.seq)) break;
      i--;
    }
    this.#queue.splice(i, 0, entry);
    return {
      cancel: () => {
        entry.cancelled = true;
        // The entry stays queued until its time passes; what it would have run does not.
        entry.fn = noop;
      },
    };
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }

  /** Timers not yet fired or cancelled. */
  get pendingTimers(): number {
    return this.#queue.filter((e) => !e.cancelled).length;
  }

  /**
   * Move time forward by `ms`, firing every timer due on the way in order and letting promise
   * callbacks settle after each one.
   */
  async advance(ms: number): Promise<void> {
    // A recurring timer would fire forever on the way to Infinity.
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0)
      throw new RangeError(
        `VirtualClock.advance: expected a finite number of milliseconds ≥ 0, got ${String(ms)}`,
      );
    const target = this.#now + ms;
    await flushPromises();
    for (;;) {
      const next = this.#queue[0];
      if (!next || next.at > target) break;
      this.#queue.shift();
      if (next.cancelled) continue;
      this.#now = next.at;
      next.fn();
      await flushPromises();
    }
    this.#now = target;
    await flushPromises();
  }

  /** Advance to the next due timer and fire it (and any due at the same time). Returns false if none. */
  async next(): Promise<boolean> {
    await flushPromises();
    const live = this.#queue.find((e) => !e.cancelled);
    if (!live) return false;
    await this.advance(live.at - this.#now);
    return true;
  }

  /** Fire timers until none is left, at most `limit` of them (a bounded loop, for periodic timers). */
  async runAll(limit = 10_000): Promise<void> {
    for (let i = 0; i < limit; i++) {
      if (!(await this.next())) return;
    }
  }
}

/**
 * Let pending promise callbacks (and their follow-ups) run. Not a sleep: no time passes. It uses
 * `node:timers`' own `setImmediate`, which Jest's and vitest's fake timers (they replace the
 * global one) leave alone, so the VirtualClock works in a test that also fakes timers.
 */
export async function flushPromises(rounds = 3): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await new Promise<void>((resolve) => realSetImmediate(resolve));
  }
}

/** A time given in milliseconds must be a finite number (`'5'` would concatenate, `NaN` never fire). */
function finiteTime(what: string, ms: unknown): void {
  if (typeof ms !== 'number' || !Number.isFinite(ms))
    throw new RangeError(
      `${what}: expected a finite number of milliseconds, got ${typeof ms === 'string' ? `"${ms}"` : String(ms)}`,
    );
}
