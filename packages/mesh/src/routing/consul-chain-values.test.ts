/**
 * A discovery chain from Consul with a value Consul cannot have sent is refused as a whole,
 * naming the field and the value (the last good chain stays in force): a malformed duration is
 * never read as "unset" or as the 5 s default, nor any other malformed field as its default.
 * An absent field keeps its default (Consul leaves Go's zero values out).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { MeshError, noopLogger, systemClock } from '@proxyless/core';
import { seededRandom } from '@proxyless/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { ConsulChains } from '../routing-sources.js';
import type { RoutingStage } from '../routing-stage.js';
import type { RoutingChain } from './chain.js';
import { chainFromConsul } from './consul-chain.js';
import { route } from './router.js';

type Json = Record<string, unknown>;

const RESOLVER = 'resolver:web.default.default.dc1';
const V2 = 'resolver:v2.web.default.default.dc1';
const ROUTER = 'router:web.default.default';
const SPLITTER = 'splitter:web.default.default';

/** A chain as Consul answers it: router → splitter (90/10) → resolvers, v2 failing over to web. */
function body(): { Chain: Json } {
  return {
    Chain: {
      ServiceName: 'web',
      Namespace: 'default',
      Partition: 'default',
      Datacenter: 'dc1',
      Protocol: 'http',
      StartNode: ROUTER,
      Nodes: {
        [ROUTER]: {
          Type: 'router',
          Name: 'web.default.default',
          Routes: [
            {
              Definition: {
                Match: { HTTP: { PathPrefix: '/v2', Header: [{ Name: 'x-canary', Present: true }] } },
                Destination: { ServiceSubset: 'v2', RequestTimeout: '5s', NumRetries: 2, RetryOn: ['5xx'] },
              },
              NextNode: V2,
            },
            {
              Definition: {
                Match: { HTTP: { PathPrefix: '/' } },
                Destination: { Service: 'web', Namespace: 'default', Partition: 'default' },
              },
              NextNode: SPLITTER,
            },
          ],
        },
        [SPLITTER]: {
          Type: 'splitter',
          Name: 'web.default.default',
          Splits: [
            {
              Definition: { Weight: 90, RequestHeaders: { Set: { 'x-split': 'web' } } },
              Weight: 90,
              NextNode: RESOLVER,
            },
            { Definition: { Weight: 10, ServiceSubset: 'v2' }, Weight: 10, NextNode: V2 },
          ],
        },
        [RESOLVER]: {
          Type: 'resolver',
          Name: 'web.default.default.dc1',
          Resolver: {
            ConnectTimeout: '3s',
            RequestTimeout: 1_000_000_000,
            Target: 'web.default.default.dc1',
          },
          LoadBalancer: { Policy: 'least_request', LeastRequestConfig: { ChoiceCount: 3 } },
        },
        [V2]: {
          Type: 'resolver',
          Name: 'v2.web.default.default.dc1',
          Resolver: {
            ConnectTimeout: '3s',
            Target: 'v2.web.default.default.dc1',
            Failover: { Targets: ['web.default.default.dc1'] },
          },
        },
      },
      Targets: {
        'web.default.default.dc1': {
          ID: 'web.default.default.dc1',
          Service: 'web',
          Namespace: 'default',
          Partition: 'default',
          Datacenter: 'dc1',
          MeshGateway: {},
          Subset: {},
          TransparentProxy: {},
          ConnectTimeout: '3s',
          SNI: 'web.default.dc1.internal.11111111-2222-3333-4444-555555555555.consul',
        },
        'v2.web.default.default.dc1': {
          ID: 'v2.web.default.default.dc1',
          Service: 'web',
          ServiceSubset: 'v2',
          Namespace: 'default',
          Partition: 'default',
          Datacenter: 'dc1',
          MeshGateway: {},
          Subset: { Filter: 'Service.Meta.version == "2"', OnlyPassing: true },
          TransparentProxy: {},
          ConnectTimeout: '3s',
        },
      },
      AutoVirtualIPs: null,
      ManualVirtualIPs: null,
    },
  };
}

