/**
 * The clocks {@link runPolicy} runs a call on, over the caller's `VirtualClock`, telling the
 * call's own pending timers from the rest.
 */
import { type Clock, sleepOn, type Timer, type TimerOptions } from '@proxyless/core';
import type { VirtualClock } from '@proxyless/core/testing';

/** A clock over `base` that tracks which of its timers are the call's own work (see {@link callWork}). */
export interface TrackingClock extends Clock {
  /** The earliest due time of a live timer counted as the call's work, or undefined when none is left. */
  readonly nextWorkAt: () => number | undefined;
}

/**
 * Clocks over `base` that record the call's own pending timers, so {@link runPolicy} can tell a call
 * that will settle (it waits on a timer of its own: a delay, a backoff, a deadline) from a hang
 * (only background timers are left: a breaker's reset timer and the like).
 * - `call`: the call context's clock; every timer on it is the call's work.
 * - `deps`: the policy stack's own clock; only its `keepAlive` timers are (the rest are background).
 * - `background`: nothing on it is (a scripted `'hang'` sleeps on it: waiting for an abort only).
 */
export function callWork(base: VirtualClock): {
  call: TrackingClock;
  deps: Clock;
  background: Clock;
  /** Timers pending on the clock that are not the call's nor its stages': the caller's own. */
  othersPending(): number;
} {
  // Pending timers by due time. Shared: a timer counted on any of the clocks is the call's work.
  const live = new Map<object, number>();
  // The stages' and the script's timers that are not work (a hang's sleep, a breaker's window).
  const background = new Map<object, number>();
  // A timer on `base`, listed in `into` until it fires or is cancelled.
  const tracked = (into: Map<object, number>, ms: number, fn: () => void): Timer => {
    const key = {};
    into.set(key, base.now() + Math.max(0, ms));
    const timer = base.setTimer(ms, () => {
      into.delete(key);
      fn();
    });
    return {
      cancel: () => {
        into.delete(key);
        timer.cancel();
      },
    };
  };
  const make = (counts: (options?: TimerOptions) => boolean): TrackingClock => {
    const clock: TrackingClock = {
      now: () => base.now(),
      wallNow: () => base.wallNow(),
      setTimer: (ms: number, fn: () => void, options?: TimerOptions): Timer =>
        tracked(counts(options) ? live : background, ms, fn),
      sleep: (ms: number, signal?: AbortSignal) => sleepOn(clock, ms, signal),
      nextWorkAt: () => {
        let at: number | undefined;
        for (const t of live.values()) if (at === undefined || t < at) at = t;
        return at;
      },
    };
    return clock;
  };
  return {
    call: make(() => true),
    deps: make((options) => options?.keepAlive === true),
    background: make(() => false),
    othersPending: () => base.pendingTimers - live.size - background.size,
  };
}
