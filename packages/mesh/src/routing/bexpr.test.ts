import { createEndpoint, MeshError } from '@proxyless/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileBexpr, parseBexpr } from './bexpr.js';

const v1 = createEndpoint({
  id: 'web-1',
  address: '10.0.0.1',
  port: 8080,
  tags: ['primary', 'v1'],
  metadata: { version: '1', env: 'prod' },
});
const v2 = createEndpoint({
  id: 'web-2',
  address: '10.1.0.2',
  port: 9090,
  tags: ['canary'],
  metadata: { version: '2', 'ver sion': 'x' },
});
const bare = createEndpoint({ id: 'web-3', address: 'web3.internal', port: 80 });
const all = [v1, v2, bare];
const ids = (expr: string): string[] => all.filter(compileBexpr(expr)).map((e) => e.id);

describe('bexpr (go-bexpr and Consul filtering docs examples)', () => {
  it('compares selectors with == and != on quoted, bare and numeric values', () => {
    expect(ids('Service.Meta.version == "1"')).toEqual(['web-1']);
    // Consul's service-resolver docs write `Service.Meta.version == v1`-style bare words.
    expect(ids('Service.Meta.version == 2')).toEqual(['web-2']);
    expect(ids('Service.Meta.env == prod')).toEqual(['web-1']);
    expect(ids('Service.Meta.version != "1"')).toEqual(['web-2', 'web-3']);
    expect(ids('Service.Port == 9090')).toEqual(['web-2']);
    expect(ids('Service.ID == `web-3`')).toEqual(['web-3']);
  });

  it('tests collection membership with in, not in, contains and not contains', () => {
    expect(ids('"primary" in Service.Tags')).toEqual(['web-1']);
    expect(ids('Service.Tags contains "canary"')).toEqual(['web-2']);
    expect(ids('"canary" not in Service.Tags')).toEqual(['web-1', 'web-3']);
    expect(ids('Service.Tags not contains "v1"')).toEqual(['web-2', 'web-3']);
    // On a map, `in` tests the key; on a string, it is a substring test.
    expect(ids('"env" in Service.Meta')).toEqual(['web-1']);
    expect(ids('"10.1." in Service.Address')).toEqual(['web-2']);
    expect(ids('Service.ID contains "-3"')).toEqual(['web-3']);
  });

  it('tests emptiness of collections, maps and strings (a missing meta key is empty)', () => {
    expect(ids('Service.Tags is empty')).toEqual(['web-3']);
    expect(ids('Service.Meta is not empty')).toEqual(['web-1', 'web-2']);
    expect(ids('Service.Meta.env is empty')).toEqual(['web-2', 'web-3']);
  });

  it('matches RE2 regular expressions', () => {
    expect(ids('Service.Address matches "^10\\\\.0\\\\."')).toEqual(['web-1']);
    expect(ids('Service.Address matches `^10\\.`')).toEqual(['web-1', 'web-2']);
    expect(ids('Service.ID not matches "web-[12]"')).toEqual(['web-3']);
    expect(ids('Service.Meta.env matches "(?i)PROD"')).toEqual(['web-1']);
  });

  it('applies not > and > or precedence, and parentheses override it', () => {
    // The docs: `<E1> and not <E2> or <E3>` equals `(<E1> and (not <E2>)) or <E3>`.
    const e1 = '"primary" in Service.Tags';
    const e2 = 'Service.Port == 8080';
    const e3 = 'Service.ID == "web-3"';
    expect(ids(`${e1} and not ${e2} or ${e3}`)).toEqual(ids(`(${e1} and (not ${e2})) or ${e3}`));
    expect(ids(`${e1} and not ${e2} or ${e3}`)).toEqual(['web-3']);
    expect(ids(`${e1} and (not ${e2} or ${e3})`)).toEqual([]);
    expect(ids('not not Service.Port == 80')).toEqual(['web-3']);
    expect(ids('( Service.Port == 80 )')).toEqual(['web-3']);
  });

  it('reads index and JSON-pointer selectors', () => {
    expect(ids('Service.Meta["ver sion"] == x')).toEqual(['web-2']);
    expect(ids('"/Service/Meta/version" == "1"')).toEqual(['web-1']);
  });

  it('rejects syntax errors, unknown selectors and type mismatches with MESH_CONFIG_INVALID', () => {
    const bad = [
      'Service.Meta.version ==',
      'Service.Meta.version = "1"',
      '(Service.Port == 80',
      'Service.Port == 80)',
      '"x" in "y"',
      'Service.ID == "unterminated',
      'Node.Meta.rack == a',
      'Service.Weights.Passing == 1',
      'Service.Tags == "v1"',
      'Service.Port == eighty',
      'Service.ID matches "("',
      'Service.Port is empty',
      '',
      'Service.Port == 8080 and',
    ];
    for (const expr of bad) {
      let error: unknown;
      try {
        compileBexpr(expr);
      } catch (e) {
        error = e;
      }
      expect(MeshError.is(error, 'MESH_CONFIG_INVALID'), expr).toBe(true);
      expect((error as MeshError).details.value).toBe(expr);
    }
    expect(() => compileBexpr('Node.Meta.rack == a')).toThrow(/selector "Node.Meta.rack" is not valid/);
  });

  it('parses into the go-bexpr tree shape', () => {
    expect(parseBexpr('a.b == 1 or not c.d is empty')).toEqual({
      type: 'or',
      left: { type: 'match', selector: ['a', 'b'], op: '==', value: '1' },
      right: { type: 'not', operand: { type: 'match', selector: ['c', 'd'], op: 'is empty' } },
    });
  });

  it('only ever throws MeshError on arbitrary input', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (s) => {
        try {
          compileBexpr(s);
        } catch (error) {
          return MeshError.is(error, 'MESH_CONFIG_INVALID');
        }
        return true;
      }),
      { numRuns: 500 },
    );
  });
});
