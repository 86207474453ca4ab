import { seededRandom } from '@proxyless/core/testing';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileRoutingConfig } from './compile.js';
import { applyHeaderOps, type RouteRequest, rewritePath, route, routeRequestOf } from './router.js';

const httpDefaults = (name: string) => ({ Kind: 'service-defaults', Name: name, Protocol: 'http' });
const versions = {
  Kind: 'service-resolver',
  Name: 'payments',
  DefaultSubset: 'v1',
  Subsets: {
    v1: { Filter: 'Service.Meta.version == "1"' },
    v2: { Filter: 'Service.Meta.version == "2"', OnlyPassing: true },
  },
};
const req = (path: string, headers: RouteRequest['headers'] = {}, method = 'GET'): RouteRequest => ({
  method,
  path,
  headers,
});
const rnd = seededRandom(7);

describe('route', () => {
  const config = compileRoutingConfig([
    httpDefaults('payments'),
    httpDefaults('admin'),
    versions,
    {
      Kind: 'service-router',
      Name: 'payments',
      Routes: [
        {
          Match: { HTTP: { Header: [{ Name: 'X-Canary', Exact: '1' }] } },
          Destination: { ServiceSubset: 'v2', ResponseHeaders: { Set: { 'x-served-by': 'v2' } } },
        },
        {
          Match: { HTTP: { PathPrefix: '/admin', Methods: ['get', 'POST'] } },
          Destination: {
            Service: 'admin',
            PrefixRewrite: '/',
            RequestTimeout: '2s',
            NumRetries: 3,
            RetryOn: ['5xx'],
          },
        },
        { Match: { HTTP: { PathExact: '/exact' } }, Destination: { ServiceSubset: 'v2' } },
        { Match: { HTTP: { PathRegex: '/items/[0-9]+' } }, Destination: { ServiceSubset: 'v2' } },
        {
          Match: {
            HTTP: {
              QueryParam: [{ Name: 'beta', Present: true }],
              Header: [{ Name: 'x-skip', Present: true, Invert: true }],
            },
          },
          Destination: {
            ServiceSubset: 'v2',
            RequestHeaders: { Add: { 'x-beta': 'yes' }, Remove: ['x-drop'] },
          },
        },
      ],
    },
    {
      Kind: 'service-splitter',
      Name: 'payments',
      Splits: [
        { Weight: 90, ServiceSubset: 'v1' },
        { Weight: 10, ServiceSubset: 'v2', RequestHeaders: { Set: { 'x-split': 'v2' } } },
      ],
    },
  ]);
  const chain = config.chain('payments');

  it('takes the first matching route: a header sends canaries to v2', () => {
    const d = route(chain, req('/anything', { 'x-canary': '1' }), rnd);
    expect(d.routeIndex).toBe(0);
    expect(d.target).toMatchObject({
      service: 'payments',
      subset: 'v2',
      id: 'v2.payments.default.default.dc1',
    });
    expect(d.responseHeaders?.set).toEqual([['x-served-by', 'v2']]);
    expect(route(chain, req('/anything', { 'x-canary': '2' }), rnd).routeIndex).not.toBe(0);
  });

  it('routes a path prefix and a method set to another service with rewrite, timeout and retries', () => {
    const d = route(chain, req('/admin/users?q=1', {}, 'post'), rnd);
    expect(d.routeIndex).toBe(1);
    expect(d.target).toMatchObject({ service: 'admin', subset: '' });
    expect(rewritePath(d, '/admin/users?q=1')).toBe('//users?q=1');
    expect(d.requestTimeoutMs).toBe(2000);
    expect(d.retry).toMatchObject({ numRetries: 3, retryOn: ['5xx'], retryOnConnectFailure: false });
    expect(route(chain, req('/admin', {}, 'DELETE'), rnd).routeIndex).not.toBe(1);
  });

  it('compares exact paths and regexes without the query string', () => {
    expect(route(chain, req('/exact'), rnd).routeIndex).toBe(2);
    expect(route(chain, req('/exact?x=1'), rnd).routeIndex).toBe(2);
    expect(route(chain, req('/exact/more'), rnd).routeIndex).not.toBe(2);
    expect(route(chain, req('/items/42?x'), rnd).routeIndex).toBe(3);
    expect(route(chain, req('/items/42a'), rnd).routeIndex).not.toBe(3);
  });

  it('matches query parameters and inverted presence, and merges header ops', () => {
    const d = route(chain, req('/q?beta'), rnd);
    expect(d.routeIndex).toBe(4);
    expect(route(chain, req('/q?beta', { 'x-skip': '1' }), rnd).routeIndex).toBe(5);
    const headers: Record<string, string | string[] | undefined> = { 'x-beta': 'no', 'x-drop': '1' };
    applyHeaderOps(headers, d.requestHeaders);
    expect(headers).toEqual({ 'x-beta': ['no', 'yes'] });
  });

  it('falls through to the splitter on Consul’s implicit catch-all route', () => {
    const d = route(chain, req('/other'), rnd);
    expect(d.routeIndex).toBe(5);
    expect(chain.routes[5]?.definition.Match?.HTTP?.PathPrefix).toBe('/');
    expect(d.splitIndex).toBeGreaterThanOrEqual(0);
  });

  it('without a router, a chain goes to its resolver with the default subset', () => {
    const c = compileRoutingConfig([versions]).chain('payments');
    expect(c.routes).toHaveLength(0);
    const d = route(c, req('/'), rnd);
    expect(d).toMatchObject({ routeIndex: -1, splitIndex: -1 });
    expect(d.target.subset).toBe('v1');
    expect(d.target.filter).toBe('Service.Meta.version == "1"');
    expect(d.resolver.connectTimeoutMs).toBe(5000);
  });

  it('gives a default chain to a service with no entries', () => {
    const c = config.chain('unknown');
    expect(c.isDefault).toBe(true);
    expect(route(c, req('/'), rnd).target.id).toBe('unknown.default.default.dc1');
  });

  it('returns a shared decision: no allocation per request', () => {
    const a = route(chain, req('/admin/x'), rnd);
    const b = route(chain, req('/admin/y'), rnd);
    expect(a).toBe(b);
    expect(Object.isFrozen(a)).toBe(true);
  });

  it('the observed split converges to the weights (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 10_000 }), { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        (raw, seed) => {
          // Turn arbitrary integers into weights in 0.01 steps summing to exactly 100.
          const total = raw.reduce((a, b) => a + b, 0) || 1;
          const units = raw.map((r) => Math.floor((r / total) * 10_000));
          units[0]! += 10_000 - units.reduce((a, b) => a + b, 0);
          const subsets = Object.fromEntries(
            units.map((_, i) => [`s${i}`, { Filter: `Service.Meta.s == "${i}"` }]),
          );
          const c = compileRoutingConfig([
            httpDefaults('svc'),
            { Kind: 'service-resolver', Name: 'svc', Subsets: subsets },
            {
              Kind: 'service-splitter',
              Name: 'svc',
              Splits: units.map((u, i) => ({ Weight: u / 100, ServiceSubset: `s${i}` })),
            },
          ]).chain('svc');
          const random = seededRandom(seed);
          const n = 20_000;
          const counts = new Array<number>(units.length).fill(0);
          for (let i = 0; i < n; i++) counts[route(c, req('/'), random).splitIndex]! += 1;
          // 5 standard deviations of a binomial share, so the test is not flaky.
          return units.every((u, i) => {
            const p = u / 10_000;
            return Math.abs(counts[i]! / n - p) <= 5 * Math.sqrt((p * (1 - p)) / n) + 1e-9;
          });
        },
      ),
      // A fixed seed: the same 40 cases every run (a 5-sigma bound can still miss once in ~10^4 runs).
      { numRuns: 40, seed: 20261130 },
    );
  });

  it('reads undici header forms into lower-case names', () => {
    const lower = { 'x-canary': '1' };
    expect(routeRequestOf('GET', '/', lower).headers).toBe(lower);
    expect(routeRequestOf('GET', '/', { 'X-Canary': '1', 'x-canary': '2' }).headers).toEqual({
      'x-canary': ['1', '2'],
    });
    expect(routeRequestOf('GET', '/', ['X-Canary', '1', 'Accept', 'a']).headers).toEqual({
      'x-canary': '1',
      accept: 'a',
    });
    expect(routeRequestOf('GET', '/', new Headers({ 'X-Canary': '1' })).headers).toEqual({ 'x-canary': '1' });
    expect(routeRequestOf('GET', '/', null).headers).toEqual({});
    expect(route(chain, routeRequestOf('GET', '/x', ['X-Canary', '1']), rnd).routeIndex).toBe(0);
  });
});

