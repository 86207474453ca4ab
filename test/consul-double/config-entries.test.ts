import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { seededRandom } from '@proxyless/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RouteDecision, RoutingChain } from '../../packages/mesh/src/routing/chain.js';
import { compileRoutingConfig } from '../../packages/mesh/src/routing/compile.js';
import { chainFromConsul } from '../../packages/mesh/src/routing/consul-chain.js';
import { type RouteRequest, route } from '../../packages/mesh/src/routing/router.js';
import { ConfigEntryStore, handleConfigRequest } from './config-entries.js';

let server: Server;
let base = '';
let raft = 10;
const freshStore = () =>
  new ConfigEntryStore({ datacenter: 'dc1', nextIndex: () => ++raft, defaultWaitMs: 2000 });
let store = freshStore();

beforeAll(async () => {
  server = createServer((req, res) => {
    const ctx = {
      store,
      headers: { 'X-Consul-Default-ACL-Policy': 'allow' },
      authorize: (r: { headers: Record<string, string | string[] | undefined> }, access: string) =>
        r.headers['x-consul-token'] === 'reader' && access === 'write'
          ? "Permission denied: token with AccessorID 'r' lacks permission 'service:write'"
          : undefined,
    };
    if (!handleConfigRequest(req, res, ctx)) {
      res.writeHead(404).end('Invalid URL path: not a recognized HTTP API endpoint\n');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  store.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

async function put(entry: unknown, query = ''): Promise<{ status: number; text: string }> {
  const res = await fetch(`${base}/v1/config${query}`, { method: 'PUT', body: JSON.stringify(entry) });
  return { status: res.status, text: await res.text() };
}

async function chainOf(service: string): Promise<RoutingChain> {
  const res = await fetch(`${base}/v1/discovery-chain/${service}`);
  expect(res.status).toBe(200);
  return chainFromConsul(await res.json());
}

/** Everything a routing decision tells the data plane, as plain data. */
function view(d: RouteDecision): unknown {
  return {
    routeIndex: d.routeIndex,
    splitIndex: d.splitIndex,
    target: {
      id: d.target.id,
      filter: d.target.filter,
      onlyPassing: d.target.onlyPassing,
      ct: d.target.connectTimeoutMs,
    },
    failover: d.resolver.failover.map((t) => t.id),
    connectTimeoutMs: d.resolver.connectTimeoutMs,
    loadBalancer: d.resolver.loadBalancer,
    rewrite: [d.rewriteFrom, d.prefixRewrite],
    requestHeaders: d.requestHeaders,
    responseHeaders: d.responseHeaders,
    timeouts: [d.requestTimeoutMs, d.idleTimeoutMs],
    retry: d.retry,
  };
}

const REQUESTS: RouteRequest[] = [
  { method: 'GET', path: '/', headers: {} },
  { method: 'GET', path: '/admin/users?x=1', headers: {} },
  { method: 'POST', path: '/v2/pay', headers: { 'x-debug': '1' } },
  { method: 'GET', path: '/api?beta=1', headers: { 'x-canary': '1' } },
  { method: 'DELETE', path: '/v2', headers: { 'x-debug': '0' } },
];

/** Route the same requests with the same random draws through both chains. */
function expectSameRouting(fromConsul: RoutingChain, ours: RoutingChain): void {
  expect(fromConsul.protocol).toBe(ours.protocol);
  expect(fromConsul.isDefault).toBe(ours.isDefault);
  expect(fromConsul.routes.length).toBe(ours.routes.length);
  for (const r of REQUESTS) {
    const a = seededRandom(3);
    const b = seededRandom(3);
    for (let i = 0; i < 200; i++) expect(view(route(fromConsul, r, a))).toEqual(view(route(ours, r, b)));
  }
}

// Consul's documented examples (service-router, service-splitter, service-resolver pages).
const EXAMPLES: Record<string, unknown[]> = {
  'canary split': [
    { Kind: 'service-defaults', Name: 'billing', Protocol: 'http' },
    {
      Kind: 'service-resolver',
      Name: 'billing',
      DefaultSubset: 'v1',
      Subsets: { v1: { Filter: 'Service.Meta.version == v1' }, v2: { Filter: 'Service.Meta.version == v2' } },
    },
    {
      Kind: 'service-splitter',
      Name: 'billing',
      Splits: [
        { Weight: 90, ServiceSubset: 'v1' },
        { Weight: 10, ServiceSubset: 'v2', RequestHeaders: { Set: { 'x-canary': 'true' } } },
      ],
    },
  ],
  'header routing': [
    { Kind: 'service-defaults', Name: 'web', Protocol: 'http' },
    {
      Kind: 'service-resolver',
      Name: 'web',
      Subsets: { canary: { Filter: '"canary" in Service.Tags', OnlyPassing: true } },
    },
    {
      Kind: 'service-router',
      Name: 'web',
      Routes: [
        {
          Match: { HTTP: { Header: [{ Name: 'x-debug', Exact: '1' }] } },
          Destination: { ServiceSubset: 'canary' },
        },
        {
          Match: { HTTP: { QueryParam: [{ Name: 'beta', Present: true }] } },
          Destination: {
            ServiceSubset: 'canary',
            RequestTimeout: '3s',
            NumRetries: 2,
            RetryOnConnectFailure: true,
          },
        },
      ],
    },
  ],
  'path routing to another service': [
    { Kind: 'service-defaults', Name: 'web', Protocol: 'http' },
    { Kind: 'service-defaults', Name: 'admin', Protocol: 'http' },
    {
      Kind: 'service-router',
      Name: 'web',
      Routes: [
        { Match: { HTTP: { PathPrefix: '/admin' } }, Destination: { Service: 'admin', PrefixRewrite: '/' } },
      ],
    },
  ],
  failover: [
    {
      Kind: 'service-resolver',
      Name: 'web',
      ConnectTimeout: '15s',
      RequestTimeout: '10s',
      Failover: { '*': { Datacenters: ['dc3', 'dc4'] } },
    },
    {
      Kind: 'service-resolver',
      Name: 'db',
      Subsets: { primary: { Filter: 'Service.Meta.role == primary' } },
      DefaultSubset: 'primary',
      Failover: { '*': { Service: 'db-backup' } },
    },
    {
      Kind: 'service-resolver',
      Name: 'db-backup',
      LoadBalancer: { Policy: 'least_request', LeastRequestConfig: { ChoiceCount: 3 } },
    },
  ],
  // A failover target is resolved through its own resolver (Consul's getResolverNode): b redirects
  // to c, so web fails over to c; d's DefaultSubset applies to it as a failover target.
  'failover to a service whose resolver redirects': [
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
    },
  ],
  'payments (consul-api.md §6.4–6.6) with a nested splitter and a redirect': [
    { Kind: 'service-defaults', Name: 'payments', Protocol: 'http' },
    { Kind: 'service-defaults', Name: 'ledger', Protocol: 'http' },
    { Kind: 'service-defaults', Name: 'legacy', Protocol: 'http' },
    {
      Kind: 'service-resolver',
      Name: 'payments',
      DefaultSubset: 'v1',
      Subsets: {
        v1: { Filter: 'Service.Meta.version == "1"' },
        v2: { Filter: 'Service.Meta.version == "2"', OnlyPassing: true },
      },
      ConnectTimeout: '3s',
      LoadBalancer: {
        Policy: 'ring_hash',
        RingHashConfig: { MinimumRingSize: 1024 },
        HashPolicies: [{ Field: 'header', FieldValue: 'x-user' }],
      },
    },
    {
      Kind: 'service-router',
      Name: 'payments',
      Routes: [
        {
          Match: { HTTP: { PathPrefix: '/v2', Methods: ['GET', 'POST'] } },
          Destination: { ServiceSubset: 'v2', ResponseHeaders: { Set: { 'x-served-by': 'v2' } } },
        },
        {
          Match: { HTTP: { PathPrefix: '/api', Header: [{ Name: 'x-canary', Present: true }] } },
          Destination: { Service: 'ledger' },
        },
      ],
    },
    {
      Kind: 'service-splitter',
      Name: 'payments',
      Splits: [
        { Weight: 50, ServiceSubset: 'v1' },
        { Weight: 50, Service: 'ledger' },
      ],
    },
    { Kind: 'service-splitter', Name: 'ledger', Splits: [{ Weight: 80 }, { Weight: 20, Service: 'legacy' }] },
    { Kind: 'service-resolver', Name: 'legacy', Redirect: { Service: 'payments', ServiceSubset: 'v1' } },
  ],
};

describe('Consul double: config entries and discovery chain', () => {
  for (const [name, entries] of Object.entries(EXAMPLES)) {
    it(`routes "${name}" identically through Consul's compiled chain and our compiler`, async () => {
      store.close();
      store = freshStore();
      for (const e of entries) expect((await put(e)).text).toBe('true');
      const ours = compileRoutingConfig(entries);
      for (const service of ours.services) expectSameRouting(await chainOf(service), ours.chain(service));
    });
  }

  it('fails over to where a failover target’s own resolver redirects (Consul compile.go getResolverNode)', async () => {
    store.close();
    store = freshStore();
    for (const e of EXAMPLES['failover to a service whose resolver redirects']!)
      expect((await put(e)).text).toBe('true');
    const chain = await chainOf('web');
    expect(chain.startDecisions[0]?.resolver.failover.map((t) => t.id)).toEqual([
      'c.default.default.dc1',
      'v1.d.default.default.dc1',
    ]);
  });

  it('keeps every example when all are written to one store', async () => {
    store.close();
    store = freshStore();
    for (const e of [
      ...EXAMPLES['canary split']!,
      ...EXAMPLES['header routing']!,
      ...EXAMPLES['payments (consul-api.md §6.4–6.6) with a nested splitter and a redirect']!,
    ]) {
      expect((await put(e)).text).toBe('true');
    }
  });

  it('answers 404 with index headers for a missing entry, and lists by kind', async () => {
    const res = await fetch(`${base}/v1/config/service-router/nope`);
    expect(res.status).toBe(404);
    expect(await res.text()).toBe('Config entry not found for "service-router" / "nope"');
    expect(Number(res.headers.get('x-consul-index'))).toBeGreaterThan(0);
    const list = (await (await fetch(`${base}/v1/config/service-resolver`)).json()) as { Name: string }[];
    expect(list.map((e) => e.Name)).toContain('payments');
    expect((await fetch(`${base}/v1/config/bogus-kind`)).status).toBe(500);
  });

  it('rejects L7 entries on a tcp service with Consul’s text and stores nothing', async () => {
    const r = await put({ Kind: 'service-router', Name: 'tcp-only', Routes: [] });
    expect(r).toEqual({
      status: 500,
      text: 'discovery chain "tcp-only" uses a protocol "tcp" that does not permit advanced routing or splitting behavior',
    });
    expect((await fetch(`${base}/v1/config/service-router/tcp-only`)).status).toBe(404);
    // Deleting the protocol that a router depends on is refused the same way.
    const del = await fetch(`${base}/v1/config/service-defaults/web`, { method: 'DELETE' });
    expect(del.status).toBe(500);
  });

  it('rejects unknown kinds and fields with 400, bad values with 500', async () => {
    expect(await put({ Kind: 'service-routr', Name: 'x' })).toEqual({
      status: 400,
      text: 'Request decoding failed: invalid config entry kind: service-routr',
    });
    expect((await put({ Kind: 'service-resolver', Name: 'x', Bogus: 1 })).status).toBe(400);
    expect(await put({ Kind: 'service-splitter', Name: 'billing', Splits: [{ Weight: 90 }] })).toEqual({
      status: 500,
      text: 'the sum of all split weights must be 100, not 90',
    });
  });

  it('honours cas on write and delete', async () => {
    expect((await put({ Kind: 'service-resolver', Name: 'cas-svc' }, '?cas=0')).text).toBe('true');
    expect((await put({ Kind: 'service-resolver', Name: 'cas-svc' }, '?cas=0')).text).toBe('false');
    const e = (await (await fetch(`${base}/v1/config/service-resolver/cas-svc`)).json()) as {
      ModifyIndex: number;
    };
    expect(
      (
        await put(
          { Kind: 'service-resolver', Name: 'cas-svc', ConnectTimeout: '1s' },
          `?cas=${e.ModifyIndex}`,
        )
      ).text,
    ).toBe('true');
    const del = await fetch(`${base}/v1/config/service-resolver/cas-svc?cas=1`, { method: 'DELETE' });
    expect(await del.text()).toBe('false');
    expect(
      await (await fetch(`${base}/v1/config/service-resolver/cas-svc`, { method: 'DELETE' })).text(),
    ).toBe('{}');
  });

  it('blocks a chain read until the chain changes, not on unrelated writes', async () => {
    const first = await fetch(`${base}/v1/discovery-chain/billing`);
    const index = Number(first.headers.get('x-consul-index'));
    const started = Date.now();
    const blocked = fetch(`${base}/v1/discovery-chain/billing?index=${index}&wait=5s`);
    // An unrelated write moves the index but not billing's chain: the read keeps blocking.
    await put({ Kind: 'service-resolver', Name: 'unrelated' });
    store.touch();
    await put({
      Kind: 'service-splitter',
      Name: 'billing',
      Splits: [
        { Weight: 50, ServiceSubset: 'v1' },
        { Weight: 50, ServiceSubset: 'v2' },
      ],
    });
    const res = await blocked;
    expect(Number(res.headers.get('x-consul-index'))).toBeGreaterThan(index);
    const chain = chainFromConsul(await res.json());
    expect(chain.start.type === 'splitter' && chain.start.splits.map((s) => s.weight)).toEqual([50, 50]);
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it('times out a blocking read with 200 and the same index', async () => {
    const first = await fetch(`${base}/v1/config/service-resolver/billing`);
    const index = first.headers.get('x-consul-index');
    const res = await fetch(`${base}/v1/config/service-resolver/billing?index=${index}&wait=100ms`);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-consul-index')).toBe(index);
  });

  it('sorts intention sources by precedence and checks them with Consul’s texts', async () => {
    const entry = {
      Kind: 'service-intentions',
      Name: 'payments',
      Sources: [
        { Name: '*', Action: 'deny' },
        { Name: 'web', Action: 'allow' },
      ],
    };
    expect((await put(entry)).text).toBe('true');
    const read = (await (await fetch(`${base}/v1/config/service-intentions/payments`)).json()) as {
      Sources: { Name: string; Precedence: number }[];
    };
    expect(read.Sources.map((s) => [s.Name, s.Precedence])).toEqual([
      ['web', 9],
      ['*', 8],
    ]);
    expect(await put({ ...entry, Sources: [{ Name: 'web' }] })).toEqual({
      status: 500,
      text: "Sources[0].Action must be set to 'allow' or 'deny'",
    });
    expect((await put({ ...entry, Sources: [] })).text).toBe('At least one source is required');
  });

  it('asks the ACL hook before a write', async () => {
    const res = await fetch(`${base}/v1/config`, {
      method: 'PUT',
      headers: { 'x-consul-token': 'reader' },
      body: JSON.stringify({ Kind: 'service-resolver', Name: 'acl' }),
    });
    expect(res.status).toBe(403);
    expect(await res.text()).toMatch(/^Permission denied/);
    expect(
      (await fetch(`${base}/v1/config/service-resolver/acl`, { headers: { 'x-consul-token': 'reader' } }))
        .status,
    ).toBe(404);
  });

  it('answers 500 when connect is disabled', async () => {
    store.connectEnabled = false;
    const res = await fetch(`${base}/v1/discovery-chain/web`);
    store.connectEnabled = true;
    expect(res.status).toBe(500);
    expect(await res.text()).toBe('Connect must be enabled in order to use this endpoint');
  });
});
