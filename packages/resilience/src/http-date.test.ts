import {
  recordingObserver,
  scriptedUpstream,
  seededRandom,
  testContext,
  VirtualClock,
} from '@proxyless/core/testing';
import { describe, expect, it } from 'vitest';
import { parseHttpDate } from './http-date.js';
import { createRetryFilter, parseRetryAfter } from './retry.js';
import { withPolicies } from './stack.js';

const now = Date.parse('2026-01-01T00:00:00Z');
const nov6 = Date.UTC(1994, 10, 6, 8, 49, 37);

describe('parseHttpDate: the three forms of RFC 9110 §5.6.7, nothing else', () => {
  it('reads IMF-fixdate, rfc850 and asctime', () => {
    expect(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT', now)).toBe(nov6);
    expect(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT', now)).toBe(nov6);
    expect(parseHttpDate('Sun Nov  6 08:49:37 1994', now)).toBe(nov6);
    expect(parseHttpDate('Thu, 01 Jan 2026 00:00:03 GMT', now)).toBe(now + 3000);
  });

  it('reads a two-digit rfc850 year more than 50 years ahead as the past century', () => {
    expect(parseHttpDate('Thursday, 01-Jan-76 00:00:00 GMT', now)).toBe(Date.UTC(2076, 0, 1));
    expect(parseHttpDate('Friday, 01-Jan-77 00:00:00 GMT', now)).toBe(Date.UTC(1977, 0, 1));
  });

  it('refuses what Date.parse would read as a date', () => {
    for (const v of ['1.5', '-1', '2', '1e3', '2026-01-01T00:00:05Z', 'Jan 1 2026', 'soon', '']) {
      expect([v, parseHttpDate(v, now)]).toEqual([v, undefined]);
    }
    // Wrong case, zone, day of month or layout.
    for (const v of [
      'thu, 01 Jan 2026 00:00:03 GMT',
      'Thu, 01 Jan 2026 00:00:03 UTC',
      'Sat, 31 Feb 2026 00:00:00 GMT',
      'Thu, 1 Jan 2026 00:00:03 GMT',
      'Thu, 01 Jan 2026 24:00:00 GMT',
    ]) {
      expect([v, parseHttpDate(v, now)]).toEqual([v, undefined]);
    }
  });
});

describe('parseRetryAfter: delay-seconds or an HTTP-date, anything else ignored', () => {
  it('reads delay-seconds and dates; ignores fractions, negatives and other text', () => {
    expect(parseRetryAfter({ 'retry-after': '2' }, now)).toBe(2000);
    expect(parseRetryAfter({ 'retry-after': ' 0 ' }, now)).toBe(0);
    expect(parseRetryAfter({ 'retry-after': 'Thu, 01 Jan 2026 00:00:03 GMT' }, now)).toBe(3000);
    expect(parseRetryAfter({ 'retry-after': 'Wed, 31 Dec 2025 00:00:00 GMT' }, now)).toBe(0);
    for (const v of ['1.5', '-1', '+1', '1s', '0x10', 'garbage']) {
      expect([v, parseRetryAfter({ 'retry-after': v }, now)]).toEqual([v, undefined]);
    }
  });

  it('an invalid Retry-After (1.5, -1) leaves the normal backoff in force', async () => {
    for (const value of ['1.5', '-1']) {
      const clock = new VirtualClock(0, { wall: now });
      const observer = recordingObserver();
      const upstream = scriptedUpstream([{ status: 503, headers: { 'retry-after': value } }, 200]);
      const p = withPolicies(
        [createRetryFilter({ backoff: { baseMs: 100, maxMs: 100 } })],
        upstream,
      )(testContext({ clock, observer, random: seededRandom(3) }));
      await clock.runAll();
      expect((await p).status).toBe(200);
      const delay = observer.events.find((e) => e.type === 'retry')!.delayMs!;
      expect([value, delay]).toEqual([value, Math.floor(seededRandom(3).next() * 100)]);
      expect(delay).toBeGreaterThan(0);
      expect(upstream.calls[1]!.at).toBe(delay);
    }
  });
});