describe('route: the query string, as Envoy reads it', () => {
  const chain = compileRoutingConfig([
    httpDefaults('a'),
    httpDefaults('b'),
    {
      Kind: 'service-router',
      Name: 'a',
      Routes: [
        { Match: { HTTP: { PathPrefix: '/s?x=' } }, Destination: { Service: 'b' } },
        { Match: { HTTP: { PathExact: '/e?x=1' } }, Destination: { Service: 'b' } },
        { Match: { HTTP: { PathRegex: '/r\\?x=.*' } }, Destination: { Service: 'b' } },
        { Match: { HTTP: { QueryParam: [{ Name: 'q', Exact: 'a%20b' }] } }, Destination: { Service: 'b' } },
        { Match: { HTTP: { QueryParam: [{ Name: 'p', Regex: 'x y' }] } }, Destination: { Service: 'b' } },
        { Match: { HTTP: { QueryParam: [{ Name: 'n%21', Present: true }] } }, Destination: { Service: 'b' } },
        // A parameter without `=` has the empty value.
        { Match: { HTTP: { QueryParam: [{ Name: 'e', Regex: '.{0}' }] } }, Destination: { Service: 'b' } },
      ],
    },
  ]).chain('a');
  const at = (path: string) => route(chain, req(path), rnd).routeIndex;

  it('matches PathPrefix against the whole target, query string included (Envoy prefix)', () => {
    expect(at('/s?x=1')).toBe(0);
    expect(at('/s?x=')).toBe(0);
    expect(at('/s?y=1')).toBe(7);
  });

  it('compares PathExact and PathRegex without the query string (Envoy path, safe_regex)', () => {
    expect(at('/e?x=1')).toBe(7);
    expect(at('/r?x=1')).toBe(7);
  });

  it('compares query parameters raw: no percent-decoding, + is not a space, first value', () => {
    const paths = [
      '/?q=a%20b',
      '/?q=a+b',
      '/?q=a b',
      '/?q=x&q=a%20b',
      '/?q=a%20b&q=x',
      '/?p=x+y',
      '/?p=x%20y',
      '/?p=x y',
      '/?n%21',
      '/?n!',
      '/?e',
      '/?e=',
      '/?e=1',
    ];
    expect(paths.map(at)).toEqual([3, 7, 7, 7, 3, 7, 7, 4, 5, 7, 6, 6, 7]);
  });
});