/** `body()` with `edit` applied to its `Chain`. */
function edited(edit: (chain: Json) => void): { Chain: Json } {
  const b = body();
  edit(b.Chain);
  return b;
}

/** The object at `path` (keys) under `chain`. */
function at(chain: Json, ...path: (string | number)[]): Json {
  let o: unknown = chain;
  for (const k of path) o = (o as Json)[k as string];
  return o as Json;
}

/** The `MESH_CONFIG_INVALID` `chainFromConsul` throws for `b`. */
function rejection(b: unknown): MeshError {
  try {
    chainFromConsul(b);
  } catch (error) {
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID'), String(error)).toBe(true);
    return error as MeshError;
  }
  throw new Error('the chain was accepted');
}

const resolverOf = (c: RoutingChain, id = 'web.default.default.dc1') => c.resolvers.get(id)!;
const get = (path: string, headers: Record<string, string> = {}) => ({ method: 'GET', path, headers });

describe('chainFromConsul: a malformed duration refuses the chain', () => {
  it('reads the durations Consul sends: strings for ConnectTimeout, integer nanoseconds for RequestTimeout', () => {
    const c = chainFromConsul(body());
    expect(resolverOf(c).requestTimeoutMs).toBe(1000);
    expect(resolverOf(c).connectTimeoutMs).toBe(3000);
    expect(c.targets.get('web.default.default.dc1')?.connectTimeoutMs).toBe(3000);
    expect(route(c, get('/v2/x', { 'x-canary': '1' }), seededRandom(1)).requestTimeoutMs).toBe(5000);
  });

  it('Resolver.RequestTimeout "abc" (was 1000000000) is refused, naming the field and the value', () => {
    const error = rejection(
      edited((c) => {
        at(c, 'Nodes', RESOLVER, 'Resolver').RequestTimeout = 'abc';
      }),
    );
    const field = `discovery-chain/web Nodes["${RESOLVER}"].Resolver.RequestTimeout`;
    expect(error.message).toContain(`${field}: expected a Go duration`);
    expect(error.message).toContain('(got "abc")');
    expect(error.details.issues).toEqual([expect.objectContaining({ field, value: 'abc' })]);
  });

  it('a target’s ConnectTimeout "abc" is refused, not read as 5 s', () => {
    const error = rejection(
      edited((c) => {
        at(c, 'Targets', 'web.default.default.dc1').ConnectTimeout = 'abc';
      }),
    );
    expect(error.details.issues).toEqual([
      expect.objectContaining({
        field: 'discovery-chain/web Targets["web.default.default.dc1"].ConnectTimeout',
        value: 'abc',
      }),
    ]);
  });

  const malformed: [string, unknown][] = [
    ['not a duration', 'abc'],
    ['a number without a unit', '5'],
    ['a negative string', '-5s'],
    ['an empty string', ''],
    ['a negative number', -1_000_000_000],
    ['a boolean', true],
    ['null', null],
    ['an object', {}],
    ['a list', ['5s']],
  ];
  const fields: [string, (c: Json) => Json, string, string][] = [
    [
      'Resolver.RequestTimeout',
      (c) => at(c, 'Nodes', RESOLVER, 'Resolver'),
      'RequestTimeout',
      `Nodes["${RESOLVER}"].Resolver.RequestTimeout`,
    ],
    [
      'Resolver.ConnectTimeout',
      (c) => at(c, 'Nodes', RESOLVER, 'Resolver'),
      'ConnectTimeout',
      `Nodes["${RESOLVER}"].Resolver.ConnectTimeout`,
    ],
    [
      'a target’s ConnectTimeout',
      (c) => at(c, 'Targets', 'v2.web.default.default.dc1'),
      'ConnectTimeout',
      'Targets["v2.web.default.default.dc1"].ConnectTimeout',
    ],
    [
      'a route’s RequestTimeout',
      (c) => at(c, 'Nodes', ROUTER, 'Routes', 0, 'Definition', 'Destination'),
      'RequestTimeout',
      `Nodes["${ROUTER}"].Routes[0].Definition.Destination.RequestTimeout`,
    ],
    [
      'a route’s IdleTimeout',
      (c) => at(c, 'Nodes', ROUTER, 'Routes', 0, 'Definition', 'Destination'),
      'IdleTimeout',
      `Nodes["${ROUTER}"].Routes[0].Definition.Destination.IdleTimeout`,
    ],
  ];
  for (const [name, holder, key, path] of fields) {
    for (const [what, value] of malformed) {
      it(`${name}: ${what} is refused`, () => {
        const error = rejection(
          edited((c) => {
            holder(c)[key] = value;
          }),
        );
        expect(error.details.issues).toEqual([
          expect.objectContaining({ field: `discovery-chain/web ${path}`, value }),
        ]);
      });
    }
  }

  it('a number too large for a double (Infinity once parsed) is refused', () => {
    const text = JSON.stringify(body()).replace('"RequestTimeout":1000000000', '"RequestTimeout":1e999');
    const error = rejection(JSON.parse(text));
    expect(error.details.issues?.[0]?.field).toBe(
      `discovery-chain/web Nodes["${RESOLVER}"].Resolver.RequestTimeout`,
    );
  });

  it('accepts both encodings and Go’s duration syntax; zero and absent keep the defaults', () => {
    const read = (connect: unknown, request: unknown) =>
      resolverOf(
        chainFromConsul(
          edited((c) => {
            const r = at(c, 'Nodes', RESOLVER, 'Resolver');
            if (connect === undefined) delete r.ConnectTimeout;
            else r.ConnectTimeout = connect;
            if (request === undefined) delete r.RequestTimeout;
            else r.RequestTimeout = request;
          }),
        ),
      );
    expect(read('1m30s', '1.5s')).toMatchObject({ connectTimeoutMs: 90_000, requestTimeoutMs: 1500 });
    expect(read(2_000_000_000, 250_000_000)).toMatchObject({ connectTimeoutMs: 2000, requestTimeoutMs: 250 });
    expect(read('0', 0)).toMatchObject({ connectTimeoutMs: 5000, requestTimeoutMs: undefined });
    expect(read('0s', '0s')).toMatchObject({ connectTimeoutMs: 5000, requestTimeoutMs: undefined });
    expect(read(undefined, undefined)).toMatchObject({ connectTimeoutMs: 5000, requestTimeoutMs: undefined });
    const noTargetTimeout = chainFromConsul(
      edited((c) => {
        delete at(c, 'Targets', 'web.default.default.dc1').ConnectTimeout;
      }),
    );
    expect(noTargetTimeout.targets.get('web.default.default.dc1')?.connectTimeoutMs).toBe(5000);
  });
});

