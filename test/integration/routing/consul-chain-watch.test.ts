/**
 * How the mesh follows Consul's discovery chain: the same blocking-query rules as the resolver
 * (consul-api.md §2.3) and the same process-wide long-poll cap. Runs on a VirtualClock; a small
 * scripted front end before the Consul double answers the chain reads where a test needs answers
 * Consul only gives in odd situations (no index, index 0, an index going backwards, 429s).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { VirtualClock } from '@proxyless/core/testing';
import { Registry } from 'prom-client';
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
  /** Its `index` parameter; `'plain'` when absent or 0 (a non-blocking read). */
  index: string;
}

/**
 * An HTTP front end: the n-th chain read gets `answers[n - 1]` (then `rest`), or, when `answers`
 * is a function, its answer for that read's service and index; everything else is passed to the
 * double.
 */
async function frontEnd(
  double: ConsulDouble,
  clock: VirtualClock,
  answers: ChainAnswer[] | ((service: string, index: string) => ChainAnswer),
  rest: ChainAnswer,
): Promise<{
  address: string;
  reads: ChainRead[];
  /** The held chain reads whose client is still waiting, by service. */
  openHolds(): string[];
  close(): Promise<void>;
}> {
  const reads: ChainRead[] = [];
  const held = new Set<http.ServerResponse>();
  const heldFor = new Map<http.ServerResponse, string>();
  const upstream = new URL(double.url);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname.startsWith('/v1/discovery-chain/')) {
      const index = url.searchParams.get('index');
      const read = { at: clock.now(), index: index === null || index === '0' ? 'plain' : index };
      reads.push(read);
      const service = decodeURIComponent(url.pathname.slice('/v1/discovery-chain/'.length));
      const answer =
        typeof answers === 'function' ? answers(service, read.index) : (answers[reads.length - 1] ?? rest);
      if (answer === 'hold') {
        held.add(res);
        heldFor.set(res, service);
        res.on('close', () => held.delete(res));
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
    openHolds: () => [...held].map((res) => heldFor.get(res) ?? ''),
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
    const send = () => fetch(`${base}${path}`, { method: 'PUT', body: JSON.stringify(body) });
    // A kept-alive connection to a double closed since (the restart test) fails once.
    const res = await send().catch(send);
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

  /** A mesh on a VirtualClock whose chain reads get `answers` (then `rest`); `web` called once. */
  const scripted = async (answers: ChainAnswer[], rest: ChainAnswer = 'hold') => {
    const clock = new VirtualClock();
    const fe = await frontEnd(consul, clock, answers, rest);
    cleanups.push(fe.close);
    const m = createMesh({ env: { CONSUL_HTTP_ADDR: fe.address }, clock });
    mesh = m;
    const applied = consulApplied(m);
    await call(m);
    return { clock, reads: fe.reads, applied };
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

  it('a destination released when idle releases its chain watch too; the next call starts it again', async () => {
    // Every chain read is held open (as a blocking query with nothing new). Calls to mistyped hosts create destinations (Consul may know any name); when
    // they are released, their chain watches must not stay behind, holding places under the
    // agent's cap on blocking queries for ever.
    const clock = new VirtualClock();
    const seen = new Set<string>();
    const fe = await frontEnd(consul, clock, [], 'hold');
    cleanups.push(fe.close);
    const m = createMesh({
      env: { CONSUL_HTTP_ADDR: fe.address },
      clock,
      destinationIdleTimeoutMs: 1_000,
    } as Parameters<typeof createMesh>[0] & { destinationIdleTimeoutMs: number });
    mesh = m;
    const typos = ['wbe', 'web2', 'wev'];
    for (const t of typos) {
      seen.add(t);
      await m.request(`http://${t}/`).then(
        (r) => r.body.dump(),
        () => undefined,
      );
    }
    await advanceUntil(clock, () => typos.every((t) => fe.openHolds().includes(t)));
    // Idle past the timeout: every destination is released, and with it every chain watch.
    await advanceUntil(clock, () => m.services().length === 0);
    await expect.poll(() => fe.openHolds().filter((s) => seen.has(s)), { timeout: 5_000 }).toEqual([]);
    // The next call builds the destination and its chain watch again.
    await m.request('http://wbe/').then(
      (r) => r.body.dump(),
      () => undefined,
    );
    await advanceUntil(clock, () => fe.openHolds().includes('wbe'));
  });

  it('a released chain watch takes its mesh_config_version series and /config_dump entry with it (probe45)', async () => {
    // Under Consul every mistyped single-label host gets a destination and a chain; once released,
    // its series and its /config_dump entry stayed for good (2,200 typos: 2,189 series, past the
    // services cap, and 2,200 entries).
    const clock = new VirtualClock();
    const typos = ['wbe', 'web2', 'wev'];
    const bodies = new Map(
      await Promise.all(
        typos.map(
          async (t) => [t, await (await fetch(`${consul.url}/v1/discovery-chain/${t}`)).text()] as const,
        ),
      ),
    );
    const fe = await frontEnd(
      consul,
      clock,
      // Each typo's first read answers its chain, and its blocking read that follows is held.
      (service, index) => (index === 'plain' ? { index: '30', body: bodies.get(service) ?? '' } : 'hold'),
      'hold',
    );
    cleanups.push(fe.close);
    const registry = new Registry();
    const m = createMesh({
      env: { CONSUL_HTTP_ADDR: fe.address, MESH_ADMIN_PORT: '0' },
      clock,
      metrics: { registry },
      destinationIdleTimeoutMs: 1_000,
    } as Parameters<typeof createMesh>[0] & { destinationIdleTimeoutMs: number });
    mesh = m;
    const applied = new Set<string>();
    m.onEvent((e) => {
      if (e.type === 'config_applied' && e.source === 'consul' && e.service) applied.add(e.service);
    });
    const url = await m.admin();
    const consulView = async () =>
      Object.keys(
        (
          (await (await fetch(`${url}/config_dump`)).json()) as {
            routing: { consul?: Record<string, unknown> };
          }
        ).routing.consul ?? {},
      ).sort();
    const versions = async () =>
      ((await registry.getSingleMetric('mesh_config_version')?.get())?.values ?? [])
        .filter((v) => v.labels.source === 'consul')
        .map((v) => String(v.labels.service))
        .sort();
    for (const t of typos) {
      await m.request(`http://${t}/`).then(
        (r) => r.body.dump(),
        () => undefined,
      );
    }
    await advanceUntil(clock, () => typos.every((t) => applied.has(t)));
    expect(await versions()).toEqual([...typos].sort());
    expect(await consulView()).toEqual([...typos].sort());
    await advanceUntil(clock, () => m.services().length === 0);
    expect(await versions()).toEqual([]);
    expect(await consulView()).toEqual([]);
  });

  it('shares the process-wide long-poll cap with the resolver: no 429 from Consul’s connection limit', async () => {
    // 3 services, each with a health watch and a chain watch, and a cap of 3 blocking queries;
    // the non-blocking first reads go through each client's own pool (one connection here), and
    // the test's registrations keep up to 2 of their own: 3 + 1 + 1 + 2 connections at most.
    // Without the shared cap that is 6 blocking connections (+ 4) to an agent taking 8.
    const double = await startConsulDouble({ maxConnsPerClient: 8 });
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
    const options = {
      address: double.address,
      maxLongPolls: 3,
      maxConnections: 1,
      waitMs: 2_000,
      minIntervalMs: 0,
    };
    const resolver = createConsulResolver({ ...options, clock, logger });
    const chains = new Set<string>();
    const watcher = new ConsulChains(
      options,
      {
        stage: { setChain: () => undefined } as unknown as RoutingStage,
        events: {
          applied: (_s, _v, service) => chains.add(service ?? ''),
          rejected: () => undefined,
          failed: () => undefined,
          recovered: () => undefined,
        },
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
    const { clock, reads, applied } = await scripted([
      { status: 429, index: null },
      { index: '30', body: chainBody },
      { status: 429, index: null, headers: { 'Retry-After': '30' } },
    ]);
    await advanceUntil(clock, () => reads.length >= 2);
    // The first retry after a 429: uniform in [2.5 s, 5 s), not the 0.5–1 s of other errors.
    expect(reads[1]!.at - reads[0]!.at).toBeGreaterThanOrEqual(2_500);
    await expect.poll(() => applied.length).toBe(1);
    // The next read is blocking (index 30) and gets a 429 with Retry-After: 30 s.
    await advanceUntil(clock, () => reads.length >= 4, 20_000);
    expect(reads[2]!.index).toBe('30');
    expect(reads[3]!.at - reads[2]!.at).toBeGreaterThanOrEqual(30_000);
    // After an error the read is a plain one.
    expect(reads[3]!.index).toBe('plain');
  });
  it('after a Consul restart (its index went back) reads the chain again at once, and applies it once', async () => {
    // A dev agent restarted on the same port: its index starts low again, below the one the
    // watch holds; resending the old index would block a whole `wait` (consul-api.md §2.1 rule 8).
    let agent = await startConsulDouble();
    const port = Number(agent.address.split(':')[1]);
    cleanups.push(() => agent.close());
    await setUp(agent, 0);
    for (let i = 0; i < 30; i++)
      await put(agent.url, '/v1/config', { Kind: 'service-defaults', Name: `pad${i}`, Protocol: 'http' });
    const clock = new VirtualClock();
    mesh = createMesh({ env: { CONSUL_HTTP_ADDR: agent.address }, clock });
    const m = mesh;
    const applied = consulApplied(m);
    await call(m);
    await expect.poll(() => applied.length).toBe(1);
    expect(await call(m)).toBe('v1');
    const before = applied[0]!;
    await agent.close();
    agent = await startConsulDouble({ port });
    await setUp(agent, 100);
    const after = agent.configEntries.index;
    expect(after).toBeLessThan((before as { version: number }).version);
    // Only the backoff after the error (virtual time) stands between the restart and the new chain.
    await advanceUntil(clock, () => applied.length >= 2);
    expect(applied[1]).toMatchObject({ version: after, service: 'web' });
    expect(await call(m)).toBe('v2');
    // The watch blocks on the new index (after its token bucket refills); the chain it read was
    // applied once.
    await advanceUntil(clock, () =>
      agent.requests.some(
        (r) => r.path === '/v1/discovery-chain/web' && r.query.get('index') === String(after),
      ),
    );
    expect(applied).toHaveLength(2);
  });

  it('an index that goes backwards resets to a plain read; the same chain is not applied again', async () => {
    const { clock, reads, applied } = await scripted([
      { index: '50', body: chainBody },
      { index: '20', body: chainBody },
      { index: '20', body: chainBody },
    ]);
    await advanceUntil(clock, () => reads.length >= 4);
    expect(reads.map((r) => r.index)).toEqual(['plain', '50', 'plain', '20']);
    expect(applied.map((e) => (e as { version: number }).version)).toEqual([50]);
  });
  it.each([
    ['missing', null],
    ['0', '0'],
  ])(
    'an X-Consul-Index %s is taken as 1, and the token bucket paces the reads (no spin)',
    async (_, index) => {
      const { clock, reads, applied } = await scripted([], { index, body: chainBody });
      await expect.poll(() => reads.length).toBeGreaterThanOrEqual(2);
      // Burst of 2: the first read is plain, the second sends index 1; the third waits for a token
      // (1 s of virtual time), however fast the answers come.
      await advanceUntil(clock, () => reads.length >= 4);
      expect(reads.slice(0, 4).map((r) => r.index)).toEqual(['plain', '1', '1', '1']);
      expect(reads[1]!.at).toBe(reads[0]!.at);
      expect(reads[2]!.at - reads[0]!.at).toBeGreaterThanOrEqual(1_000);
      expect(reads[3]!.at - reads[2]!.at).toBeGreaterThanOrEqual(1_000);
      expect(applied).toHaveLength(1);
    },
  );
  it('a failing chain read is a config_source_error, counted, and shown stale in /config_dump until Consul answers (probe28)', async () => {
    const clock = new VirtualClock();
    const fe = await frontEnd(
      consul,
      clock,
      [
        { index: '30', body: chainBody },
        { status: 500, index: null, body: 'rpc error: No cluster leader' },
        { index: '31', body: chainBody.replace('"ConnectTimeout":"5s"', '"ConnectTimeout":"abc"') },
      ],
      { index: '40', body: chainBody },
    );
    cleanups.push(fe.close);
    const registry = new Registry();
    const m = createMesh({
      env: { CONSUL_HTTP_ADDR: fe.address, MESH_ADMIN_PORT: '0' },
      clock,
      metrics: { registry },
    });
    mesh = m;
    const events: MeshEvent[] = [];
    m.onEvent((e) => events.push(e));
    const url = await m.admin();
    const routing = async () =>
      (
        (await (await fetch(`${url}/config_dump`)).json()) as {
          routing: { consul?: Record<string, unknown> };
        }
      ).routing.consul?.web as Record<string, unknown> | undefined;
    const metric = async (name: string) =>
      (await registry.getSingleMetric(name)?.get())?.values.map((v) => [v.labels, v.value]);
    await call(m);
    await expect
      .poll(() => events.some((e) => e.type === 'config_applied' && e.source === 'consul'))
      .toBe(true);

    await advanceUntil(clock, () => events.some((e) => e.type === 'config_source_error'));
    const failed = events.find((e) => e.type === 'config_source_error');
    expect(failed).toMatchObject({
      source: 'consul',
      service: 'web',
      error: { code: 'MESH_REGISTRY_UNAVAILABLE' },
    });
    expect(await routing()).toMatchObject({
      version: 30,
      stale: true,
      lastError: { code: 'MESH_REGISTRY_UNAVAILABLE' },
    });
    expect(await metric('mesh_config_source_errors_total')).toEqual([[{ source: 'consul' }, 1]]);
    // The chain in force still routes.
    expect(await call(m)).toBe('v1');

    // Consul answers again, with a chain it cannot have sent: reachable (not stale), rejected.
    await advanceUntil(clock, () => events.some((e) => e.type === 'config_rejected'));
    expect(events.find((e) => e.type === 'config_rejected')).toMatchObject({
      source: 'consul',
      service: 'web',
      version: 31,
    });
    const afterBad = await routing();
    expect(afterBad).toMatchObject({ version: 30, stale: false, lastRejected: { version: 31 } });
    expect(afterBad?.lastError).toBeUndefined();
    expect(await metric('mesh_config_rejected_total')).toEqual([[{ source: 'consul' }, 1]]);

    // A good chain: in force, and the rejection is history.
    await advanceUntil(clock, () =>
      events.some((e) => e.type === 'config_applied' && e.source === 'consul' && e.version === 40),
    );
    const good = await routing();
    expect(good).toMatchObject({ version: 40, stale: false });
    expect(good?.lastRejected).toBeUndefined();
    expect(await metric('mesh_config_version')).toEqual([[{ source: 'consul', service: 'web' }, 40]]);
  });
});
