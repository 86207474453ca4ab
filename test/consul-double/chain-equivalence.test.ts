/**
 * Differential test: random sets of router/splitter/resolver entries compiled by the Consul
 * double (then read back with `chainFromConsul`) and by the mesh's own compiler must route every
 * request identically, or both must refuse the set.
 */
import { seededRandom } from '@proxyless/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { RouteDecision } from '../../packages/mesh/src/routing/chain.js';
import { compileRoutingConfig } from '../../packages/mesh/src/routing/compile.js';
import { chainFromConsul } from '../../packages/mesh/src/routing/consul-chain.js';
import { type RouteRequest, route } from '../../packages/mesh/src/routing/router.js';
import { ChainError, compileDiscoveryChain } from './discovery-chain.js';

type Entry = Record<string, unknown>;

const SUBSETS = {
  v1: { Filter: 'Service.Meta.version == "1"' },
  v2: { Filter: 'Service.Meta.version == "2"', OnlyPassing: true },
};
const DESTS = [
  {},
  { ServiceSubset: 'v1' },
  { ServiceSubset: 'v2' },
  { Service: 'a' },
  { Service: 'a', ServiceSubset: 'v2' },
  { Service: 'b' },
  // Not defined: both compilers must refuse the set.
  { ServiceSubset: 'v3' },
];
const MATCHES = [
  { PathPrefix: '/v2' },
  { PathExact: '/exact', Methods: ['GET'] },
  { PathRegex: '/items/[0-9]+' },
  { Header: [{ Name: 'x-canary', Exact: '1' }] },
  {
    Header: [{ Name: 'x-debug', Present: true, Invert: true }],
    QueryParam: [{ Name: 'beta', Present: true }],
  },
  {},
];
const REQUESTS: RouteRequest[] = [
  { method: 'GET', path: '/', headers: {} },
  { method: 'POST', path: '/v2/x', headers: { 'x-canary': '1' } },
  { method: 'GET', path: '/exact?x', headers: { 'x-debug': '1' } },
  { method: 'GET', path: '/items/7?beta', headers: {} },
];

const weights = (n: number) =>
  fc.array(fc.integer({ min: 0, max: 100 }), { minLength: n, maxLength: n }).map((raw) => {
    const total = raw.reduce((x, y) => x + y, 0) || 1;
    const units = raw.map((r) => Math.floor((r / total) * 10_000));
    units[0]! += 10_000 - units.reduce((x, y) => x + y, 0);
    return units.map((u) => u / 100);
  });

const entrySet = fc
  .record({
    routes: fc.array(
      fc.record({ m: fc.nat(MATCHES.length - 1), d: fc.nat(DESTS.length - 1), t: fc.boolean() }),
      { maxLength: 4 },
    ),
    hasRouter: fc.boolean(),
    webSplit: fc.option(fc.shuffledSubarray([0, 1, 2, 3, 5], { minLength: 1 }), { nil: undefined }),
    aSplit: fc.boolean(),
    webDefault: fc.constantFrom(undefined, 'v1', 'v2'),
    aDefault: fc.constantFrom(undefined, 'v1'),
    bRedirect: fc.boolean(),
    failover: fc.constantFrom('none', 'service', 'targets', 'datacenters'),
    // a fails back over to web: with web's 'service' failover the two fail over to each other.
    aFailover: fc.boolean(),
    timeouts: fc.boolean(),
  })
  .chain((g) => fc.record({ g: fc.constant(g), w1: weights(g.webSplit?.length ?? 1), w2: weights(2) }))
  .map(({ g, w1, w2 }): Entry[] => {
    const out: Entry[] = ['web', 'a', 'b'].map((n) => ({
      Kind: 'service-defaults',
      Name: n,
      Protocol: 'http',
    }));
    out.push({
      Kind: 'service-resolver',
      Name: 'web',
      Subsets: SUBSETS,
      ...(g.webDefault ? { DefaultSubset: g.webDefault } : {}),
      ...(g.timeouts ? { ConnectTimeout: '2s', RequestTimeout: '7s' } : {}),
      ...(g.failover === 'service' ? { Failover: { '*': { Service: 'a' } } } : {}),
      ...(g.failover === 'targets'
        ? { Failover: { v1: { Targets: [{ ServiceSubset: 'v2' }, { Service: 'b' }] } } }
        : {}),
      ...(g.failover === 'datacenters' ? { Failover: { '*': { Datacenters: ['dc2', 'dc3'] } } } : {}),
      LoadBalancer: { Policy: 'least_request', LeastRequestConfig: { ChoiceCount: 3 } },
    });
    out.push({
      Kind: 'service-resolver',
      Name: 'a',
      Subsets: SUBSETS,
      ...(g.aDefault ? { DefaultSubset: g.aDefault } : {}),
      ...(g.aFailover ? { Failover: { '*': { Service: 'web' } } } : {}),
    });
    if (g.bRedirect)
      out.push({ Kind: 'service-resolver', Name: 'b', Redirect: { Service: 'a', ServiceSubset: 'v2' } });
    if (g.webSplit) {
      const pool = [
        {},
        { ServiceSubset: 'v1' },
        { ServiceSubset: 'v2' },
        { Service: 'a' },
        {},
        { Service: 'b' },
      ];
      out.push({
        Kind: 'service-splitter',
        Name: 'web',
        Splits: g.webSplit.map((i, k) => ({
          Weight: w1[k],
          ...pool[i],
          RequestHeaders: { Set: { 'x-split': String(k) }, Remove: ['x-a'] },
          ResponseHeaders: { Set: { 'x-resp': `web${k}` } },
        })),
      });
    }
    if (g.aSplit) {
      out.push({
        Kind: 'service-splitter',
        Name: 'a',
        Splits: [
          // Header edits on both levels: flattening merges the outer split's into these.
          {
            Weight: w2[0],
            ServiceSubset: 'v1',
            RequestHeaders: { Set: { 'x-split': 'a0' }, Add: { 'x-a': '1' }, Remove: ['x-b'] },
            ResponseHeaders: { Set: { 'x-resp': 'a0', 'x-a': '1' } },
          },
          { Weight: w2[1], Service: 'b' },
        ],
      });
    }
    if (g.hasRouter) {
      out.push({
        Kind: 'service-router',
        Name: 'web',
        Routes: g.routes.map((r) => ({
          Match: { HTTP: MATCHES[r.m] },
          Destination: {
            ...DESTS[r.d],
            ...(r.t ? { RequestTimeout: '3s', NumRetries: 2, RetryOn: ['reset'] } : {}),
          },
        })),
      });
    }
    return out;
  });