describe('chainFromConsul: other malformed fields refuse the chain too', () => {
  const cases: [string, (c: Json) => void, string, unknown][] = [
    [
      'Subset.OnlyPassing "true"',
      (c) => {
        at(c, 'Targets', 'v2.web.default.default.dc1', 'Subset').OnlyPassing = 'true';
      },
      'Targets["v2.web.default.default.dc1"].Subset.OnlyPassing',
      'true',
    ],
    [
      'Subset.Filter not a string',
      (c) => {
        at(c, 'Targets', 'v2.web.default.default.dc1', 'Subset').Filter = 2;
      },
      'Targets["v2.web.default.default.dc1"].Subset.Filter',
      2,
    ],
    [
      'Subset not an object',
      (c) => {
        at(c, 'Targets', 'v2.web.default.default.dc1').Subset = 'v2';
      },
      'Targets["v2.web.default.default.dc1"].Subset',
      'v2',
    ],
    [
      'a target’s Service not a string',
      (c) => {
        at(c, 'Targets', 'web.default.default.dc1').Service = 7;
      },
      'Targets["web.default.default.dc1"].Service',
      7,
    ],
    [
      'a target’s Datacenter not a string',
      (c) => {
        at(c, 'Targets', 'web.default.default.dc1').Datacenter = ['dc1'];
      },
      'Targets["web.default.default.dc1"].Datacenter',
      ['dc1'],
    ],
    [
      'Resolver.Default "yes"',
      (c) => {
        at(c, 'Nodes', RESOLVER, 'Resolver').Default = 'yes';
      },
      `Nodes["${RESOLVER}"].Resolver.Default`,
      'yes',
    ],
    [
      'the chain’s Default 1',
      (c) => {
        c.Default = 1;
      },
      'Default',
      1,
    ],
    [
      'the chain’s Protocol not a string',
      (c) => {
        c.Protocol = 7;
      },
      'Protocol',
      7,
    ],
    [
      'Failover not an object',
      (c) => {
        at(c, 'Nodes', V2, 'Resolver').Failover = 'web';
      },
      `Nodes["${V2}"].Resolver.Failover`,
      'web',
    ],
    [
      'Failover.Targets not a list',
      (c) => {
        at(c, 'Nodes', V2, 'Resolver', 'Failover').Targets = 'web.default.default.dc1';
      },
      `Nodes["${V2}"].Resolver.Failover.Targets`,
      'web.default.default.dc1',
    ],
    [
      'a failover target ID not a string',
      (c) => {
        at(c, 'Nodes', V2, 'Resolver', 'Failover').Targets = [7];
      },
      `Nodes["${V2}"].Resolver.Failover.Targets[0]`,
      7,
    ],
    [
      'LoadBalancer not an object',
      (c) => {
        at(c, 'Nodes', RESOLVER).LoadBalancer = 'random';
      },
      `Nodes["${RESOLVER}"].LoadBalancer`,
      'random',
    ],
    [
      'LoadBalancer.Policy unknown',
      (c) => {
        at(c, 'Nodes', RESOLVER, 'LoadBalancer').Policy = 'fastest';
      },
      `Nodes["${RESOLVER}"].LoadBalancer.Policy`,
      'fastest',
    ],
    [
      'ChoiceCount not a number',
      (c) => {
        at(c, 'Nodes', RESOLVER, 'LoadBalancer', 'LeastRequestConfig').ChoiceCount = 'abc';
      },
      `Nodes["${RESOLVER}"].LoadBalancer.LeastRequestConfig.ChoiceCount`,
      'abc',
    ],
    [
      'HashPolicies not a list',
      (c) => {
        at(c, 'Nodes', RESOLVER, 'LoadBalancer').HashPolicies = 'header';
      },
      `Nodes["${RESOLVER}"].LoadBalancer.HashPolicies`,
      'header',
    ],
    [
      'a split Weight "90"',
      (c) => {
        at(c, 'Nodes', SPLITTER, 'Splits', 0).Weight = '90';
      },
      `Nodes["${SPLITTER}"].Splits[0].Weight`,
      '90',
    ],
    [
      'a negative split Weight',
      (c) => {
        at(c, 'Nodes', SPLITTER, 'Splits', 0).Weight = -10;
      },
      `Nodes["${SPLITTER}"].Splits[0].Weight`,
      -10,
    ],
    [
      'a split Weight over 100',
      (c) => {
        at(c, 'Nodes', SPLITTER, 'Splits', 0).Weight = 190;
      },
      `Nodes["${SPLITTER}"].Splits[0].Weight`,
      190,
    ],
    [
      'a split’s header Remove not a list',
      (c) => {
        at(c, 'Nodes', SPLITTER, 'Splits', 0, 'Definition', 'RequestHeaders').Remove = 'x-a';
      },
      `Nodes["${SPLITTER}"].Splits[0].Definition.RequestHeaders.Remove`,
      'x-a',
    ],
    [
      'a route Definition not an object',
      (c) => {
        at(c, 'Nodes', ROUTER, 'Routes', 0).Definition = 'v2';
      },
      `Nodes["${ROUTER}"].Routes[0].Definition`,
      'v2',
    ],
    [
      'NumRetries "3"',
      (c) => {
        at(c, 'Nodes', ROUTER, 'Routes', 0, 'Definition', 'Destination').NumRetries = '3';
      },
      `Nodes["${ROUTER}"].Routes[0].Definition.Destination.NumRetries`,
      '3',
    ],
    [
      'NumRetries 1.5',
      (c) => {
        at(c, 'Nodes', ROUTER, 'Routes', 0, 'Definition', 'Destination').NumRetries = 1.5;
      },
      `Nodes["${ROUTER}"].Routes[0].Definition.Destination.NumRetries`,
      1.5,
    ],
    [
      'RetryOnConnectFailure "true"',
      (c) => {
        at(c, 'Nodes', ROUTER, 'Routes', 0, 'Definition', 'Destination').RetryOnConnectFailure = 'true';
      },
      `Nodes["${ROUTER}"].Routes[0].Definition.Destination.RetryOnConnectFailure`,
      'true',
    ],
    [
      'RetryOn a string',
      (c) => {
        at(c, 'Nodes', ROUTER, 'Routes', 0, 'Definition', 'Destination').RetryOn = '5xx';
      },
      `Nodes["${ROUTER}"].Routes[0].Definition.Destination.RetryOn`,
      '5xx',
    ],
    [
      'RetryOnStatusCodes of strings',
      (c) => {
        at(c, 'Nodes', ROUTER, 'Routes', 0, 'Definition', 'Destination').RetryOnStatusCodes = ['503'];
      },
      `Nodes["${ROUTER}"].Routes[0].Definition.Destination.RetryOnStatusCodes[0]`,
      '503',
    ],
    [
      'a header matcher’s Present "false"',
      (c) => {
        at(c, 'Nodes', ROUTER, 'Routes', 0, 'Definition', 'Match', 'HTTP', 'Header', 0).Present = 'false';
      },
      `Nodes["${ROUTER}"].Routes[0].Definition.Match.HTTP.Header[0].Present`,
      'false',
    ],
    [
      'Methods a string',
      (c) => {
        at(c, 'Nodes', ROUTER, 'Routes', 0, 'Definition', 'Match', 'HTTP').Methods = 'GET';
      },
      `Nodes["${ROUTER}"].Routes[0].Definition.Match.HTTP.Methods`,
      'GET',
    ],
    [
      'a NextNode not a string',
      (c) => {
        at(c, 'Nodes', ROUTER, 'Routes', 0).NextNode = 3;
      },
      `Nodes["${ROUTER}"].Routes[0].NextNode`,
      3,
    ],
  ];
  for (const [name, edit, path, value] of cases) {
    it(`${name} is refused`, () => {
      const error = rejection(edited(edit));
      expect(error.details.issues).toEqual([
        expect.objectContaining({ field: `discovery-chain/web ${path}`, value }),
      ]);
    });
  }

  it('lists every problem of the chain in one error', () => {
    const error = rejection(
      edited((c) => {
        at(c, 'Nodes', RESOLVER, 'Resolver').RequestTimeout = 'abc';
        at(c, 'Targets', 'web.default.default.dc1').ConnectTimeout = -1;
        at(c, 'Nodes', SPLITTER, 'Splits', 1).Weight = '10';
      }),
    );
    expect(error.details.issues?.map((i) => i.field).sort()).toEqual(
      [
        `discovery-chain/web Nodes["${RESOLVER}"].Resolver.RequestTimeout`,
        `discovery-chain/web Nodes["${SPLITTER}"].Splits[1].Weight`,
        'discovery-chain/web Targets["web.default.default.dc1"].ConnectTimeout',
      ].sort(),
    );
    expect(error.message).toMatch(/^discovery chain: 3 problems:\n/);
  });

  it('an absent split Weight is 0, as Consul leaves a zero weight out', () => {
    const c = chainFromConsul(
      edited((chain) => {
        at(chain, 'Nodes', SPLITTER, 'Splits', 0).Weight = 100;
        delete at(chain, 'Nodes', SPLITTER, 'Splits', 1).Weight;
      }),
    );
    const random = seededRandom(7);
    for (let i = 0; i < 200; i++)
      expect(route(c, get('/'), random).target.id).toBe('web.default.default.dc1');
  });

  it('ignores fields it does not know, at every level', () => {
    const c = chainFromConsul(
      edited((chain) => {
        chain.EnvoyExtensions = [{ Name: 'x' }];
        at(chain, 'Nodes', ROUTER, 'Routes', 0, 'Definition', 'Match', 'HTTP').CaseInsensitive = true;
        at(chain, 'Nodes', ROUTER, 'Routes', 0, 'Definition', 'Destination').Future = { a: 1 };
        at(chain, 'Nodes', RESOLVER, 'Resolver').Policy = { Mode: 'default' };
        at(chain, 'Targets', 'web.default.default.dc1').External = false;
      }),
    );
    const d = route(c, get('/v2/x', { 'x-canary': '1' }), seededRandom(1));
    expect(d.target.id).toBe('v2.web.default.default.dc1');
    expect(d.retry?.numRetries).toBe(2);
  });
});

