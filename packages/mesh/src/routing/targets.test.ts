import { createEndpoint, type Endpoint, MeshError } from '@proxyless/core';
import { seededRandom } from '@proxyless/core/testing';
import { describe, expect, it } from 'vitest';
import { compileRoutingConfig } from './compile.js';
import { chainFromConsul } from './consul-chain.js';
import { entriesFromEtcd, etcdConfigKey } from './etcd-entries.js';
import { route } from './router.js';
import { filterSubset, selectTarget, subsetOf } from './targets.js';

const ep = (id: string, version: string, health: Endpoint['health'] = 'passing') =>
  createEndpoint({ id, address: '10.0.0.1', port: 80, metadata: { version }, health });

const config = compileRoutingConfig([
  {
    Kind: 'service-resolver',
    Name: 'db',
    DefaultSubset: 'v1',
    Subsets: {
      v1: { Filter: 'Service.Meta.version == "1"' },
      v2: { Filter: 'Service.Meta.version == "2"', OnlyPassing: true },
    },
    Failover: { v1: { Targets: [{ ServiceSubset: 'v2' }, { Service: 'db-backup' }] } },
  },
]);
const decision = route(config.chain('db'), { method: 'GET', path: '/', headers: {} }, seededRandom(1));

describe('filterSubset', () => {
  it('keeps the subset’s endpoints, drops critical ones, and warning ones with OnlyPassing', () => {
    const eps = [
      ep('a', '1'),
      ep('b', '1', 'warning'),
      ep('c', '1', 'critical'),
      ep('d', '2'),
      ep('e', '2', 'warning'),
    ];
    const [v2] = decision.resolver.failover;
    expect(filterSubset(eps, decision.target).map((e) => e.id)).toEqual(['a', 'b']);
    expect(filterSubset(eps, v2!).map((e) => e.id)).toEqual(['d']);
    expect(subsetOf(eps, decision.target)).toBe(subsetOf(eps, decision.target));
  });
});

describe('selectTarget', () => {
  it('uses the primary target while it has endpoints', () => {
    const s = selectTarget(decision, () => [ep('a', '1'), ep('d', '2')]);
    expect(s).toMatchObject({ failoverIndex: 0, target: { subset: 'v1' } });
  });

  it('fails over in the resolver’s order when the primary has no usable endpoint', () => {
    expect(decision.resolver.failover.map((t) => t.id)).toEqual([
      'v2.db.default.default.dc1',
      'db-backup.default.default.dc1',
    ]);
    const eps = new Map([
      ['db', [ep('a', '1', 'critical'), ep('d', '2', 'warning')]],
      ['db-backup', [ep('x', '9')]],
    ]);
    const s = selectTarget(decision, (svc) => eps.get(svc));
    expect(s).toMatchObject({ failoverIndex: 2, target: { service: 'db-backup' } });
    expect(s.endpoints.map((e) => e.id)).toEqual(['x']);
    // An extra usability test (ejected, breaker open) also moves traffic.
    const all = selectTarget(
      decision,
      () => [ep('a', '1'), ep('d', '2')],
      (e) => e.id !== 'a',
    );
    expect(all).toMatchObject({ failoverIndex: 1, target: { subset: 'v2' } });
  });

  it('returns the empty primary when nothing is usable', () => {
    expect(selectTarget(decision, () => undefined)).toMatchObject({ failoverIndex: 0, endpoints: [] });
  });
});

describe('entriesFromEtcd', () => {
  it('reads one entry per /proxyless/config/<kind>/<name> key', () => {
    const set = entriesFromEtcd([
      { key: '/proxyless/config/service-defaults/web', value: '{"Protocol":"http"}' },
      {
        key: etcdConfigKey({ Kind: 'service-splitter', Name: 'web' }),
        value: new TextEncoder().encode(
          JSON.stringify({ Kind: 'service-splitter', Name: 'web', Splits: [{ Weight: 100 }] }),
        ),
      },
    ]);
    expect(set.defaults.get('web')?.Protocol).toBe('http');
    expect(set.splitters.get('web')?.Splits).toHaveLength(1);
    expect(compileRoutingConfig(set).chain('web').start.type).toBe('splitter');
  });

  it('names the key for bad keys and values, and the entry and field for bad entries', () => {
    const err = (pairs: { key: string; value: string }[]): string => {
      try {
        entriesFromEtcd(pairs);
      } catch (e) {
        if (MeshError.is(e, 'MESH_CONFIG_INVALID')) return e.message;
        throw e;
      }
      return 'no error';
    };
    expect(err([{ key: '/proxyless/config/service-router', value: '{}' }])).toContain(
      'etcd /proxyless/config/service-router: expected a key /proxyless/config/<kind>/<name>',
    );
    expect(err([{ key: '/proxyless/config/service-router/a', value: '{' }])).toContain('value is not JSON');
    expect(err([{ key: '/proxyless/config/service-router/a', value: '{"Name":"b"}' }])).toContain(
      'entry service-router/b is stored under the key of service-router/a',
    );
    expect(
      err([{ key: '/proxyless/config/service-resolver/a', value: '{"ConnectTimeout":"soon"}' }]),
    ).toContain('service-resolver/a ConnectTimeout');
  });

  it('reports every problem at once: bad keys, bad entries and the chains through them (defect 1b)', () => {
    let error: unknown;
    try {
      entriesFromEtcd([
        { key: '/proxyless/config/service-defaults/web', value: '{"Protocol":"http"}' },
        // Its value is no JSON: no chain is checked through the router of api.
        { key: '/proxyless/config/service-router/api', value: '{' },
        { key: '/proxyless/config/service-defaults/api', value: '{"Protocol":"http"}' },
        {
          key: '/proxyless/config/service-splitter/web',
          value: JSON.stringify({
            Splits: [
              { Weight: 90, ServiceSubset: 'v1' },
              { Weight: 5, ServiceSubset: 'v9' },
            ],
          }),
        },
        { key: '/proxyless/config/service-resolver/web', value: '{"Subsets":{"v1":{}}}' },
      ]);
    } catch (e) {
      error = e;
    }
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    // Before: only the key; then only the weights; then only the subset.
    expect((error as MeshError).details.issues?.map((i) => i.field)).toEqual([
      'etcd /proxyless/config/service-router/api',
      'service-splitter/web Splits',
      'service-splitter/web Splits[1]',
    ]);
    expect((error as MeshError).message).toMatch(/^etcd config entries: 3 problems:\n/);
  });
});

