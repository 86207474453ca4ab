import { MeshError } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import { compileRoutingConfig } from './compile.js';
import { validateConfigEntries } from './validate.js';

const http = (name: string) => ({ Kind: 'service-defaults', Name: name, Protocol: 'HTTP' });

function rejection(entries: unknown[]): MeshError {
  try {
    compileRoutingConfig(entries);
  } catch (error) {
    if (MeshError.is(error, 'MESH_CONFIG_INVALID')) return error;
    throw error;
  }
  throw new Error('expected MESH_CONFIG_INVALID');
}

function fields(e: MeshError): string[] {
  return (e.details.issues ?? []).map((i) => `${i.field}: ${i.expected}`);
}

describe('config entry validation', () => {
  it('accepts Consul’s documented entries and normalises them as Consul stores them', () => {
    const set = validateConfigEntries([
      http('payments'),
      {
        Kind: 'service-router',
        Name: 'payments',
        Routes: [
          { Match: { HTTP: { PathPrefix: '/v2', Methods: ['get'] } }, Destination: { ServiceSubset: 'v2' } },
        ],
      },
      {
        Kind: 'service-splitter',
        Name: 'payments',
        Splits: [
          { Weight: 33.333, ServiceSubset: 'v1' },
          { Weight: 66.667, ServiceSubset: 'v2' },
        ],
      },
      {
        Kind: 'service-resolver',
        Name: 'payments',
        Subsets: { v1: {}, v2: {} },
        ConnectTimeout: '3s',
        CreateIndex: 5,
        ModifyIndex: 7,
      },
    ]);
    expect(set.defaults.get('payments')?.Protocol).toBe('http');
    expect(set.routers.get('payments')?.Routes?.[0]?.Match?.HTTP?.Methods).toEqual(['GET']);
    expect(set.splitters.get('payments')?.Splits?.map((s) => s.Weight)).toEqual([33.33, 66.67]);
  });

  it('rejects weights that do not sum to 100 or are negative, naming the entry and field', () => {
    const e = rejection([
      http('a'),
      {
        Kind: 'service-splitter',
        Name: 'a',
        Splits: [
          { Weight: 90, Service: 'b' },
          { Weight: 5, Service: 'c' },
        ],
      },
    ]);
    // b and c have no service-defaults (tcp): reported with the weights, not after they are fixed.
    expect(fields(e)).toEqual([
      'service-splitter/a Splits: the sum of all split weights must be 100, not 95',
      'service-splitter/a Splits[0]: discovery chain "a" uses inconsistent protocols; service "b.default.default" has "tcp" which is not "http"',
      'service-splitter/a Splits[1]: discovery chain "a" uses inconsistent protocols; service "c.default.default" has "tcp" which is not "http"',
    ]);
    expect(e.message).toContain('service-splitter/a Splits');
    const neg = rejection([
      {
        Kind: 'service-splitter',
        Name: 'a',
        Splits: [
          { Weight: 110, Service: 'b' },
          { Weight: -10, Service: 'c' },
        ],
      },
    ]);
    expect(fields(neg)[0]).toBe('service-splitter/a Splits[1].Weight: split weight must not be negative');
  });

  it('rejects an unknown Kind and unknown fields', () => {
    expect(fields(rejection([{ Kind: 'service-routr', Name: 'a' }]))[0]).toMatch(
      /^service-routr\/a Kind: invalid config entry kind.*did you mean "service-router"/,
    );
    expect(fields(rejection([{ Name: 'a' }]))[0]).toContain('Payload does not contain a kind/Kind key');
    const e = rejection([
      { Kind: 'service-router', Name: 'a', Routes: [{ Match: { HTTP: { PathPrefx: '/' } } }] },
    ]);
    expect(fields(e)).toEqual([
      'service-router/a Routes[0].Match.HTTP.PathPrefx: invalid config key "PathPrefx" (did you mean "PathPrefix"?)',
    ]);
  });

  it("lists a misspelt key and the entry's other problems at once (probe25 config defect 2)", () => {
    const top = rejection([
      { Kind: 'service-resolver', Name: 'a', ConnectTimeout: 'soon', DefaultSubet: 'v1' },
    ]);
    expect(fields(top).map((f) => f.split(':')[0])).toEqual([
      'service-resolver/a DefaultSubet',
      'service-resolver/a ConnectTimeout',
    ]);
    const nested = rejection([
      {
        Kind: 'service-resolver',
        Name: 'a',
        ConnectTimeout: 'soon',
        Subsets: { v1: { OnlyPasing: true, Filter: 'Service.Meta.v ==' } },
      },
    ]);
    expect(fields(nested).map((f) => f.split(':')[0])).toEqual([
      'service-resolver/a Subsets.v1.OnlyPasing',
      'service-resolver/a Subsets["v1"].Filter',
      'service-resolver/a ConnectTimeout',
    ]);
    // A value of the wrong type still stops there: the rules read typed values.
    const typed = rejection([
      { Kind: 'service-resolver', Name: 'a', ConnectTimeout: true, DefaultSubet: 'v1' },
    ]);
    expect(fields(typed)).toHaveLength(2);
  });

  it('rejects a subset referenced but not defined', () => {
    const e = rejection([
      http('a'),
      { Kind: 'service-router', Name: 'a', Routes: [{ Destination: { ServiceSubset: 'v9' } }] },
    ]);
    expect(fields(e)).toEqual([
      'service-router/a Routes[0].Destination: service "a" does not have a subset named "v9"',
    ]);
    const d = rejection([{ Kind: 'service-resolver', Name: 'a', DefaultSubset: 'v1' }]);
    expect(fields(d)).toEqual(['service-resolver/a DefaultSubset: DefaultSubset "v1" is not a valid subset']);
  });

  it('rejects a regex that does not compile', () => {
    const e = rejection([
      http('a'),
      {
        Kind: 'service-router',
        Name: 'a',
        Routes: [{ Match: { HTTP: { PathRegex: '/(a', Header: [{ Name: 'x', Regex: '[' }] } } }],
      },
    ]);
    expect(fields(e).map((f) => f.split(':')[0])).toEqual([
      'service-router/a Routes[0].Match.HTTP.PathRegex',
      'service-router/a Routes[0].Match.HTTP.Header[0].Regex',
    ]);
  });

  it('rejects an L7 entry on a tcp service with Consul’s own message', () => {
    const e = rejection([{ Kind: 'service-router', Name: 'db', Routes: [] }]);
    expect(e.message).toContain(
      'service-router/db: discovery chain "db" uses a protocol "tcp" that does not permit advanced routing or splitting behavior',
    );
    const s = rejection([
      { Kind: 'service-defaults', Name: 'db', Protocol: 'tcp' },
      { Kind: 'service-splitter', Name: 'db', Splits: [{ Weight: 100 }] },
    ]);
    expect(s.message).toContain('discovery chain "db" uses a protocol "tcp"');
  });

  it('rejects mixed protocols in one chain', () => {
    const e = rejection([
      http('a'),
      { Kind: 'service-defaults', Name: 'b', Protocol: 'grpc' },
      { Kind: 'service-router', Name: 'a', Routes: [{ Destination: { Service: 'b' } }] },
    ]);
    expect(fields(e)[0]).toContain(
      'discovery chain "a" uses inconsistent protocols; service "b.default.default" has "grpc"',
    );
  });

  it('rejects redirect and splitter loops (a → b → a); failover is not recursive', () => {
    const redirect = rejection([
      { Kind: 'service-resolver', Name: 'a', Redirect: { Service: 'b' } },
      { Kind: 'service-resolver', Name: 'b', Redirect: { Service: 'a' } },
    ]);
    expect(redirect.message).toContain('detected circular resolver redirect');
    // Consul accepts resolvers failing over to each other (compile.go detectCircularReferences).
    const mutual = compileRoutingConfig([
      { Kind: 'service-resolver', Name: 'a', Failover: { '*': { Service: 'b' } } },
      { Kind: 'service-resolver', Name: 'b', Failover: { '*': { Targets: [{ Service: 'a' }] } } },
    ]);
    expect(mutual.chain('a').startDecisions[0]?.resolver.failover.map((t) => t.id)).toEqual([
      'b.default.default.dc1',
    ]);
    const split = rejection([
      http('a'),
      http('b'),
      { Kind: 'service-splitter', Name: 'a', Splits: [{ Weight: 50, Service: 'b' }, { Weight: 50 }] },
      { Kind: 'service-splitter', Name: 'b', Splits: [{ Weight: 50, Service: 'a' }, { Weight: 50 }] },
    ]);
    expect(split.message).toContain('detected circular reference');
  });

  it('reports one loop once, the same whichever chain enters it', () => {
    const loop = [
      { Kind: 'service-resolver', Name: 'b', Redirect: { Service: 'a' } },
      { Kind: 'service-resolver', Name: 'a', Redirect: { Service: 'b' } },
      { Kind: 'service-resolver', Name: 'c', Redirect: { Service: 'b' } },
    ];
    const redirect = rejection(loop);
    const loops = (redirect.details.issues ?? []).filter((i) => /circular/.test(i.message ?? ''));
    expect(loops).toHaveLength(1);
    expect(loops[0]?.message).toContain(
      'detected circular resolver redirect: [a.default.default.dc1 -> b.default.default.dc1 -> a.default.default.dc1]',
    );
    expect(loops[0]?.field).toContain('service-resolver/b');
    // The entries in another order: the same report.
    expect(
      rejection([...loop].reverse()).details.issues?.filter((i) => /circular/.test(i.message ?? '')),
    ).toEqual(loops);
    const split = rejection([
      http('a'),
      http('b'),
      { Kind: 'service-splitter', Name: 'b', Splits: [{ Weight: 50, Service: 'a' }, { Weight: 50 }] },
      { Kind: 'service-splitter', Name: 'a', Splits: [{ Weight: 50, Service: 'b' }, { Weight: 50 }] },
    ]);
    const splitLoops = (split.details.issues ?? []).filter((i) => /circular/.test(i.message ?? ''));
    expect(splitLoops).toHaveLength(1);
    expect(splitLoops[0]?.message).toContain('detected circular reference: [a -> b -> a]');
  });

  it('rejects an invalid bexpr filter, naming the entry and the filter', () => {
    const e = rejection([
      { Kind: 'service-resolver', Name: 'a', Subsets: { v1: { Filter: 'Service.Meta.version = 1' } } },
    ]);
    const [issue] = e.details.issues ?? [];
    expect(issue?.field).toBe('service-resolver/a Subsets["v1"].Filter');
    expect(issue?.expected).toMatch(/^Filter for subset "v1" is not a valid expression/);
    expect(issue?.value).toBe('Service.Meta.version = 1');
  });

  it('applies Consul’s router, resolver and load-balancer rules', () => {
    const e = rejection([
      http('a'),
      {
        Kind: 'service-router',
        Name: 'a',
        Routes: [
          { Match: { HTTP: { PathExact: 'x', PathPrefix: '/y' } } },
          {
            Match: {
              HTTP: { Header: [{ Name: 'h', Exact: '1', Prefix: '2' }], Methods: ['GET', 'get', 'FETCH'] },
            },
          },
          {
            Match: { HTTP: { PathRegex: '/z' } },
            Destination: { PrefixRewrite: '/', RetryOn: ['sometimes'] },
          },
        ],
      },
      {
        Kind: 'service-resolver',
        Name: 'r',
        Subsets: { V1: {} },
        Redirect: { Service: 'x' },
        Failover: { '*': { Service: 'y' } },
        LoadBalancer: { Policy: 'least_request', RingHashConfig: { MinimumRingSize: 10 } },
      },
    ]);
    const msgs = fields(e).join('\n');
    expect(msgs).toContain('Route[0] should only contain at most one of PathExact, PathPrefix, or PathRegex');
    expect(msgs).toContain("Route[0] PathExact doesn't start with '/': \"x\"");
    expect(msgs).toContain(
      'Route[1] Header[0] should only contain one of Present, Exact, Prefix, Suffix, or Regex',
    );
    expect(msgs).toContain('Route[1] Methods contains "GET" more than once');
    expect(msgs).toContain('Route[1] Methods contains an invalid method "FETCH"');
    expect(msgs).toContain(
      'Route[2] cannot make use of PrefixRewrite without configuring either PathExact or PathPrefix',
    );
    expect(msgs).toContain('Route[2] contains an invalid retry condition: "sometimes"');
    expect(msgs).toContain('Subset defines invalid name');
    expect(msgs).toContain('Redirect and Failover cannot both be set');
    expect(msgs).toContain(
      'Bad LoadBalancer: RingHashConfig specified for incompatible load balancing policy "least_request"',
    );
  });

  it('counts an empty matcher string as Consul does: unset (Exact: "" is no matcher)', () => {
    const defaults = { Kind: 'service-defaults', Name: 'web', Protocol: 'http' };
    const router = (match: Record<string, unknown>) => ({
      Kind: 'service-router',
      Name: 'web',
      Routes: [{ Match: { HTTP: match }, Destination: { Service: 'web' } }],
    });
    const header = fields(
      rejection([defaults, router({ Header: [{ Name: 'x-a', Exact: '', Invert: true }] })]),
    );
    expect(header.join('\n')).toContain(
      'Route[0] Header[0] should only contain one of Present, Exact, Prefix, Suffix, or Regex',
    );
    const query = fields(rejection([defaults, router({ QueryParam: [{ Name: 'q', Exact: '' }] })]));
    expect(query.join('\n')).toContain(
      'Route[0] QueryParam[0] should only contain one of Present, Exact, or Regex',
    );
    // A non-empty value is one matcher, as before.
    expect(() =>
      validateConfigEntries([defaults, router({ Header: [{ Name: 'x-a', Exact: 'b' }] })]),
    ).not.toThrow();
  });

  it.each([
    [{ ServiceSubset: 'v1' }, 'Redirect.ServiceSubset defined without Redirect.Service'],
    [{ Namespace: 'default', Datacenter: 'dc2' }, 'Redirect.Namespace defined without Redirect.Service'],
    [{ Service: 'web', ServiceSubset: 'v9' }, 'Redirect.ServiceSubset "v9" is not a valid subset of "web"'],
  ])('refuses a Redirect Consul refuses (%j)', (redirect, message) => {
    const e = rejection([
      {
        Kind: 'service-resolver',
        Name: 'web',
        Subsets: { v1: { Filter: 'Service.Meta.version == v1' } },
        Redirect: redirect,
      },
    ]);
    expect(fields(e).join('\n')).toContain(message);
  });

  it('rejects enterprise tenancy and duplicate entries', () => {
    const e = rejection([
      { Kind: 'service-resolver', Name: 'a', Namespace: 'team' },
      { Kind: 'service-resolver', Name: 'b' },
      { Kind: 'service-resolver', Name: 'b' },
    ]);
    expect(fields(e)).toEqual([
      'service-resolver/a Namespace: Namespaces are a Consul Enterprise feature',
      'service-resolver/b: defined more than once',
    ]);
  });

  describe("every problem at once: the entries' own and their chains' (defect 1b)", () => {
    const base = [
      http('web'),
      { Kind: 'service-resolver', Name: 'web', Subsets: { v1: { Filter: 'Service.Meta.version == "v1"' } } },
    ];
    const splitter = (splits: { Weight: number; ServiceSubset: string }[]) => ({
      Kind: 'service-splitter',
      Name: 'web',
      Splits: splits,
    });

    it('reports weights summing to 95 and an undefined subset in one error', () => {
      const e = rejection([
        ...base,
        splitter([
          { Weight: 90, ServiceSubset: 'v1' },
          { Weight: 5, ServiceSubset: 'v9' },
        ]),
      ]);
      // Before: only the weight sum; the subset appeared once the weights were fixed.
      expect(fields(e)).toEqual([
        'service-splitter/web Splits: the sum of all split weights must be 100, not 95',
        'service-splitter/web Splits[1]: service "web" does not have a subset named "v9"',
      ]);
      expect(e.message).toBe(
        'config entries: 2 problems:\n' +
          '  service-splitter/web Splits: the sum of all split weights must be 100, not 95\n' +
          '  service-splitter/web Splits[1]: service "web" does not have a subset named "v9"',
      );
      expect(e.details.entries).toEqual(['service-splitter/web']);
    });

    it('reports every undefined subset of a chain, each once, in a stable order', () => {
      const entries = [
        ...base,
        splitter([
          { Weight: 50, ServiceSubset: 'v8' },
          { Weight: 50, ServiceSubset: 'v9' },
        ]),
        // Two more chains through web's splitter: the same problems, reported once.
        http('api'),
        { Kind: 'service-router', Name: 'api', Routes: [{ Destination: { Service: 'web' } }] },
        http('app'),
        { Kind: 'service-splitter', Name: 'app', Splits: [{ Weight: 100, Service: 'web' }] },
      ];
      const expected = [
        'service-splitter/web Splits[0]: service "web" does not have a subset named "v8"',
        'service-splitter/web Splits[1]: service "web" does not have a subset named "v9"',
      ];
      expect(fields(rejection(entries))).toEqual(expected);
      expect(fields(rejection([...entries].reverse()))).toEqual(expected);
    });

    it('compiles no chain through an entry whose shape is wrong, and through one whose rules fail', () => {
      // web's service-defaults is unreadable: its protocol is unknown, so no protocol rule is
      // checked (that would be a consequence), but the router's own subset still is.
      const shape = rejection([
        { Kind: 'service-defaults', Name: 'web', Protocol: 7 },
        { Kind: 'service-router', Name: 'web', Routes: [{ Destination: { ServiceSubset: 'v9' } }] },
      ]);
      expect(fields(shape)).toEqual([
        'service-defaults/web Protocol: expected a string',
        'service-router/web Routes[0].Destination: service "web" does not have a subset named "v9"',
      ]);
      // A resolver unreadable as a whole: whatever its chain would say follows from it.
      const resolver = rejection([
        http('web'),
        { Kind: 'service-resolver', Name: 'web', Subsets: 'v1' },
        splitter([{ Weight: 100, ServiceSubset: 'v1' }]),
      ]);
      expect(fields(resolver)).toEqual(['service-resolver/web Subsets: expected an object']);
      // Its own rules broken (a bad filter, a DefaultSubset that is none, a bad regex): reported
      // once each, and the chain is still checked through it.
      const rules = rejection([
        http('web'),
        {
          Kind: 'service-resolver',
          Name: 'web',
          DefaultSubset: 'nope',
          Subsets: { v1: { Filter: 'bad ==' } },
        },
        { Kind: 'service-router', Name: 'web', Routes: [{ Match: { HTTP: { PathRegex: '(' } } }] },
        splitter([
          { Weight: 50, ServiceSubset: 'v1' },
          { Weight: 50, ServiceSubset: 'v2' },
        ]),
      ]);
      expect(fields(rules).map((f) => f.split(':')[0])).toEqual([
        'service-resolver/web Subsets["v1"].Filter',
        'service-resolver/web DefaultSubset',
        'service-router/web Routes[0].Match.HTTP.PathRegex',
        'service-splitter/web Splits[1]',
      ]);
    });
  });
});