describe('a refused chain version leaves the last good one in force (Consul watch)', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('config_applied for the good chain, config_rejected naming the field for the bad one', async () => {
    const good = JSON.stringify(body());
    const bad = JSON.stringify(
      edited((c) => {
        at(c, 'Nodes', RESOLVER, 'Resolver').RequestTimeout = 'abc';
      }),
    );
    // First read: the good chain (index 10); then the bad one (index 11); then nothing new.
    const answers = [good, bad];
    const held = new Set<http.ServerResponse>();
    const server = http.createServer((req, res) => {
      if (!req.url?.startsWith('/v1/discovery-chain/web')) {
        res.writeHead(404).end();
        return;
      }
      const next = answers.shift();
      if (next === undefined) {
        held.add(res);
        return;
      }
      res.writeHead(200, {
        'content-type': 'application/json',
        'x-consul-index': answers.length ? '10' : '11',
      });
      res.end(next);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(async () => {
      for (const r of held) r.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const set: RoutingChain[] = [];
    const applied: number[] = [];
    const rejected: { version: number; error: MeshError }[] = [];
    const watcher = new ConsulChains(
      { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, minIntervalMs: 0 },
      {
        stage: {
          setChain: (_source: string, _service: string, c: RoutingChain) => set.push(c),
        } as unknown as RoutingStage,
        events: {
          applied: (_s, version) => applied.push(version),
          rejected: (_s, version, error) => rejected.push({ version, error }),
          failed: () => undefined,
          recovered: () => undefined,
        },
        clock: systemClock,
        logger: noopLogger,
      },
      60,
    );
    cleanups.push(() => watcher.close());
    watcher.watch('web');
    await expect.poll(() => rejected.length, { timeout: 10_000 }).toBe(1);
    expect(applied).toEqual([10]);
    expect(set).toHaveLength(1);
    expect(resolverOf(set[0]!).requestTimeoutMs).toBe(1000);
    expect(rejected[0]?.version).toBe(11);
    expect(rejected[0]?.error.code).toBe('MESH_CONFIG_INVALID');
    expect(rejected[0]?.error.message).toContain(
      `discovery-chain/web Nodes["${RESOLVER}"].Resolver.RequestTimeout: expected a Go duration`,
    );
  });
});
