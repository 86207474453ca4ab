import type { Endpoint } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import type { HeaderOps } from './chain.js';
import { compileRoutingConfig, flattenedWeight, mergeHeaderModifiers } from './compile.js';
import { entriesFromEtcd } from './etcd-entries.js';
import { applyHeaderOps } from './router.js';
import { selectTarget } from './targets.js';

const http = (name: string) => ({ Kind: 'service-defaults', Name: name, Protocol: 'http' });
const apply = (ops: HeaderOps | undefined) => {
  const h: Record<string, string | string[] | undefined> = { 'x-old': 'o', 'x-keep': 'k' };
  applyHeaderOps(h, ops);
  return h;
};

describe('compile: nested splitters (Consul flattenAdjacentSplitterNodes)', () => {
  const entries = [
    http('web'),
    http('api'),
    {
      Kind: 'service-resolver',
      Name: 'api',
      Subsets: { v1: { Filter: 'Service.Meta.v == "1"' }, v2: { Filter: 'Service.Meta.v == "2"' } },
    },
    {
      Kind: 'service-splitter',
      Name: 'web',
      Splits: [
        {
          Weight: 33.33,
          Service: 'api',
          RequestHeaders: {
            Set: { 'x-outer': '1', 'x-both': 'outer' },
            Add: { 'x-add': 'outer' },
            Remove: ['x-old'],
          },
          ResponseHeaders: { Set: { 'x-resp': 'outer' } },
        },
        { Weight: 66.67 },
      ],
    },
    {
      Kind: 'service-splitter',
      Name: 'api',
      Splits: [
        { Weight: 50, ServiceSubset: 'v1' },
        {
          Weight: 50,
          ServiceSubset: 'v2',
          RequestHeaders: {
            Set: { 'x-both': 'inner' },
            Add: { 'x-add': 'inner' },
            Remove: ['x-old', 'x-keep'],
          },
          ResponseHeaders: { Set: { 'x-resp': 'inner', 'x-inner-resp': '1' } },
        },
      ],
    },
  ];
  const chain = compileRoutingConfig(entries).chain('web');

  it('keeps the outer split’s header edits on every flattened split', () => {
    const [v1, v2, own] = chain.startDecisions;
    expect(v1?.target.id).toBe('v1.api.default.default.dc1');
    expect(apply(v1?.requestHeaders)).toEqual({
      'x-keep': 'k',
      'x-outer': '1',
      'x-both': 'outer',
      'x-add': 'outer',
    });
    expect(apply(v1?.responseHeaders)).toEqual({ 'x-old': 'o', 'x-keep': 'k', 'x-resp': 'outer' });
    // Requests: the inner split wins on a name both set or add; removals are the union.
    expect(v2?.target.id).toBe('v2.api.default.default.dc1');
    expect(apply(v2?.requestHeaders)).toEqual({ 'x-outer': '1', 'x-both': 'inner', 'x-add': 'inner' });
    // Responses flow back through the outer split last: it wins.
    expect(apply(v2?.responseHeaders)).toEqual({
      'x-old': 'o',
      'x-keep': 'k',
      'x-resp': 'outer',
      'x-inner-resp': '1',
    });
    expect(own?.requestHeaders).toBeUndefined();
  });

  it('rounds flattened weights to 0.01 (NormalizeServiceSplitWeight)', () => {
    expect(chain.start.type === 'splitter' && chain.start.splits.map((s) => s.weight)).toEqual([
      16.67, 16.67, 66.67,
    ]);
    expect(Array.from(chain.startThresholds)).toEqual([1667, 3334, 10_001]);
    expect(flattenedWeight(10, 33.33)).toBe(3.33);
    expect(flattenedWeight(0.5, 0.5)).toBe(0);
    expect(flattenedWeight(1.11, 50)).toBe(0.56);
  });

  it('merges header modifiers as MergeHTTPHeaderModifiers does', () => {
    expect(mergeHeaderModifiers(undefined, undefined)).toBeUndefined();
    expect(mergeHeaderModifiers({}, { Remove: [] })).toBeUndefined();
    expect(mergeHeaderModifiers({ Set: { a: '1' } }, undefined)).toEqual({ Set: { a: '1' } });
    expect(
      mergeHeaderModifiers(
        { Add: { a: '1' }, Set: { s: '1' }, Remove: ['r', 'q'] },
        { Add: { a: '2', b: '2' }, Set: { a: '3' }, Remove: ['q', 'z'] },
      ),
    ).toEqual({ Add: { a: '2', b: '2' }, Set: { s: '1', a: '3' }, Remove: ['r', 'q', 'z'] });
  });
});