function view(d: RouteDecision): unknown {
  return [
    d.routeIndex,
    d.splitIndex,
    d.target.id,
    d.target.filter,
    d.target.onlyPassing,
    d.resolver.failover.map((t) => t.id),
    d.resolver.connectTimeoutMs,
    d.resolver.loadBalancer,
    d.requestTimeoutMs,
    d.retry,
    d.requestHeaders,
    d.responseHeaders,
  ];
}

const stats = { runs: 0, accepted: 0 };

describe('discovery chain: the double and the mesh compiler agree', () => {
  it('routes random entry sets identically through both paths', () => {
    fc.assert(
      fc.property(entrySet, (entries) => {
        let ours: ReturnType<typeof compileRoutingConfig> | undefined;
        stats.runs++;
        try {
          ours = compileRoutingConfig(entries);
          stats.accepted++;
        } catch {
          ours = undefined;
        }
        const lookup = {
          get: (kind: string, name: string) => entries.find((e) => e.Kind === kind && e.Name === name),
        };
        const compiled = new Map<string, Record<string, unknown>>();
        for (const service of ['web', 'a', 'b']) {
          try {
            compiled.set(
              service,
              compileDiscoveryChain(lookup, service, { datacenter: 'dc1', clusterId: 'c' }),
            );
          } catch (error) {
            if (!(error instanceof ChainError)) throw error;
          }
        }
        // The mesh refuses the whole set exactly when Consul would refuse one of its chains.
        expect(compiled.size === 3).toBe(ours !== undefined);
        if (!ours) return;
        for (const [service, consul] of compiled) {
          const fromConsul = chainFromConsul({ Chain: consul });
          const mine = ours.chain(service);
          // Flattened weights are rounded to 0.01 on both paths.
          const weightsOf = (c: typeof mine) =>
            [c.start, ...c.routes.map((r) => r.next)].map((n) =>
              n.type === 'splitter' ? n.splits.map((x) => x.weight) : [],
            );
          expect(weightsOf(fromConsul)).toEqual(weightsOf(mine));
          for (const req of REQUESTS) {
            const r1 = seededRandom(11);
            const r2 = seededRandom(11);
            for (let i = 0; i < 20; i++)
              expect(view(route(fromConsul, req, r1))).toEqual(view(route(mine, req, r2)));
          }
        }
      }),
      { numRuns: 150 },
    );
    // Both outcomes were exercised.
    expect(stats.accepted).toBeGreaterThan(stats.runs / 4);
    expect(stats.accepted).toBeLessThan(stats.runs);
  });
});
