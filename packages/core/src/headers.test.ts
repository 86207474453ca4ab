import { describe, expect, it } from 'vitest';
import { forEachHeader, hasHeader, headerRecord, withHeader } from './headers.js';

const notHeaders = { code: 'UND_ERR_INVALID_ARG', message: 'headers must be an object or an array' };

describe('withHeader', () => {
  it('keeps an own "__proto__" key of a record (JSON.parse gives one) as a header', () => {
    const parsed = JSON.parse('{"__proto__":"x","x-a":"1"}') as Record<string, string>;
    const out = withHeader(parsed, 'host', 'api') as Record<string, string>;
    expect(Object.keys(out)).toEqual(['__proto__', 'x-a', 'host']);
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(out, '__proto__')?.value).toBe('x');
  });

  it('refuses headers that are neither an object nor an array, as undici does', () => {
    for (const headers of ['x-a: 1', 5, true]) {
      expect(() => withHeader(headers as never, 'host', 'api')).toThrow(expect.objectContaining(notHeaders));
    }
  });

  it('adds to absent headers and to a flat array in their own form', () => {
    expect(withHeader(undefined, 'host', 'api')).toEqual({ host: 'api' });
    expect(withHeader(['Host', 'x', 'x-a', '1'], 'host', 'api')).toEqual(['x-a', '1', 'host', 'api']);
  });
});

describe('forEachHeader and hasHeader', () => {
  it('refuse a string or a number as headers instead of reading none', () => {
    expect(() => forEachHeader('x-a: 1' as never, () => undefined)).toThrow(
      expect.objectContaining(notHeaders),
    );
    expect(() => hasHeader(5 as never, 'host')).toThrow(expect.objectContaining(notHeaders));
  });

  it('hasHeader: an undefined value is no header (undici skips it), a null one is (sent empty)', () => {
    const absent = [
      { host: undefined },
      { Host: undefined, 'x-a': '1' },
      new Map([['host', undefined]]),
      ['HOST', undefined],
      [['host', undefined]][Symbol.iterator](),
      Object.create({ host: 'inherited' }) as object,
    ];
    for (const headers of absent) expect(hasHeader(headers as never, 'host')).toBe(false);
    const present = [{ host: null }, { Host: null }, ['host', null], { host: 'api' }, ['Host', 'api']];
    for (const headers of present) expect(hasHeader(headers as never, 'host')).toBe(true);
  });
});

describe('headerRecord', () => {
  it('reads headers named like Object.prototype members as headers', () => {
    const rec = headerRecord(JSON.parse('{"__proto__":"x","Constructor":"c","toString":"t"}'));
    expect(Object.getOwnPropertyDescriptor(rec, '__proto__')?.value).toBe('x');
    expect(rec.constructor).toBe('c');
    expect(rec.tostring).toBe('t');
    expect(Object.keys(rec)).toEqual(['__proto__', 'constructor', 'tostring']);
  });
});