describe('compile: failover between resolvers (Consul: failover is not recursive)', () => {
  const ep = (id: string) =>
    ({ id, address: '10.0.0.1', port: 80, health: 'passing', tags: [], metadata: {} }) as unknown as Endpoint;

  it('accepts resolvers that fail over to each other, from one source or etcd alike', () => {
    const mutual = [
      { Kind: 'service-resolver', Name: 'a', Failover: { '*': { Service: 'b' } } },
      { Kind: 'service-resolver', Name: 'b', Failover: { '*': { Targets: [{ Service: 'a' }] } } },
    ];
    const config = compileRoutingConfig(mutual);
    expect(config.chain('a').startDecisions[0]?.resolver.failover.map((t) => t.id)).toEqual([
      'b.default.default.dc1',
    ]);
    expect(config.chain('b').startDecisions[0]?.resolver.failover.map((t) => t.id)).toEqual([
      'a.default.default.dc1',
    ]);
    const fromEtcd = entriesFromEtcd(
      mutual.map((e) => ({ key: `/proxyless/config/${e.Kind}/${e.Name}`, value: JSON.stringify(e) })),
    );
    expect(compileRoutingConfig(fromEtcd).services).toEqual(['a', 'b']);
  });

  it('follows only the primary’s failover list, never a failover target’s own failover', () => {
    const config = compileRoutingConfig([
      { Kind: 'service-resolver', Name: 'a', Failover: { '*': { Service: 'b' } } },
      { Kind: 'service-resolver', Name: 'b', Failover: { '*': { Service: 'c' } } },
    ]);
    const d = config.chain('a').startDecisions[0]!;
    expect(d.resolver.failover.map((t) => t.service)).toEqual(['b']);
    const only = (svc: string) => (s: string) => (s === svc ? [ep(`${svc}-1`)] : []);
    // a empty, b has endpoints: b.
    expect(selectTarget(d, only('b')).target.service).toBe('b');
    // a and b empty, c healthy: c is b's failover, not a's, so the request stays on a (no endpoint).
    const sel = selectTarget(d, only('c'));
    expect([sel.target.service, sel.endpoints.length, sel.failoverIndex]).toEqual(['a', 0, 0]);
    // Mutual failover with nothing anywhere ends on the primary.
    const mutual = compileRoutingConfig([
      { Kind: 'service-resolver', Name: 'a', Failover: { '*': { Service: 'b' } } },
      { Kind: 'service-resolver', Name: 'b', Failover: { '*': { Service: 'a' } } },
    ]);
    expect(selectTarget(mutual.chain('a').startDecisions[0]!, () => []).target.service).toBe('a');
  });

  it('resolves a failover target through its own resolver: its Redirect, then its DefaultSubset (Consul getResolverNode)', () => {
    const config = compileRoutingConfig([
      {
        Kind: 'service-resolver',
        Name: 'web',
        Failover: { '*': { Targets: [{ Service: 'b' }, { Service: 'd' }] } },
      },
      { Kind: 'service-resolver', Name: 'b', Redirect: { Service: 'c' } },
      {
        Kind: 'service-resolver',
        Name: 'd',
        DefaultSubset: 'v1',
        Subsets: { v1: { Filter: 'Service.Meta.version == v1' } },
        Redirect: { Datacenter: 'dc1' },
      },
    ]);
    expect(config.chain('web').startDecisions[0]?.resolver.failover.map((t) => t.id)).toEqual([
      'c.default.default.dc1',
      'v1.d.default.default.dc1',
    ]);
    // A direct call to b goes to c too: the two agree.
    expect(config.chain('b').startDecisions[0]?.resolver.target.id).toBe('c.default.default.dc1');
  });
});
