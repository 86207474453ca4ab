import { afterEach, describe, expect, it, vi } from 'vitest';
import { MAX_TIMER_MS, systemClock, wallClockMs } from './clock.js';
import { VirtualClock } from './virtual-clock.js';

describe('systemClock timers', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('waits out a delay longer than setTimeout can arm, instead of firing after 1 ms', () => {
    vi.useFakeTimers({
      toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate', 'performance'],
    });
    const fired = vi.fn();
    const ms = 1000 * 3_600_000; // "1000h": past Node's ~24.8-day limit
    systemClock.setTimer(ms, fired);
    vi.advanceTimersByTime(1000);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(MAX_TIMER_MS);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(ms - MAX_TIMER_MS - 1000 - 1);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fired).toHaveBeenCalledTimes(1);
  });

  it('cancels a long timer in any of its steps', () => {
    vi.useFakeTimers({
      toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate', 'performance'],
    });
    const fired = vi.fn();
    const timer = systemClock.setTimer(3 * MAX_TIMER_MS, fired);
    vi.advanceTimersByTime(MAX_TIMER_MS + 5);
    timer.cancel();
    vi.advanceTimersByTime(3 * MAX_TIMER_MS);
    expect(fired).not.toHaveBeenCalled();
  });

  // On time, a timer runs at once (only a late one waits for the I/O of its turn): fake timers
  // advanced by exactly the delay fire it, as they fire `setTimeout`.
  it('fires an ordinary delay once, at its time', () => {
    vi.useFakeTimers({
      toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate', 'performance'],
    });
    const fired = vi.fn();
    systemClock.setTimer(250, fired);
    vi.advanceTimersByTime(249);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fired).toHaveBeenCalledTimes(1);
  });
  // A late timer against Node's event-loop phases (I/O first): test/integration/mesh/timers-after-io.test.ts.
});

describe('wall-clock readings', () => {
  it('a VirtualClock reads a virtual date that moves with its time, never the real one', async () => {
    const clock = new VirtualClock(0, { wall: Date.UTC(2015, 9, 21, 7, 28) });
    expect(clock.wallNow()).toBe(Date.UTC(2015, 9, 21, 7, 28));
    await clock.advance(5000);
    expect(clock.wallNow()).toBe(Date.UTC(2015, 9, 21, 7, 28, 5));
    expect(wallClockMs(clock)).toBe(clock.wallNow());
    clock.setWallTime(Date.UTC(2030, 0, 1));
    expect(clock.wallNow()).toBe(Date.UTC(2030, 0, 1));
    expect(clock.now()).toBe(5000);
    // Without the option the date starts at `start`.
    expect(new VirtualClock(1234).wallNow()).toBe(1234);
  });

  it('falls back to the real date for a clock without wallNow, and for none', () => {
    const before = Date.now();
    const custom = { now: () => 0, setTimer: systemClock.setTimer, sleep: systemClock.sleep };
    expect(wallClockMs(custom)).toBeGreaterThanOrEqual(before);
    expect(wallClockMs()).toBeGreaterThanOrEqual(before);
    expect(systemClock.wallNow!()).toBeGreaterThanOrEqual(before);
  });
});
