/**
 * How the mesh follows Consul's discovery chain: the same blocking-query rules as the resolver
 * (consul-api.md §2.3) and the same process-wide long-poll cap. Runs on a VirtualClock; a small
 * scripted front end before the Consul double answers the chain reads where a test needs answers
 * Consul only gives in odd situations (no index, index 0, an index going backwards, 429s).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { VirtualClock } from '@proxyless/core/testing';
import { createMesh, type Mesh, type MeshEvent } from 'proxyless';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createConsulResolver } from '../../../packages/discovery/src/consul/resolver.js';
import { ConsulChains } from '../../../packages/mesh/src/routing-sources.js';
import type { RoutingStage } from '../../../packages/mesh/src/routing-stage.js';
import { type ConsulDouble, startConsulDouble } from '../../consul-double/server.js';
import { type Servers, startServers, webEntries } from './scenario.js';

/** A scripted answer to a chain read; `hold` leaves it open until the front end closes. */
type ChainAnswer =
  | { status?: number; index?: string | null; body?: string; headers?: Record<string, string> }
  | 'hold';

interface ChainRead {
  /** Virtual time when it arrived. */
  at: number;
  /** Its `index` parameter (`null` when absent). */
  index: string | null;
}

/** An HTTP front end: chain reads answered by `script`, everything else passed to the double. */
async function frontEnd(
  double: ConsulDouble,
  clock: VirtualClock,
  script: (n: number) => ChainAnswer,
): Promise<{ address: string; reads: ChainRead[]; close(): Promise<void> }> {
  const reads: ChainRead[] = [];
  const held = new Set<http.ServerResponse>();
  const upstream = new URL(double.url);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname.startsWith('/v1/discovery-chain/')) {
      reads.push({ at: clock.now(), index: url.searchParams.get('index') });
      const answer = script(reads.length);
      if (answer === 'hold') {
        held.add(res);
        return;
      }
      const headers: Record<string, string> = { 'content-type': 'application/json', ...answer.headers };
      if (answer.index !== null) headers['x-consul-index'] = answer.index ?? '30';
      res.writeHead(answer.status ?? 200, headers);
      res.end(answer.body ?? '');
      return;
    }
    const up = http.request(
      {
        host: upstream.hostname,
        port: upstream.port,
        path: req.url,
        method: req.method,
        headers: req.headers,
      },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    reads,
    close: async () => {
      for (const res of held) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Move virtual time to the next timer (or 1 s when none is due) until `done()`. */
async function advanceUntil(clock: VirtualClock, done: () => boolean, timeout = 10_000): Promise<void> {
  await expect
    .poll(
      async () => {
        if (!done() && !(await clock.next())) await clock.advance(1_000);
        return done();
      },
      { timeout, interval: 20 },
    )
    .toBe(true);
}

describe('the discovery-chain watch follows Consul’s blocking-query rules (Consul API double)', () => {
  let consul: ConsulDouble;
  let servers: Servers;
  let mesh: Mesh | undefined;
  let chainBody: string;
  const cleanups: Array<() => Promise<void>> = [];
  const put = async (base: string, path: string, body: unknown): Promise<void> => {
    const res = await fetch(`${base}${path}`, { method: 'PUT', body: JSON.stringify(body) });
    expect(res.status, `${path}: ${await res.text()}`).toBe(200);
  };
  const setUp = async (c: ConsulDouble, v2Weight: number): Promise<void> => {
    for (const [id, s, v] of [
      ['web-v1', servers.v1, 'v1'],
      ['web-v2', servers.v2, 'v2'],
    ] as const)
      await put(c.url, '/v1/agent/service/register', {
        ID: id,
        Name: 'web',
        Address: s.host,
        Port: s.port,
        Meta: { version: v },
      });
    for (const e of webEntries(v2Weight)) await put(c.url, '/v1/config', e);
  };
  const consulApplied = (m: Mesh): MeshEvent[] => {
    const list: MeshEvent[] = [];
    m.onEvent((e) => {
      if (e.type === 'config_applied' && e.source === 'consul') list.push(e);
    });
    return list;
  };
  const call = async (m: Mesh, url = 'http://web/'): Promise<string | null> => {
    const res = await m.fetch(url);
    await res.arrayBuffer();
    return res.headers.get('x-served-by');
  };

  beforeAll(async () => {
    [consul, servers] = await Promise.all([startConsulDouble(), startServers()]);
    await setUp(consul, 0);
    chainBody = await (await fetch(`${consul.url}/v1/discovery-chain/web`)).text();
  });
  afterEach(async () => {
    await mesh?.close();
    mesh = undefined;
    for (const c of cleanups.splice(0)) await c();
  });
  afterAll(async () => {
    await servers?.close();
    await consul?.close();
  });

  it('shares the process-wide long-poll cap with the resolver: no 429 from Consul’s connection limit', async () => {
    // 3 services, each with a health watch and a chain watch, and a cap of 3 blocking queries.
    // Without the shared cap that is 6 blocking connections (+ pools) to an agent taking 6.
    const double = await startConsulDouble({ maxConnsPerClient: 6 });
    const names = ['alpha', 'beta', 'gamma'];
    for (const n of names)
      await put(double.url, '/v1/agent/service/register', {
        ID: n,
        Name: n,
        Address: '127.0.0.1',
        Port: 9,
      });
    const clock = new VirtualClock();
    const problems: string[] = [];
    const logger = {
      debug() {},
      info() {},
      warn(message: string, fields?: Record<string, unknown>) {
        problems.push(`${message} ${String((fields?.error as Error)?.message ?? fields?.error ?? '')}`);
      },
      error(message: string) {
        problems.push(message);
      },
    };
    const options = { address: double.address, maxLongPolls: 3, waitMs: 2_000, minIntervalMs: 0 };
    const resolver = createConsulResolver({ ...options, clock, logger });
    const chains = new Set<string>();
    const watcher = new ConsulChains(
      options,
      {
        stage: { setChain: () => undefined } as unknown as RoutingStage,
        events: { applied: (_s, _v, service) => chains.add(service ?? ''), rejected: () => undefined },
        clock,
        logger,
      },
      2,
    );
    cleanups.push(async () => {
      await watcher.close();
      await resolver.close();
      await double.close();
    });
    const resolved = new Set<string>();
    for (const n of names) {
      resolver.watch(n, (u) => {
        if (u.kind === 'endpoints') resolved.add(n);
      });
      watcher.watch(n);
    }
    await expect.poll(() => resolved.size + chains.size, { timeout: 10_000 }).toBe(6);
    // Every watch has blocked at least once since (the cap makes them take turns).
    await expect
      .poll(
        () =>
          names.every(
            (n) =>
              double.requests.filter((r) => r.path.endsWith(`/${n}`) && r.query.has('index')).length >= 2 &&
              double.requests.some((r) => r.path === `/v1/discovery-chain/${n}` && r.query.has('index')),
          ),
        { timeout: 15_000 },
      )
      .toBe(true);
    expect(problems.filter((p) => /429|too many/i.test(p))).toEqual([]);
  });

  it('backs off from a 5 s base after a 429 and honours Retry-After', async () => {
    const clock = new VirtualClock();
    const fe = await frontEnd(consul, clock, (n) =>
      n === 1
        ? { status: 429, index: null }
        : n === 3
          ? { status: 429, index: null, headers: { 'Retry-After': '30' } }
          : n === 2
            ? { index: '30', body: chainBody }
            : 'hold',
    );
    cleanups.push(fe.close);
    mesh = createMesh({ env: { CONSUL_HTTP_ADDR: fe.address }, clock });
    const m = mesh;
    const applied = consulApplied(m);
    await call(m);
    await advanceUntil(clock, () => fe.reads.length >= 2);
    // The first retry after a 429: uniform in [2.5 s, 5 s), not the 0.5–1 s of other errors.
    expect(fe.reads[1]!.at - fe.reads[0]!.at).toBeGreaterThanOrEqual(2_500);
    await expect.poll(() => applied.length).toBe(1);
    // The next read is blocking (index 30) and gets a 429 with Retry-After: 30 s.
    await advanceUntil(clock, () => fe.reads.length >= 4, 20_000);
    expect(fe.reads[2]!.index).toBe('30');
    expect(fe.reads[3]!.at - fe.reads[2]!.at).toBeGreaterThanOrEqual(30_000);
    // After an error the read is a plain one.
    expect(fe.reads[3]!.index).toBeNull();
  });
});