describe('a key not of the form <kind>/<name>', () => {
  const problems = (badKey: string): string[] => {
    try {
      entriesFromEtcd([
        { key: '/proxyless/config/service-defaults/web', value: '{"Protocol":"http"}' },
        { key: '/proxyless/config/service-resolver/web', value: '{"Subsets":{"v1":{}}}' },
        {
          key: '/proxyless/config/service-splitter/web',
          value: JSON.stringify({ Splits: [{ Weight: 100, ServiceSubset: 'nope' }] }),
        },
        { key: badKey, value: '{}' },
      ]);
    } catch (e) {
      if (MeshError.is(e, 'MESH_CONFIG_INVALID')) return (e.details.issues ?? []).map((i) => i.field);
      throw e;
    }
    return [];
  };

  it('hides only the chains through the entry it meant, not every chain’s problems', () => {
    // Meant the router of api: web's chain is still checked (before, its subset problem vanished).
    expect(problems('/proxyless/config/service-router/api/extra')).toEqual([
      'etcd /proxyless/config/service-router/api/extra',
      'service-splitter/web Splits[0]',
    ]);
    // Meant the router of web: web's chain runs through it, so it is not checked (as a bad value).
    expect(problems('/proxyless/config/service-router/web/extra')).toEqual([
      'etcd /proxyless/config/service-router/web/extra',
    ]);
    // An unknown kind may have meant any entry: no chain is checked.
    expect(problems('/proxyless/config/service-routr/web')).toHaveLength(1);
  });
});

describe('chainFromConsul', () => {
  it('rejects a chain it cannot honour, naming the chain and field', () => {
    const body = {
      Chain: {
        ServiceName: 'web',
        Protocol: 'http',
        Datacenter: 'dc1',
        StartNode: 'resolver:web.default.default.dc1',
        Nodes: {
          'resolver:web.default.default.dc1': {
            Type: 'resolver',
            Name: 'x',
            Resolver: { Target: 'web.default.default.dc1' },
          },
        },
        Targets: {
          'web.default.default.dc1': {
            ID: 'web.default.default.dc1',
            Service: 'web',
            Subset: { Filter: 'Node.Meta.rack == r1' },
          },
        },
      },
    };
    expect(() => chainFromConsul(body)).toThrow(
      /discovery-chain\/web Targets\["web.default.default.dc1"\].Subset.Filter/,
    );
    expect(() => chainFromConsul({ Chain: { ...body.Chain, StartNode: 'router:nope' } })).toThrow(
      /StartNode: names a node/,
    );
    expect(() => chainFromConsul({})).toThrow(MeshError);
  });

  it('reads integer-nanosecond and string timeouts', () => {
    const c = chainFromConsul({
      Chain: {
        ServiceName: 'web',
        Protocol: 'tcp',
        Datacenter: 'dc1',
        StartNode: 'resolver:web.default.default.dc1',
        Nodes: {
          'resolver:web.default.default.dc1': {
            Type: 'resolver',
            Resolver: {
              ConnectTimeout: '3s',
              RequestTimeout: 10_000_000_000,
              Target: 'web.default.default.dc1',
            },
          },
        },
        Targets: { 'web.default.default.dc1': { Service: 'web', Datacenter: 'dc1', ConnectTimeout: '3s' } },
      },
    });
    const d = route(c, { method: 'GET', path: '/', headers: {} }, seededRandom(1));
    expect(d.requestTimeoutMs).toBe(10_000);
    expect(d.resolver.connectTimeoutMs).toBe(3000);
  });
});
