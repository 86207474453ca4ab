import { describe, expect, it } from 'vitest';
import { withHeaders } from './headers.js';

const TP = ['traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'];

describe('withHeaders', () => {
  it('makes a record when the caller gave none', () => {
    expect(withHeaders(undefined, TP)).toEqual({ traceparent: TP[1] });
    expect(withHeaders(null, TP)).toEqual({ traceparent: TP[1] });
  });

  it('keeps a header named __proto__ (JSON.parse gives such own keys) as an own key', () => {
    const h = JSON.parse('{"__proto__":"x","X-A":"1"}') as Record<string, string>;
    const out = withHeaders(h, TP) as Record<string, string>;
    expect(Object.keys(out)).toEqual(['__proto__', 'X-A', 'traceparent']);
    expect(Object.getOwnPropertyDescriptor(out, '__proto__')?.value).toBe('x');
  });

  it('returns the caller value itself when there is nothing to add', () => {
    const h = { 'X-A': '1' };
    expect(withHeaders(h, [])).toBe(h);
  });

  it('adds to a record, keeping the caller names and case, replacing an old traceparent', () => {
    const h = { 'X-Request-Id': 'r1', TraceParent: 'old' };
    const out = withHeaders(h, TP);
    expect(out).toEqual({ 'X-Request-Id': 'r1', traceparent: TP[1] });
    expect(h).toEqual({ 'X-Request-Id': 'r1', TraceParent: 'old' });
  });

  it('adds to a flat array without re-parsing it', () => {
    const h = ['X-Request-Id', 'r1', 'Accept', 'a', 'TRACEPARENT', 'old'];
    const out = withHeaders(h, TP);
    expect(out).toEqual(['X-Request-Id', 'r1', 'Accept', 'a', ...TP]);
    expect(h).toHaveLength(6);
  });

  it('adds to an iterable of pairs (a Map, a generator) and keeps multi-values', () => {
    const m = new Map<string, string | string[]>([
      ['X-Multi', ['a', 'b']],
      ['Tracestate', 'x=1'],
    ]);
    const out = withHeaders(m, [...TP, 'tracestate', 'y=2']) as Iterable<[string, unknown]>;
    expect(Array.isArray(out)).toBe(false);
    expect([...out]).toEqual([
      ['X-Multi', ['a', 'b']],
      ['traceparent', TP[1]],
      ['tracestate', 'y=2'],
    ]);
    function* gen(): Generator<[string, string]> {
      yield ['X-G', '1'];
    }
    expect([...(withHeaders(gen(), TP) as Iterable<unknown>)]).toEqual([
      ['X-G', '1'],
      ['traceparent', TP[1]],
    ]);
  });

  it('treats a record as a record even when Object.prototype has an iterator (undici’s rule)', () => {
    const proto = Object.prototype as { [Symbol.iterator]?: unknown };
    proto[Symbol.iterator] = function* () {};
    try {
      expect(withHeaders({ 'X-A': '1' }, TP)).toEqual({ 'X-A': '1', traceparent: TP[1] });
    } finally {
      delete proto[Symbol.iterator];
    }
  });
});
