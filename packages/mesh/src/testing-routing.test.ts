import { seededRandom } from '@proxyless/core/testing';
import { describe, expect, it } from 'vitest';
import { testRoute } from './testing.js';

/** The example of docs/testing-policies.md. */
const docEntries = [
  { Kind: 'service-defaults', Name: 'web', Protocol: 'http' }, // routing needs an HTTP protocol
  { Kind: 'service-defaults', Name: 'admin', Protocol: 'http' },
  {
    Kind: 'service-resolver',
    Name: 'web',
    DefaultSubset: 'v1',
    Subsets: {
      v1: { Filter: 'Service.Meta.version == "v1"' },
      v2: { Filter: 'Service.Meta.version == "v2"' },
    },
  },
  {
    Kind: 'service-splitter',
    Name: 'web',
    Splits: [
      { Weight: 90, ServiceSubset: 'v1' },
      { Weight: 10, ServiceSubset: 'v2' },
    ],
  },
  {
    Kind: 'service-router',
    Name: 'web',
    Routes: [
      {
        Match: { HTTP: { Header: [{ Name: 'x-canary', Exact: '1' }] } },
        Destination: { ServiceSubset: 'v2' },
      },
      {
        Match: { HTTP: { PathPrefix: '/admin/' } },
        Destination: { Service: 'admin', PrefixRewrite: '/' },
      },
    ],
  },
];

/** The example, with a failover, a split's header edit, and a route's timeout and response edit. */
const entries = docEntries.map((e) => {
  if (e.Kind === 'service-resolver') return { ...e, Failover: { v1: { ServiceSubset: 'v2' } } };
  if (e.Kind === 'service-splitter')
    return {
      ...e,
      Splits: [
        { Weight: 90, ServiceSubset: 'v1' },
        { Weight: 10, ServiceSubset: 'v2', RequestHeaders: { Set: { 'x-routed': 'canary' } } },
      ],
    };
  if (e.Kind !== 'service-router' || !('Routes' in e)) return e;
  const [canary, admin] = e.Routes ?? [];
  const timed = {
    ServiceSubset: 'v2',
    RequestTimeout: '2s',
    ResponseHeaders: { Add: { 'x-route': 'canary-header' } },
  };
  return { ...e, Routes: [{ ...canary, Destination: timed }, admin] };
});

describe('testRoute: traffic management alone, no mesh, no sockets', () => {
  it('a header match: the route, its target, its timeout and response edits', () => {
    const r = testRoute(entries, 'http://web/orders', { headers: { 'X-Canary': '1' } });
    expect([r.routeIndex, r.splitIndex, r.target.subset, r.target.service]).toEqual([0, -1, 'v2', 'web']);
    expect(r.requestTimeoutMs).toBe(2_000);
    expect(r.responseHeaders?.add).toEqual([['x-route', 'canary-header']]);
    expect(r.headers).toEqual([
      ['X-Canary', '1'],
      ['host', 'web'],
    ]);
  });

  it('a path prefix to another service, rewritten; the query kept', () => {
    const r = testRoute(entries, 'http://web:8080/admin/users', { query: { page: 2 } });
    expect([r.routeIndex, r.target.service, r.target.subset]).toEqual([1, 'admin', '']);
    expect(r.path).toBe('/users?page=2');
    expect(r.headers).toEqual([['host', 'admin:8080']]);
  });

  it("the splitter's weights over many calls (seeded), with the split's header edits and failover order", () => {
    const random = seededRandom(42);
    const by: Record<string, number> = {};
    for (let i = 0; i < 2_000; i++) {
      const r = testRoute(entries, 'http://web/', {}, { random });
      by[r.target.subset] = (by[r.target.subset] ?? 0) + 1;
      if (r.target.subset === 'v2') expect(r.headers).toContainEqual(['x-routed', 'canary']);
      else expect(r.failover).toEqual(['v2.web.default.default.dc1']);
    }
    expect(by.v2).toBeGreaterThan(140);
    expect(by.v2).toBeLessThan(260);
    expect((by.v1 ?? 0) + (by.v2 ?? 0)).toBe(2_000);
  });

  it('bad entries are refused as createMesh refuses them, naming the entry and field', () => {
    const bad = [...entries.slice(0, 3), { Kind: 'service-splitter', Name: 'web', Splits: [{ Weight: -5 }] }];
    expect(() => testRoute(bad, 'http://web/')).toThrow(/service-splitter\/web.*Splits/s);
    try {
      testRoute(bad, 'http://web/');
    } catch (e) {
      expect((e as { code?: string }).code).toBe('MESH_CONFIG_INVALID');
    }
  });

  it('a service no entry shapes goes to itself', () => {
    const r = testRoute(entries, 'http://billing/x');
    expect([r.routeIndex, r.splitIndex, r.target.service, r.target.subset, r.path]).toEqual([
      -1,
      -1,
      'billing',
      '',
      '/x',
    ]);
  });

  it('docs/testing-policies.md: traffic management', () => {
    const entries = docEntries;
    expect(testRoute(entries, 'http://web/x', { headers: { 'x-canary': '1' } }).target.subset).toBe('v2');
    const admin = testRoute(entries, 'http://web/admin/users?page=2');
    expect([admin.target.service, admin.path]).toEqual(['admin', '/users?page=2']);

    const random = seededRandom(1);
    let canary = 0;
    for (let i = 0; i < 1000; i++)
      if (testRoute(entries, 'http://web/', {}, { random }).target.subset === 'v2') canary++;
    expect(canary).toBeGreaterThan(70); // about 10 %
    expect(canary).toBeLessThan(130);
  });

  it("a split's header edits come before the route's, as Envoy applies a weighted cluster's (probe29)", () => {
    const both = [
      { Kind: 'service-defaults', Name: 'web', Protocol: 'http' },
      {
        Kind: 'service-splitter',
        Name: 'web',
        Splits: [
          {
            Weight: 100,
            RequestHeaders: { Set: { 'x-conf': 'split' }, Add: { 'x-only-split': '1', 'x-kept': 's' } },
            ResponseHeaders: { Set: { 'x-rconf': 'split' } },
          },
        ],
      },
      {
        Kind: 'service-router',
        Name: 'web',
        Routes: [
          {
            Match: { HTTP: { PathPrefix: '/' } },
            Destination: {
              RequestHeaders: {
                Set: { 'x-conf': 'route' },
                Remove: ['x-only-split'],
                Add: { 'x-kept': 'r' },
              },
              ResponseHeaders: { Set: { 'x-rconf': 'route' } },
            },
          },
        ],
      },
    ];
    const r = testRoute(both, 'http://web/');
    // One value of a header both set (the route's); one the route removes is gone; adds accumulate.
    expect(r.headers).toEqual([
      ['host', 'web'],
      ['x-conf', 'route'],
      ['x-kept', 's'],
      ['x-kept', 'r'],
    ]);
    expect(r.responseHeaders?.set).toEqual([['x-rconf', 'route']]);
  });
});
