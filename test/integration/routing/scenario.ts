/**
 * The routing scenario every source runs (file, etcd, Consul double): Consul's documented examples
 * — canary split, header routing, path routing to another service with PrefixRewrite, failover —
 * through `mesh.fetch` against real loopback servers.
 */
import type http from 'node:http';
import type { Mesh, MeshEvent } from 'proxyless';
import { expect } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

/** Body `<name> <path>`, headers `x-served-by` and `x-seen-host` (the Host the server saw). */
function echo(req: http.IncomingMessage, res: http.ServerResponse, s: TestServer): void {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, {
      'x-served-by': s.name,
      'x-seen-host': String(req.headers.host),
      'x-seen-canary-tag': String(req.headers['x-routed'] ?? ''),
      'content-type': 'text/plain',
    });
    res.end(`${s.name} ${req.url}`);
  });
}

export interface Servers {
  v1: TestServer;
  v2: TestServer;
  admin: TestServer;
  close(): Promise<void>;
}

export async function startServers(): Promise<Servers> {
  const [v1, v2, admin] = await Promise.all(['v1', 'v2', 'admin'].map((n) => startServer(n, echo)));
  return {
    v1: v1!,
    v2: v2!,
    admin: admin!,
    close: async () => {
      await Promise.all([v1!, v2!, admin!].map((s) => s.close()));
    },
  };
}

/** `web`'s service-resolver: subsets v1 and v2 by `Meta.version`, v1 by default. */
export function versionResolver(extra: Record<string, unknown> = {}) {
  return {
    Kind: 'service-resolver',
    Name: 'web',
    DefaultSubset: 'v1',
    Subsets: {
      v1: { Filter: 'Service.Meta.version == "v1"' },
      v2: { Filter: 'Service.Meta.version == "v2"' },
    },
    ...extra,
  } as const;
}

/** `web`'s service-router: `x-version: 2` to subset v2 (everything else to the resolver's default). */
export function versionHeaderRouter() {
  return {
    Kind: 'service-router',
    Name: 'web',
    Routes: [
      {
        Match: { HTTP: { Header: [{ Name: 'x-version', Exact: '2' }] } },
        Destination: { ServiceSubset: 'v2' },
      },
    ],
  } as const;
}

/** Consul's documented examples for `web`: subsets by `Meta.version`, a canary split, a header route and a path route. */
export function webEntries(v2Weight: number): unknown[] {
  return [
    { Kind: 'service-defaults', Name: 'web', Protocol: 'http' },
    { Kind: 'service-defaults', Name: 'admin', Protocol: 'http' },
    versionResolver({ Failover: { v1: { ServiceSubset: 'v2' } } }),
    {
      Kind: 'service-splitter',
      Name: 'web',
      Splits: [
        { Weight: 100 - v2Weight, ServiceSubset: 'v1' },
        { Weight: v2Weight, ServiceSubset: 'v2', RequestHeaders: { Set: { 'x-routed': 'canary' } } },
      ],
    },
    {
      Kind: 'service-router',
      Name: 'web',
      Routes: [
        {
          Match: { HTTP: { Header: [{ Name: 'x-canary', Exact: '1' }] } },
          Destination: { ServiceSubset: 'v2', ResponseHeaders: { Add: { 'x-route': 'canary-header' } } },
        },
        {
          Match: { HTTP: { PathPrefix: '/admin/' } },
          Destination: { Service: 'admin', PrefixRewrite: '/' },
        },
      ],
    },
  ];
}

/** Send `total` GETs (at most `concurrency` at once); count answers by server and failures. */
export async function load(
  mesh: Mesh,
  url: string,
  total: number,
  concurrency = 16,
  init: RequestInit = {},
): Promise<{ by: Record<string, number>; failed: number; errors: string[] }> {
  const by: Record<string, number> = {};
  let failed = 0;
  const errors: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < total) {
      next++;
      try {
        const res = await mesh.fetch(url, init);
        const name = res.headers.get('x-served-by') ?? `status ${res.status}`;
        await res.arrayBuffer();
        if (res.status !== 200) {
          failed++;
          if (errors.length < 5) errors.push(`status ${res.status}`);
        } else by[name] = (by[name] ?? 0) + 1;
      } catch (error) {
        failed++;
        if (errors.length < 5) errors.push(String((error as Error).cause ?? error));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { by, failed, errors };
}

/** Resolve on the next `config_applied` of `source` (bounded by the test timeout). */
export function applied(mesh: Mesh, source: string): Promise<MeshEvent> {
  return new Promise((resolve) => {
    const sub = mesh.onEvent((e) => {
      if (e.type === 'config_applied' && e.source === source) {
        sub.dispose();
        resolve(e);
      }
    });
  });
}

export function rejected(mesh: Mesh, source: string): Promise<MeshEvent & { type: 'config_rejected' }> {
  return new Promise((resolve) => {
    const sub = mesh.onEvent((e) => {
      if (e.type === 'config_rejected' && e.source === source) {
        sub.dispose();
        resolve(e);
      }
    });
  });
}

/**
 * Within five standard deviations of the expected share for `total` independent picks (a binomial
 * count): a wrong split (10 % sent as 20 %, 50 % as 40 %) still fails, while a correct one fails
 * about once in two million runs. A fixed 0.04 was 2.5 σ at 50 % of 1,000 — about one run in 80.
 */
export function expectShare(count: number, total: number, share: number): void {
  const tol = Math.max(0.005, 5 * Math.sqrt((share * (1 - share)) / total));
  const observed = count / total;
  expect(
    Math.abs(observed - share),
    `observed ${observed.toFixed(3)} for expected ${share}`,
  ).toBeLessThanOrEqual(tol);
}

/** The checks every source passes once its entries (with a 10 % canary) are in force. */
export async function checkRouting(mesh: Mesh): Promise<void> {
  // Canary split 90/10 over 1,200 requests.
  const split = await load(mesh, 'http://web/', 1200);
  expect(split.failed, split.errors.join('; ')).toBe(0);
  expectShare(split.by.v2 ?? 0, 1200, 0.1);
  expect(Object.keys(split.by).sort()).toEqual(['v1', 'v2']);

  // Header routing: x-canary: 1 → v2 only, with the route's response header.
  const canary = await load(mesh, 'http://web/', 100, 8, { headers: { 'x-canary': '1' } });
  expect(canary).toEqual({ by: { v2: 100 }, failed: 0, errors: [] });
  const one = await mesh.fetch('http://web/x', { headers: { 'x-canary': '1' } });
  expect(one.headers.get('x-route')).toBe('canary-header');
  expect(one.headers.get('x-seen-host')).toBe('web');
  await one.arrayBuffer();

  // Path routing to another service with PrefixRewrite; Host is the target service.
  const admin = await mesh.fetch('http://web/admin/users?id=7');
  expect(await admin.text()).toBe('admin /users?id=7');
  expect(admin.headers.get('x-seen-host')).toBe('admin');

  // Per-route and per-target counts.
  const routing = mesh.stats('web')?.routing;
  expect(routing?.routes['0']).toBe(101);
  expect(routing?.routes['1']).toBe(1);
  expect(routing?.targets['v2.web.default.default.dc1']).toBeGreaterThanOrEqual(101);
  expect(routing?.targets['admin.default.default.dc1']).toBe(1);
  expect(mesh.routes('web')?.routes.length).toBe(3);
}
