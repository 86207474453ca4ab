import { createEndpoint, createEndpointSet, type Resolver, type ResolverUpdate } from '@proxyless/core';
import { seededRandom, VirtualClock } from '@proxyless/core/testing';
import { describe, expect, it } from 'vitest';
import { compileRoutingConfig, route, routeRequestOf } from './routing/index.js';
import { RoutingStage } from './routing-stage.js';
import { isLocalWholeService, routeOverrides, subsetResolver } from './routing-targets.js';

const entries = [
  { Kind: 'service-defaults', Name: 'web', Protocol: 'http' },
  {
    Kind: 'service-resolver',
    Name: 'web',
    Subsets: { v2: { Filter: 'Service.Meta.version == "v2"', OnlyPassing: true } },
  },
  {
    Kind: 'service-router',
    Name: 'web',
    Routes: [
      { Match: { HTTP: { PathPrefix: '/v2' } }, Destination: { ServiceSubset: 'v2' } },
      {
        Match: { HTTP: { PathPrefix: '/slow' } },
        Destination: {
          RequestTimeout: '2s',
          NumRetries: 3,
          RetryOnConnectFailure: true,
          RetryOn: ['5xx', 'cancelled'],
          RetryOnStatusCodes: [429],
        },
      },
    ],
  },
];

describe('route overrides', () => {
  const chain = compileRoutingConfig(entries).chain('web');
  const random = seededRandom(1);

  it('maps RequestTimeout / NumRetries / RetryOn… onto the resilience keys (gRPC-only conditions dropped)', () => {
    const d = route(chain, routeRequestOf('GET', '/slow/x', {}), random);
    expect(routeOverrides(d)?.patch).toEqual({
      timeout: 2000,
      retry: {
        maxRetries: 3,
        retryOn: ['5xx', 'connect-failure', 'retriable-status-codes'],
        retriableStatusCodes: [429],
      },
    });
    // Memoised per decision: the hot path computes it once per config version.
    expect(routeOverrides(d)).toBe(routeOverrides(d));
  });

  it('is undefined for a route without settings', () => {
    expect(routeOverrides(route(chain, routeRequestOf('GET', '/', {}), random))).toBeUndefined();
  });
});

describe('RoutingStage chains', () => {
  it('keeps only non-default chains, the later source winning per service', () => {
    const stage = new RoutingStage({
      random: seededRandom(1),
      clock: new VirtualClock(),
      logicalHost: true,
      targetDestination: () => {
        throw new Error('unused');
      },
      send: () => true,
    });
    stage.setConfig('file', compileRoutingConfig(entries));
    expect([...stage.chains.keys()]).toEqual(['web']);
    const fromConsul = compileRoutingConfig([
      { Kind: 'service-defaults', Name: 'web', Protocol: 'http' },
      { Kind: 'service-router', Name: 'web', Routes: [{ Match: { HTTP: { PathPrefix: '/c' } } }] },
    ]).chain('web');
    stage.setChain('consul', 'web', fromConsul);
    expect(stage.chains.get('web')).toBe(fromConsul);
    stage.setChain('consul', 'web', undefined);
    expect(stage.chains.get('web')?.routes.length).toBe(3);
    stage.setConfig('file', undefined);
    expect(stage.chains.size).toBe(0);
  });
});

describe('subsetResolver', () => {
  it('narrows the inner resolver’s endpoints to the subset (filter, OnlyPassing)', async () => {
    const chain = compileRoutingConfig(entries).chain('web');
    const v2 = [...chain.targets.values()].find((t) => t.subset === 'v2')!;
    const endpoints = [
      createEndpoint({ address: '10.0.0.1', port: 80, metadata: { version: 'v1' } }),
      createEndpoint({ address: '10.0.0.2', port: 80, metadata: { version: 'v2' } }),
      createEndpoint({ address: '10.0.0.3', port: 80, metadata: { version: 'v2' }, health: 'warning' }),
    ];
    const set = createEndpointSet({ service: 'web', version: 1, endpoints, source: 'test', updatedAt: 0 });
    const inner: Resolver = {
      name: 'test',
      match: (h) => h,
      watch: (_s, listener) => {
        queueMicrotask(() => listener({ kind: 'endpoints', set }));
        return { dispose: () => undefined };
      },
      close: () => Promise.resolve(),
    };
    const update = await new Promise<ResolverUpdate>((resolve) => {
      subsetResolver(inner, v2).watch('web', resolve);
    });
    expect(update.kind === 'endpoints' && update.set.endpoints.map((e) => e.address)).toEqual(['10.0.0.2']);
  });
});

describe('isLocalWholeService', () => {
  const chainOf = (extra: unknown[]) =>
    compileRoutingConfig([
      { Kind: 'service-defaults', Name: 'web', Protocol: 'http' },
      { Kind: 'service-defaults', Name: 'admin', Protocol: 'http' },
      {
        Kind: 'service-resolver',
        Name: 'web',
        Subsets: { v2: { Filter: 'Service.Meta.version == "v2"' } },
        Failover: { '*': { Datacenters: ['dc2'] } },
      },
      {
        Kind: 'service-router',
        Name: 'web',
        Routes: [
          { Match: { HTTP: { PathPrefix: '/admin/' } }, Destination: { Service: 'admin' } },
          { Match: { HTTP: { PathPrefix: '/v2/' } }, Destination: { ServiceSubset: 'v2' } },
        ],
      },
      ...extra,
    ]).chain('web');

  it('is the whole service in the chain’s own place, with no resolver setting on its endpoints', () => {
    const chain = chainOf([]);
    const target = (id: string) => {
      const t = chain.targets.get(id);
      if (t === undefined) throw new Error(`no target ${id} in ${[...chain.targets.keys()]}`);
      return t;
    };
    expect(isLocalWholeService(chain, target('web.default.default.dc1'), undefined)).toBe(true);
    expect(isLocalWholeService(chain, target('admin.default.default.dc1'), undefined)).toBe(true);
    // A subset, another datacenter, or a resolver's LoadBalancer: a cluster of its own.
    expect(isLocalWholeService(chain, target('v2.web.default.default.dc1'), undefined)).toBe(false);
    expect(isLocalWholeService(chain, target('web.default.default.dc2'), undefined)).toBe(false);
    expect(isLocalWholeService(chain, target('admin.default.default.dc1'), { policy: 'random' })).toBe(false);
  });

  it('is not a whole service whose resolver keeps only passing endpoints', () => {
    const chain = chainOf([
      {
        Kind: 'service-resolver',
        Name: 'admin',
        DefaultSubset: 'all',
        Subsets: { all: { Filter: '', OnlyPassing: true } },
      },
    ]);
    const ids = [...chain.targets.keys()];
    expect(ids).toContain('all.admin.default.default.dc1');
    for (const id of ids.filter((x) => x.includes('admin')))
      expect(isLocalWholeService(chain, chain.targets.get(id)!, undefined), id).toBe(false);
  });
});
