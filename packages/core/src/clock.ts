import { MeshError } from './errors.js';

/** A scheduled callback; `cancel()` is idempotent. */
export interface Timer {
  cancel(): void;
}

/** How a timer relates to the process's lifetime. */
export interface TimerOptions {
  /**
   * Keep the process alive while the timer is pending. For timers a caller is waiting on — a retry
   * backoff, a fault delay, a queue or readiness wait, a call's deadline, a bounded `close()` — as
   * undici's own request timers do: a script that awaits a call must not exit during its backoff.
   * Background timers (breaker windows, ejections, health checks, polling) never keep it alive.
   * @defaultValue false
   */
  keepAlive?: boolean;
}

/**
 * Time as every policy sees it. Only this file (and the test clock) touch `Date.now`
 * and `setTimeout`; everything else takes a `Clock`, so it can run on virtual time.
 */
export interface Clock {
  /** Milliseconds since an arbitrary epoch (monotonic for the system clock). */
  now(): number;
  /**
   * Run `fn` after `ms`. System timers are `unref`'d unless `options.keepAlive` is set: background
   * work never keeps the process alive, a caller's pending call does.
   */
  setTimer(ms: number, fn: () => void, options?: TimerOptions): Timer;
  /**
   * Resolve after `ms`; reject with `MESH_ABORTED` (cause: the signal's reason) if `signal` aborts first.
   * The abort listener is removed either way.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * Wall-clock milliseconds since the Unix epoch, for what is stated as a date (an HTTP-date
   * `Retry-After`). Not monotonic; never use it for durations. Optional so that a `Clock` written
   * before it existed still compiles: {@link wallClockMs} falls back to `Date.now()` without it.
   */
  wallNow?(): number;
}

/** The options of a timer a caller's pending call waits on (see {@link TimerOptions.keepAlive}). */
export const KEEP_ALIVE: TimerOptions = Object.freeze({ keepAlive: true });

/** Shared sleep on top of `setTimer`, used by both clocks. */
export function sleepOn(
  clock: Pick<Clock, 'setTimer'>,
  ms: number,
  signal?: AbortSignal,
  options?: TimerOptions,
): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortError(signal));
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      timer.cancel();
      reject(abortError(signal!));
    };
    const timer = clock.setTimer(
      ms,
      () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      },
      options,
    );
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The error a cancelled wait rejects with: the signal's own reason when it is a `MeshError`. */
export function abortError(signal: AbortSignal): MeshError {
  const reason: unknown = signal.reason;
  if (MeshError.is(reason)) return reason;
  return new MeshError('MESH_ABORTED', 'the request was aborted by the caller', { cause: reason });
}

/** The longest delay `setTimeout` honours (~24.8 days); a longer one fires after 1 ms instead. */
export const MAX_TIMER_MS = 2_147_483_647;

class SystemClock implements Clock {
  now(): number {
    return performance.now();
  }
  setTimer(ms: number, fn: () => void, options?: TimerOptions): Timer {
    return new SystemTimer(ms, fn, options?.keepAlive === true);
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }
  wallNow(): number {
    return Date.now();
  }
}

/**
 * How late a timer may fire and still run at once, ms. Node fires a timer up to about a
 * millisecond after it is due (its loop time has millisecond steps); later than this, the event
 * loop was held up.
 */
const LATE_MS = 2;

/**
 * A timer of the real clock. One that fires late — the event loop was blocked (a long synchronous
 * task, a GC pause, a stopped or throttled process) — runs its callback after the I/O the loop
 * already has (a `setImmediate`, which Node runs after the poll phase), as undici runs its own
 * connect timeout: after a stall Node runs every timer that fell due before it reads any socket,
 * so a response that arrived in time and sits unread would otherwise be failed by its call's
 * timeout, and charged to an endpoint that did nothing wrong. A timer on time runs at once (and
 * so under fake timers, as before).
 *
 * A delay longer than `setTimeout` can arm (a `timeout: "1000h"` meant as "practically never") is
 * waited out in steps of at most {@link MAX_TIMER_MS}: Node would otherwise fire it after 1 ms.
 */
class SystemTimer implements Timer {
  readonly #fn: () => void;
  readonly #keepAlive: boolean;
  /** When it falls due (`performance.now()` time). */
  readonly #dueAt: number;
  /** Longer than one `setTimeout` can wait: armed in steps. */
  readonly #long: boolean;
  #timeout: ReturnType<typeof setTimeout> | undefined;
  #immediate: ReturnType<typeof setImmediate> | undefined;

  constructor(ms: number, fn: () => void, keepAlive: boolean) {
    this.#fn = fn;
    this.#keepAlive = keepAlive;
    this.#dueAt = performance.now() + (ms > 0 ? ms : 0);
    this.#long = ms > MAX_TIMER_MS;
    this.#arm(Math.min(ms, MAX_TIMER_MS));
  }

  #arm(ms: number): void {
    const handle = setTimeout(timerDue, Math.max(0, ms), this);
    if (!this.#keepAlive) handle.unref();
    this.#timeout = handle;
  }

  /** The `setTimeout` fired: wait the rest of a long delay, run now, or run after the ready I/O. */
  due(): void {
    this.#timeout = undefined;
    const left = this.#dueAt - performance.now();
    if (this.#long && left > 1) {
      this.#arm(Math.min(left, MAX_TIMER_MS));
      return;
    }
    // Node fires a timer by its loop time, which may lag `performance.now()`: it can come a little
    // before `#dueAt`. Late by more than LATE_MS, the loop was held up.
    if (left >= -LATE_MS) {
      this.run();
      return;
    }
    // Never unref'd: Node's poll phase blocks as long as no ref'd immediate is pending, which
    // would hold an unref'd one back until some other I/O or timer woke the loop. A ref'd one
    // keeps the process no longer than this turn of the loop.
    this.#immediate = setImmediate(timerRun, this);
  }

  run(): void {
    this.#immediate = undefined;
    this.#fn();
  }

  cancel(): void {
    if (this.#timeout !== undefined) {
      clearTimeout(this.#timeout);
      this.#timeout = undefined;
    }
    if (this.#immediate !== undefined) {
      clearImmediate(this.#immediate);
      this.#immediate = undefined;
    }
  }
}

function timerDue(timer: SystemTimer): void {
  timer.due();
}

function timerRun(timer: SystemTimer): void {
  timer.run();
}

/** The real clock: `performance.now()` and `setTimeout`, unref'd unless asked to keep the process alive. */
export const systemClock: Clock = new SystemClock();

/**
 * Wall-clock milliseconds since the Unix epoch (for timestamps and dates, not for durations): the
 * given clock's `wallNow()` (a `VirtualClock`'s date moves with its virtual time), else `Date.now()`.
 */
export function wallClockMs(clock?: Clock): number {
  return clock?.wallNow?.() ?? Date.now();
}
