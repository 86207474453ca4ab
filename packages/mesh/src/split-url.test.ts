import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { splitUrl } from './naming.js';

const host = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z0-9]{1,5}){0,2}$/);
const port = fc.oneof(
  fc.constant(''),
  fc.integer({ min: 1, max: 70000 }).map((p) => `:${p}`),
);
const pathChars = fc.string({
  unit: fc.constantFrom(...'abcXYZ019-._~!$&()*+,;=:@/?#%" <>\'é\\'.split('')),
  maxLength: 24,
});

describe('splitUrl (the mesh.request fast path)', () => {
  it('agrees with the WHATWG URL parser whenever it answers', () => {
    fc.assert(
      fc.property(fc.constantFrom('http://', 'https://'), host, port, pathChars, (scheme, h, p, rest) => {
        const url = `${scheme}${h}${p}${rest.startsWith('/') || rest.startsWith('?') || rest.startsWith('#') || rest === '' ? rest : `/${rest}`}`;
        const fast = splitUrl(url);
        if (fast === undefined) return;
        const u = new URL(url);
        expect(fast).toEqual({
          origin: u.origin,
          hostname: u.hostname,
          pathname: u.pathname,
          search: u.search,
        });
      }),
      { numRuns: 2000 },
    );
  });

  it('leaves punycode labels to the WHATWG parser, which refuses a bad one (`http://xn--a`)', () => {
    expect(() => new URL('http://xn--a/')).toThrow();
    expect(splitUrl('http://xn--a/')).toBeUndefined();
    expect(splitUrl('http://api.xn--a/x')).toBeUndefined();
  });

  it('answers for the common shapes', () => {
    expect(splitUrl('http://payments/charges?id=1')).toEqual({
      origin: 'http://payments',
      hostname: 'payments',
      pathname: '/charges',
      search: '?id=1',
    });
    expect(splitUrl('http://payments:8080')?.pathname).toBe('/');
    expect(splitUrl('http://Payments/')).toBeUndefined();
    expect(splitUrl('http://[::1]:80/')).toBeUndefined();
  });
});
