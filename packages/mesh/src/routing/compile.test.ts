import { describe, expect, it } from 'vitest';
import type { HeaderOps } from './chain.js';
import { compileRoutingConfig, flattenedWeight, mergeHeaderModifiers } from './compile.js';
import { applyHeaderOps } from './router.js';

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
