/**
 * The Consul cases, defined once. `consul-double.test.ts` runs them against the double,
 * `consul-real.test.ts` against a real agent (opt-in). Cases that need a double-only control
 * (agent restart, injected faults, malformed payloads, ACL mode) are skipped against a real
 * agent, with the reason in their title.
 */
import { EventEmitter } from 'node:events';
import { MeshError, seededRandom } from '@proxyless/core';
import { flushPromises, VirtualClock } from '@proxyless/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { consulRetryDelay } from '../../../packages/discovery/src/consul/backoff.js';
import { parseConsulAddress } from '../../../packages/discovery/src/consul/http.js';
import { longPollSlots, releaseLongPollSlots } from '../../../packages/discovery/src/consul/long-polls.js';
import {
  type ConsulRegistrarEvent,
  createConsulRegistrar,
} from '../../../packages/discovery/src/consul/registrar.js';
import {
  type ConsulResolverOptions,
  createConsulResolver,
} from '../../../packages/discovery/src/consul/resolver.js';
import { manageSignals } from '../../../packages/discovery/src/registrar/lifecycle.js';
import { startConsulDouble } from '../../consul-double/server.js';
import { fidelityCases } from './fidelity.cases.js';
import { Agent, type ConsulTarget, uniqueName, Watcher } from './helpers.js';

type Closer = () => Promise<void> | void;

const DOUBLE_ONLY = '(double only: needs a fault-injection control)';

/** Define every case; `target()` is called inside each test. */
export function consulCases(target: () => ConsulTarget): void {
  const closers: Closer[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
  });

  const agent = (): Agent => {
    const a = new Agent(target());
    closers.push(() => a.cleanup());
    return a;
  };
  const resolver = (extra: ConsulResolverOptions = {}) => {
    const t = target();
    const r = createConsulResolver({
      address: t.address,
      ...(t.token ? { token: t.token } : {}),
      waitMs: 5_000,
      minIntervalMs: 0,
      backoff: { baseMs: 5, capMs: 20 },
      ...extra,
    });
    closers.push(() => r.close());
    return r;
  };
  const watch = (r: ReturnType<typeof resolver>, service: string): Watcher => {
    const w = new Watcher(r, service);
    closers.push(() => w.dispose());
    return w;
  };
  const ttlService = (name: string, id: string, extra: Record<string, unknown> = {}) => ({
    Name: name,
    ID: id,
    Address: '10.1.0.1',
    Port: 8080,
    Check: { CheckID: `${id}:ttl`, TTL: '60s', Status: 'passing' },
    ...extra,
  });
  const isDouble = (): boolean => target().kind === 'double';
  const dbl = () => {
    const d = target().double;
    if (!d) throw new Error('double-only case ran against a real agent');
    return d;
  };
  /** `it` for double-only cases: skipped (with the reason in the title) against a real agent. */
  const itDouble = (title: string, fn: () => Promise<void>): void => {
    it(`${title}`, async (ctx) => {
      if (!isDouble()) {
        ctx.skip(`${title} ${DOUBLE_ONLY}`);
        return;
      }
      await fn();
    });
  };

  describe('discovery', () => {
    it('resolves registered instances with address, port, tags, meta and ids', async () => {
      const a = agent();
      const name = uniqueName('disc');
      await a.register(ttlService(name, `${name}-1`, { Tags: ['v1'], Meta: { version: '1' } }));
      await a.register(ttlService(name, `${name}-2`, { Address: '10.1.0.2', Port: 9090 }));
      const w = watch(resolver(), name);
      const u = await w.endpoints((ids) => ids.length === 2);
      const byId = new Map(u.set.endpoints.map((e) => [e.id, e]));
      expect(byId.get(`${name}-1`)).toMatchObject({
        address: '10.1.0.1',
        port: 8080,
        tags: ['v1'],
        metadata: { version: '1' },
        health: 'passing',
      });
      expect(byId.get(`${name}-2`)).toMatchObject({ address: '10.1.0.2', port: 9090, weight: 1 });
      expect(u.set).toMatchObject({ service: name, source: 'consul', stale: false });
    });

    it('answers a new watch at once while other watches hold every long-poll slot', async () => {
      // Two watches hold both slots of a cap of 2 for a 60 s wait; a third service's first read
      // (no index) must not queue behind them: it used to wait for a slot and its first call
      // failed the resolve deadline with MESH_NO_ENDPOINTS.
      const a = agent();
      const [held1, held2, late] = [uniqueName('held'), uniqueName('held'), uniqueName('late')];
      for (const n of [held1, held2, late]) await a.register(ttlService(n, `${n}-1`));
      const r = resolver({ maxLongPolls: 2, waitMs: 60_000 });
      const parsed = parseConsulAddress(target().address);
      const slotsKey = parsed.socketPath ?? parsed.origin;
      const slots = longPollSlots(slotsKey, 2);
      closers.push(() => releaseLongPollSlots(slotsKey, 2));
      await watch(r, held1).endpoints((ids) => ids.length === 1);
      await watch(r, held2).endpoints((ids) => ids.length === 1);
      await expect.poll(() => slots.active, { timeout: 5_000 }).toBe(2);
      const third = watch(r, late);
      const u = await third.next(() => true, 0, 5_000);
      expect(u.kind).toBe('endpoints');
      if (u.kind === 'endpoints') expect(u.set.endpoints.map((e) => e.id)).toEqual([`${late}-1`]);
      // The holders still hold their slots; the new watch's blocking read queues for one.
      expect(slots.active).toBe(2);
      if (isDouble()) {
        const lateReads = dbl().requests.filter((q) => q.path === `/v1/health/service/${late}`);
        expect(lateReads.map((q) => q.query.has('index'))).toEqual([false]);
      }
    });

    it('applies an unknown service as an empty healthy answer', async () => {
      const w = watch(resolver(), uniqueName('nobody'));
      const u = await w.next();
      expect(u.kind).toBe('endpoints');
      if (u.kind === 'endpoints') expect(u.set.endpoints).toEqual([]);
    });

    it('delivers changes through blocking queries', async () => {
      const a = agent();
      const name = uniqueName('block');
      await a.register(ttlService(name, `${name}-1`));
      const w = watch(resolver(), name);
      await w.endpoints((ids) => ids.length === 1);
      await a.register(ttlService(name, `${name}-2`, { Address: '10.1.0.2' }));
      await w.endpoints((ids) => ids.length === 2);
      await a.deregister(`${name}-1`);
      await w.endpoints((ids) => ids.length === 1 && ids[0] === `${name}-2`);
      if (isDouble()) {
        const qs = dbl().requests.filter((r) => r.path === `/v1/health/service/${name}`);
        expect(qs[0]?.query.has('index')).toBe(false);
        expect(
          qs.slice(1).every((r) => Number(r.query.get('index')) > 0 && r.query.get('wait') === '5000ms'),
        ).toBe(true);
      }
    });

    it('applies the empty answer after the last instance leaves', async () => {
      const a = agent();
      const name = uniqueName('empty');
      await a.register(ttlService(name, `${name}-1`));
      const w = watch(resolver(), name);
      await w.endpoints((ids) => ids.length === 1);
      await a.deregister(`${name}-1`);
      const u = await w.endpoints((ids) => ids.length === 0);
      expect(u.set.stale).toBe(false);
    });

    it('falls back to the node address and reads the zone from node meta', async () => {
      const a = agent();
      const name = uniqueName('nodeaddr');
      const node = uniqueName('ext-node');
      await a.catalogRegister({
        Node: node,
        Address: '10.9.9.9',
        NodeMeta: { zone: 'eu-west-1a' },
        Service: { Service: name, ID: `${name}-1`, Port: 7000 },
        Check: { CheckID: `${name}-chk`, Name: 'ext', Status: 'passing', ServiceID: `${name}-1` },
      });
      const w = watch(resolver(), name);
      const u = await w.endpoints((ids) => ids.length === 1);
      expect(u.set.endpoints[0]).toMatchObject({ address: '10.9.9.9', port: 7000, zone: 'eu-west-1a' });
    });

    it('filters by tag', async () => {
      const a = agent();
      const name = uniqueName('tag');
      await a.register(ttlService(name, `${name}-1`, { Tags: ['canary'] }));
      await a.register(ttlService(name, `${name}-2`, { Tags: ['stable'], Address: '10.1.0.2' }));
      const w = watch(resolver({ tag: 'canary' }), name);
      const u = await w.endpoints((ids) => ids.length > 0);
      expect(u.set.endpoints.map((e) => e.id)).toEqual([`${name}-1`]);
    });
  });

  describe('health and weights', () => {
    it('uses Weights.Passing, then Weights.Warning on warning, and drops critical instances', async () => {
      const a = agent();
      const name = uniqueName('weights');
      const id = `${name}-1`;
      await a.register(ttlService(name, id, { Weights: { Passing: 10, Warning: 2 } }));
      await a.register(ttlService(name, `${name}-2`, { Address: '10.1.0.2' }));
      const w = watch(resolver(), name);
      let u = await w.endpoints((ids) => ids.length === 2);
      expect(u.set.endpoints.find((e) => e.id === id)).toMatchObject({ weight: 10, health: 'passing' });
      await a.check('warn', `${id}:ttl`);
      u = (await w.next(
        (x) => x.kind === 'endpoints' && x.set.endpoints.some((e) => e.id === id && e.health === 'warning'),
      )) as typeof u;
      expect(u.set.endpoints.find((e) => e.id === id)).toMatchObject({ weight: 2, health: 'warning' });
      await a.check('fail', `${id}:ttl`);
      await w.endpoints((ids) => ids.length === 1 && ids[0] === `${name}-2`);
    });

    it('with onlyPassing, drops warning instances too', async () => {
      const a = agent();
      const name = uniqueName('passing');
      await a.register(ttlService(name, `${name}-1`));
      await a.register(ttlService(name, `${name}-2`, { Address: '10.1.0.2' }));
      await a.check('warn', `${name}-2:ttl`);
      const w = watch(resolver({ onlyPassing: true }), name);
      const u = await w.endpoints((ids) => ids.length > 0);
      expect(u.set.endpoints.map((e) => e.id)).toEqual([`${name}-1`]);
      if (isDouble()) {
        const q = dbl().requests.find((r) => r.path === `/v1/health/service/${name}`);
        expect(q?.query.get('passing')).toBe('1');
      }
    });
  });

  describe('ACL', () => {
    itDouble('403 with an unknown token; a known token resolves; no token sees a filtered list', async () => {
      const d = await startConsulDouble({
        acl: { defaultPolicy: 'deny', tokens: { 'good-token': { policy: 'write' } } },
      });
      closers.push(() => d.close());
      const a = new Agent({ kind: 'double', address: d.address, token: 'good-token' });
      closers.push(() => a.cleanup());
      await a.register(ttlService('acl-svc', 'acl-1'));
      const mk = (token?: string) => {
        const r = createConsulResolver({
          address: d.address,
          ...(token ? { token } : {}),
          waitMs: 5_000,
          minIntervalMs: 0,
          backoff: { baseMs: 5, capMs: 20 },
        });
        closers.push(() => r.close());
        return new Watcher(r, 'acl-svc');
      };
      const bad = await mk('wrong-token').error();
      expect(bad.error.code).toBe('MESH_REGISTRY_UNAVAILABLE');
      expect(bad.error.details.status).toBe(403);
      expect(bad.error.message).toContain('ACL not found');
      const good = await mk('good-token').endpoints((ids) => ids.length === 1);
      expect(good.set.endpoints[0]?.id).toBe('acl-1');
      const anon = await mk().next();
      expect(anon.kind === 'endpoints' && anon.set.endpoints.length).toBe(0);
      const hdr = d.requests.find((r) => r.headers['x-consul-token'] === 'good-token');
      expect(hdr).toBeDefined();
      // Registration without write permission is refused with Consul's text.
      const reg = createConsulRegistrar({ address: d.address });
      await expect(reg.register({ service: 'acl-svc', address: '10.0.0.1', port: 1 })).rejects.toThrow(
        /403.*Permission denied: token with AccessorID '.*' lacks permission 'service:write' on \\"acl-svc\\"/,
      );
      await reg.close();
    });

    itDouble('sends ?dc=; an unknown datacenter is reported as an error', async () => {
      const a = agent();
      const d = dbl();
      const name = uniqueName('dc');
      await a.register(ttlService(name, `${name}-1`));
      const ok = watch(resolver({ datacenter: 'dc1' }), name);
      await ok.endpoints((ids) => ids.length === 1);
      expect(d.requests.find((r) => r.path.endsWith(name))?.query.get('dc')).toBe('dc1');
      const bad = watch(resolver({ datacenter: 'dc9' }), name);
      const e = await bad.error();
      expect(e.error.details.status).toBe(500);
      expect(e.error.message).toContain('No path to datacenter');
    });

    itDouble('CE answers 400 for a namespace; reported as a config error', async () => {
      const w = watch(resolver({ namespace: 'team-a' }), uniqueName('ns'));
      const e = await w.error();
      expect(e.error.code).toBe('MESH_CONFIG_INVALID');
      expect(e.error.message).toContain('need Consul Enterprise');
      expect(e.error.details.status).toBe(400);
    });
  });

  describe('outages and index rules', () => {
    itDouble('a dropped connection keeps the last good set (stale) and recovers', async () => {
      const a = agent();
      const d = dbl();
      const name = uniqueName('outage');
      await a.register(ttlService(name, `${name}-1`));
      const w = watch(resolver(), name);
      await w.endpoints((ids) => ids.length === 1);
      d.pause();
      d.touch(name); // the blocked query returns; the next one hangs
      await waitFor(() => d.heldRequests > 0);
      const after = w.updates.length;
      d.resume(); // the held request is dropped
      const err = await w.error(() => true, after);
      expect(err.error.code).toBe('MESH_REGISTRY_UNAVAILABLE');
      expect(err.lastGood?.stale).toBe(true);
      expect(err.lastGood?.endpoints.map((e) => e.id)).toEqual([`${name}-1`]);
      const back = await w.next((u) => u.kind === 'endpoints' && !u.set.stale, w.updates.indexOf(err) + 1);
      expect(back.kind === 'endpoints' && back.set.endpoints.length).toBe(1);
    });

    itDouble('a connection dropped mid-response keeps the last good set and recovers', async () => {
      const a = agent();
      const d = dbl();
      const name = uniqueName('drop');
      await a.register(ttlService(name, `${name}-1`));
      const w = watch(resolver(), name);
      await w.endpoints((ids) => ids.length === 1);
      d.dropNext(2, { pathPrefix: `/v1/health/service/${name}` });
      const at = w.updates.length;
      d.touch(name);
      const err = await w.error(() => true, at);
      expect(err.error.code).toBe('MESH_REGISTRY_UNAVAILABLE');
      expect(err.lastGood?.endpoints.map((e) => e.id)).toEqual([`${name}-1`]);
      const back = await w.next((u) => u.kind === 'endpoints' && !u.set.stale, at);
      expect(back.kind === 'endpoints' && back.set.endpoints).toHaveLength(1);
    });

    itDouble('a closed agent keeps the last good set; a new agent on the same address recovers', async () => {
      const first = await startConsulDouble();
      const port = Number(first.address.split(':')[1]);
      const a = new Agent({ kind: 'double', address: first.address });
      await a.register(ttlService('down-svc', 'down-1'));
      await a.http.close();
      const r = createConsulResolver({
        address: first.address,
        waitMs: 5_000,
        minIntervalMs: 0,
        backoff: { baseMs: 5, capMs: 50 },
      });
      closers.push(() => r.close());
      const w = new Watcher(r, 'down-svc');
      closers.push(() => w.dispose());
      await w.endpoints((ids) => ids.length === 1);
      await first.close();
      const err = await w.error();
      expect(err.lastGood?.stale).toBe(true);
      expect(err.lastGood?.endpoints).toHaveLength(1);
      expect(r.current('down-svc')?.stale).toBe(true);
      const second = await startConsulDouble({ port });
      closers.push(() => second.close());
      const b = new Agent({ kind: 'double', address: second.address });
      closers.push(() => b.cleanup());
      await b.register(ttlService('down-svc', 'down-2', { Address: '10.1.0.2' }));
      const back = await w.endpoints((ids) => ids.length === 1 && ids[0] === 'down-2');
      expect(back.set.stale).toBe(false);
    });

    itDouble('resets to a non-blocking read when the index goes backwards', async () => {
      const a = agent();
      const d = dbl();
      const name = uniqueName('restore');
      await a.register(ttlService(name, `${name}-1`));
      const w = watch(resolver(), name);
      await w.endpoints((ids) => ids.length === 1);
      await waitFor(() => d.blockedQueries > 0);
      const before = d.requests.length;
      d.restoreIndex(3);
      await waitFor(() =>
        d.requests.slice(before).some((r) => r.path.endsWith(name) && !r.query.has('index')),
      );
      const after = d.requests.slice(before).filter((r) => r.path.endsWith(name));
      expect(after[0]?.query.has('index')).toBe(false);
      await a.register(ttlService(name, `${name}-2`, { Address: '10.1.0.2' }));
      await w.endpoints((ids) => ids.length === 2);
    });

    itDouble('a missing, zero or non-numeric index becomes 1, never 0', async () => {
      const a = agent();
      const d = dbl();
      for (const value of [null, '0', 'abc']) {
        const name = uniqueName('idx');
        await a.register(ttlService(name, `${name}-1`));
        d.overrideIndex(name, value);
        const w = watch(resolver({ minIntervalMs: 20 }), name);
        await w.endpoints((ids) => ids.length === 1);
        await waitFor(() => d.requests.filter((r) => r.path.endsWith(name)).length >= 2);
        d.overrideIndex(name, undefined);
        const qs = d.requests.filter((r) => r.path.endsWith(name));
        expect(qs[1]?.query.get('index'), `index header ${String(value)}`).toBe('1');
      }
    });

    itDouble('a spurious wake-up (same body, new index) wakes no watcher', async () => {
      const a = agent();
      const d = dbl();
      const name = uniqueName('spurious');
      await a.register(ttlService(name, `${name}-1`));
      const w = watch(resolver(), name);
      await w.endpoints((ids) => ids.length === 1);
      const n = d.requests.length;
      d.touch(name);
      await waitFor(() => d.requests.length > n + 0 && d.blockedQueries > 0);
      await a.register(ttlService(name, `${name}-2`, { Address: '10.1.0.2' }));
      await w.endpoints((ids) => ids.length === 2);
      expect(w.updates.filter((u) => u.kind === 'endpoints')).toHaveLength(2);
    });

    itDouble(
      'rate-limits a churning watch: burst 2, then the interval doubles up to maxIntervalMs',
      async () => {
        const a = agent();
        const d = dbl();
        const name = uniqueName('churn');
        await a.register(ttlService(name, `${name}-1`));
        d.overrideIndex(name, '5'); // every answer returns at once: constant churn
        const clock = new VirtualClock();
        const w = watch(resolver({ clock, minIntervalMs: 1_000, maxIntervalMs: 4_000 }), name);
        const count = () => d.requests.filter((x) => x.path.endsWith(name)).length;
        await w.endpoints((ids) => ids.length === 1);
        // Calls at t = 0, 0 (burst), then 1 s, 2 s, 4 s, 4 s apart.
        const gaps = [1_000, 2_000, 4_000, 4_000, 4_000];
        await waitFor(() => count() === 2 && clock.pendingTimers > 0);
        for (const [i, gap] of gaps.entries()) {
          await clock.advance(gap - 1);
          await flushPromises();
          expect(count(), `call ${i + 3} not before its gap of ${gap} ms`).toBe(i + 2);
          await clock.advance(1);
          await waitFor(() => count() === i + 3 && clock.pendingTimers > 0);
        }
        d.overrideIndex(name, undefined);
      },
    );

    for (const [status, label, opts] of [
      [500, '500 No cluster leader', {}],
      [429, '429 with an empty body', {}],
      [429, '429 connection limit', { connLimit: true }],
      [503, '503 rate limit', {}],
    ] as const) {
      itDouble(`backs off exponentially with floored jitter on ${label} (virtual clock)`, async () => {
        const a = agent();
        const d = dbl();
        const name = uniqueName('backoff');
        await a.register(ttlService(name, `${name}-1`));
        const clock = new VirtualClock();
        const backoff = { baseMs: 1_000, capMs: 8_000, throttledBaseMs: 2_000 };
        const throttled = status === 429 || status === 503;
        const r = resolver({ clock, random: seededRandom(7), backoff });
        const expected = seededRandom(7);
        d.failNext(status, 4, { pathPrefix: `/v1/health/service/${name}`, ...opts });
        const w = watch(r, name);
        const count = () => d.requests.filter((x) => x.path.endsWith(name)).length;
        const errors = () => w.updates.filter((u) => u.kind === 'error').length;
        for (let attempt = 0; attempt < 4; attempt++) {
          await w.next(() => errors() >= attempt + 1, 0);
          const last = w.updates.filter((u) => u.kind === 'error').at(-1);
          expect(last?.kind === 'error' && last.error.details.status).toBe(status);
          const delay = consulRetryDelay(attempt, backoff, expected, throttled);
          const d0 = Math.min(backoff.capMs, (throttled ? 2_000 : 1_000) * 2 ** attempt);
          expect(delay).toBeLessThan(d0);
          expect(delay).toBeGreaterThanOrEqual(d0 / 2);
          const seen = count();
          if (delay > 0) {
            await clock.advance(delay - 1);
            await flushPromises();
            expect(count(), `no call before the backoff of attempt ${attempt} ends`).toBe(seen);
          }
          await clock.advance(delay > 0 ? 1 : 0);
        }
        const ok = await w.endpoints((ids) => ids.length === 1);
        expect(ok.set.stale).toBe(false);
      });
    }
  });

  describe('malformed payloads (each rejected whole, field named, last good kept)', () => {
    const valid = (id: string, extra: { Node?: object; Service?: object; Checks?: unknown } = {}) => ({
      Node: { Node: 'node-1', Address: '10.0.0.1', Meta: {}, ...(extra.Node ?? {}) },
      Service: {
        ID: id,
        Service: 'svc',
        Address: '10.0.0.5',
        Port: 8080,
        Tags: [],
        Meta: {},
        Weights: { Passing: 1, Warning: 1 },
        ...(extra.Service ?? {}),
      },
      Checks: extra.Checks ?? [{ CheckID: 'serfHealth', Status: 'passing' }],
    });
    const json = (v: unknown) => JSON.stringify(v);
    const cases: Array<[string, string | Buffer, string, unknown]> = [
      ['invalid JSON', '[{"Node":', 'body', undefined],
      ['HTML instead of JSON', '<html>oops</html>', 'body', undefined],
      ['an object instead of an array', json({ Node: {} }), 'body', undefined],
      ['JSON null', 'null', 'body', null],
      ['an entry that is a string', json([valid('a'), 'x']), '[1]', 'x'],
      ['missing Service', json([{ Node: valid('a').Node, Checks: [] }]), '[0].Service', undefined],
      ['missing Node', json([{ Service: valid('a').Service, Checks: [] }]), '[0].Node', undefined],
      ['Port as a string', json([valid('a', { Service: { Port: '8080' } })]), '[0].Service.Port', '8080'],
      ['Port above 65535', json([valid('a', { Service: { Port: 70000 } })]), '[0].Service.Port', 70000],
      ['negative Port', json([valid('a', { Service: { Port: -1 } })]), '[0].Service.Port', -1],
      ['fractional Port', json([valid('a', { Service: { Port: 80.5 } })]), '[0].Service.Port', 80.5],
      ['ID missing', json([valid('a', { Service: { ID: undefined } })]), '[0].Service.ID', undefined],
      ['ID a number', json([valid('a'), valid('b', { Service: { ID: 42 } })]), '[1].Service.ID', 42],
      ['Tags not an array', json([valid('a', { Service: { Tags: 'v1' } })]), '[0].Service.Tags', 'v1'],
      [
        'a tag that is a number',
        json([valid('a', { Service: { Tags: ['v1', 2] } })]),
        '[0].Service.Tags[1]',
        2,
      ],
      [
        'Meta value a number',
        json([valid('a', { Service: { Meta: { version: 2 } } })]),
        '[0].Service.Meta.version',
        2,
      ],
      [
        'Weights.Passing -1',
        json([valid('a', { Service: { Weights: { Passing: -1, Warning: 1 } } })]),
        '[0].Service.Weights.Passing',
        -1,
      ],
      [
        'Weights.Warning a string',
        json([valid('a', { Service: { Weights: { Passing: 1, Warning: 'x' } } })]),
        '[0].Service.Weights.Warning',
        'x',
      ],
      [
        'check status unknown',
        json([valid('a', { Checks: [{ CheckID: 'c', Status: 'ok' }] })]),
        '[0].Checks[0].Status',
        'ok',
      ],
      [
        'Checks not an array',
        json([valid('a', { Checks: { Status: 'passing' } })]),
        '[0].Checks',
        { Status: 'passing' },
      ],
      [
        'no address anywhere',
        json([valid('a', { Service: { Address: '' }, Node: { Address: '' } })]),
        '[0].Service.Address',
        '',
      ],
      [
        'address with a space',
        json([valid('a', { Service: { Address: '10.0.0.1 evil' } })]),
        '[0].Service.Address',
        '10.0.0.1 evil',
      ],
      [
        'Node.Meta not an object',
        json([valid('a', { Node: { Meta: ['zone'] } })]),
        '[0].Node.Meta',
        ['zone'],
      ],
    ];
    for (const [title, body, field, value] of cases) {
      itDouble(`rejects ${title} (field ${field})`, async () => {
        const a = agent();
        const d = dbl();
        const name = uniqueName('bad');
        await a.register(ttlService(name, `${name}-1`));
        const w = watch(resolver(), name);
        await w.endpoints((ids) => ids.length === 1);
        const at = w.updates.length;
        d.garbage(name, body);
        const e = await w.error(() => true, at);
        expect(e.error.code).toBe('MESH_REGISTRY_PAYLOAD_INVALID');
        expect(e.error.details.field).toBe(field);
        if (value !== undefined) expect(e.error.details.value).toEqual(value);
        if (typeof value === 'string' || typeof value === 'number')
          expect(e.error.message).toContain(String(value));
        expect(e.error.message).toContain(field);
        expect(e.lastGood?.stale).toBe(true);
        expect(e.lastGood?.endpoints.map((x) => x.id)).toEqual([`${name}-1`]);
        // Nothing of the bad payload was applied.
        expect(w.updates.slice(at).every((u) => u.kind === 'error')).toBe(true);
        d.garbage(name, undefined);
        const back = await w.next((u) => u.kind === 'endpoints' && !u.set.stale, at);
        expect(back.kind === 'endpoints' && back.set.endpoints.map((x) => x.id)).toEqual([`${name}-1`]);
      });
    }

    itDouble('rejects an oversized body (field body)', async () => {
      const a = agent();
      const d = dbl();
      const name = uniqueName('big');
      await a.register(ttlService(name, `${name}-1`));
      const w = watch(resolver({ maxBodyBytes: 4_096 }), name);
      await w.endpoints((ids) => ids.length === 1);
      const at = w.updates.length;
      d.garbage(name, JSON.stringify(Array.from({ length: 200 }, (_, i) => valid(`big-${i}`))));
      const e = await w.error(() => true, at);
      expect(e.error.code).toBe('MESH_REGISTRY_PAYLOAD_INVALID');
      expect(e.error.details.field).toBe('body');
      expect(e.error.message).toContain('4096 bytes');
      expect(e.lastGood?.endpoints).toHaveLength(1);
    });
  });

  describe('registrar', () => {
    it('registers with weights, tags, meta and zone; deregisters on close', async () => {
      const name = uniqueName('reg');
      const t = target();
      const reg = createConsulRegistrar({ address: t.address, ...(t.token ? { token: t.token } : {}) });
      const inst = await reg.register({
        service: name,
        id: `${name}-1`,
        address: '10.2.0.1',
        port: 8443,
        tags: ['v2'],
        metadata: { version: '2' },
        zone: 'eu-1',
        weights: { passing: 7, warning: 1 },
        check: { kind: 'ttl', ttlMs: 60_000 },
      });
      expect(inst.id).toBe(`${name}-1`);
      const w = watch(resolver(), name);
      const u = await w.endpoints((ids) => ids.length === 1);
      expect(u.set.endpoints[0]).toMatchObject({
        address: '10.2.0.1',
        port: 8443,
        weight: 7,
        zone: 'eu-1',
        tags: ['v2'],
      });
      await reg.close();
      await w.endpoints((ids) => ids.length === 0, 1);
      const a = agent();
      expect(await a.agentService(`${name}-1`)).toBe(404);
    });

    it('registers HTTP and TCP checks in the agent format', async () => {
      const name = uniqueName('checks');
      const t = target();
      const reg = createConsulRegistrar({ address: t.address, ...(t.token ? { token: t.token } : {}) });
      closers.push(() => reg.close());
      await reg.register({
        service: name,
        id: `${name}-http`,
        address: '127.0.0.1',
        port: 1,
        check: {
          kind: 'http',
          url: 'http://127.0.0.1:1/healthz',
          intervalMs: 10_000,
          timeoutMs: 1_000,
          deregisterAfterMs: 60_000,
        },
      });
      await reg.register({
        service: name,
        id: `${name}-tcp`,
        address: '127.0.0.1',
        port: 2,
        check: { kind: 'tcp', address: '127.0.0.1:2', intervalMs: 10_000, timeoutMs: 1_000 },
      });
      const a = agent();
      expect(await a.agentService(`${name}-http`)).toBe(200);
      expect(await a.agentService(`${name}-tcp`)).toBe(200);
    });

    it('rejects an invalid registration naming every field', async () => {
      const reg = createConsulRegistrar({ address: target().address });
      closers.push(() => reg.close());
      const err = await reg
        .register({ service: '', address: '0.0.0.0', port: 70000, weights: { passing: 0, warning: 1 } })
        .catch((e: unknown) => e);
      expect(MeshError.is(err, 'MESH_CONFIG_INVALID')).toBe(true);
      const fields = (err as MeshError).details.issues?.map((i) => i.field);
      expect(fields).toEqual(
        expect.arrayContaining([
          'registration.service',
          'registration.address',
          'registration.port',
          'registration.weights.passing',
        ]),
      );
    });

    it('keeps a TTL check passing at ttl/3 on the injected clock', async () => {
      const name = uniqueName('ttl');
      const t = target();
      const clock = new VirtualClock();
      const events: ConsulRegistrarEvent[] = [];
      const waiters: Array<() => void> = [];
      const reg = createConsulRegistrar({
        address: t.address,
        ...(t.token ? { token: t.token } : {}),
        clock,
        onEvent: (e) => {
          events.push(e);
          for (const f of waiters.splice(0)) f();
        },
      });
      closers.push(() => reg.close());
      await reg.register({
        service: name,
        id: `${name}-1`,
        address: '10.3.0.1',
        port: 80,
        check: { kind: 'ttl', ttlMs: 30_000 },
      });
      const a = agent();
      await a.check('fail', `service:${name}-1:ttl`);
      await clock.advance(9_999);
      expect(events.filter((e) => e.type === 'heartbeat')).toHaveLength(0);
      await clock.advance(1);
      await until(() => events.some((e) => e.type === 'heartbeat'), waiters);
      expect(await a.checkStatus(`service:${name}-1:ttl`)).toBe('passing');
    });

    itDouble('registers again when a TTL update answers 404 after an agent restart', async () => {
      const d = dbl();
      const name = uniqueName('restart');
      const clock = new VirtualClock();
      const events: ConsulRegistrarEvent[] = [];
      const waiters: Array<() => void> = [];
      const reg = createConsulRegistrar({
        address: d.address,
        clock,
        onEvent: (e) => {
          events.push(e);
          for (const f of waiters.splice(0)) f();
        },
      });
      closers.push(() => reg.close());
      const inst = await reg.register({
        service: name,
        id: `${name}-1`,
        address: '10.3.0.1',
        port: 80,
        check: { kind: 'ttl', ttlMs: 30_000 },
      });
      d.restartAgent();
      expect(d.agentServices()[`${name}-1`]).toBeUndefined();
      await clock.advance(10_000);
      await until(() => events.some((e) => e.type === 'reregistered'), waiters);
      expect(d.agentServices()[`${name}-1`]).toMatchObject({ Service: name, Port: 80 });
      // markUnhealthy survives a later restart too.
      await inst.markUnhealthy('draining');
      expect(d.agentChecks()[`service:${name}-1:ttl`]?.Status).toBe('critical');
      d.restartAgent();
      const n = events.length;
      await clock.advance(10_000);
      await until(() => events.slice(n).some((e) => e.type === 'reregistered'), waiters);
      expect(d.agentChecks()[`service:${name}-1:ttl`]?.Status).toBe('critical');
    });

    itDouble('registers again when an instance without TTL check disappears (resync)', async () => {
      const d = dbl();
      const name = uniqueName('resync');
      const clock = new VirtualClock();
      const events: ConsulRegistrarEvent[] = [];
      const waiters: Array<() => void> = [];
      const reg = createConsulRegistrar({
        address: d.address,
        clock,
        resyncIntervalMs: 5_000,
        onEvent: (e) => {
          events.push(e);
          for (const f of waiters.splice(0)) f();
        },
      });
      closers.push(() => reg.close());
      await reg.register({ service: name, id: `${name}-1`, address: '10.3.0.1', port: 80 });
      d.restartAgent();
      await clock.advance(5_000);
      await until(() => events.some((e) => e.type === 'reregistered'), waiters);
      expect(d.agentServices()[`${name}-1`]).toBeDefined();
    });

    it('markUnhealthy takes the instance out of resolution', async () => {
      const name = uniqueName('unhealthy');
      const t = target();
      const reg = createConsulRegistrar({ address: t.address, ...(t.token ? { token: t.token } : {}) });
      closers.push(() => reg.close());
      const ttl = await reg.register({
        service: name,
        id: `${name}-ttl`,
        address: '10.4.0.1',
        port: 80,
        check: { kind: 'ttl', ttlMs: 60_000 },
      });
      const plain = await reg.register({ service: name, id: `${name}-plain`, address: '10.4.0.2', port: 80 });
      const w = watch(resolver(), name);
      await w.endpoints((ids) => ids.length === 2);
      await ttl.markUnhealthy('draining');
      await w.endpoints((ids) => ids.length === 1 && ids[0] === `${name}-plain`);
      await plain.markUnhealthy('draining'); // maintenance mode
      await w.endpoints((ids) => ids.length === 0);
    });
  });

  fidelityCases({ target, closers, agent, resolver, watch, ttlService, itDouble, dbl, waitFor });

  describe('signals', () => {
    it('on SIGTERM: markUnhealthy, deregister, drain, onDrained, exit(0)', async () => {
      const name = uniqueName('sig');
      const t = target();
      const reg = createConsulRegistrar({ address: t.address, ...(t.token ? { token: t.token } : {}) });
      closers.push(() => reg.close());
      const inst = await reg.register({
        service: name,
        id: `${name}-1`,
        address: '10.5.0.1',
        port: 80,
        check: { kind: 'ttl', ttlMs: 60_000 },
      });
      const proc = new EventEmitter();
      const clock = new VirtualClock();
      const steps: string[] = [];
      const spied = {
        id: inst.id,
        markUnhealthy: async (note?: string) => {
          steps.push('unhealthy');
          await inst.markUnhealthy(note);
        },
        deregister: async () => {
          steps.push('deregister');
          await inst.deregister();
        },
      };
      let exitCode: number | undefined;
      let exited: () => void = () => undefined;
      const exitedP = new Promise<void>((r) => {
        exited = r;
      });
      const drained = new Promise<void>((resolve) => {
        const d = manageSignals(spied, {
          drainMs: 5_000,
          process: proc,
          clock,
          onDrained: () => {
            steps.push('drained');
            resolve();
          },
          exit: (code) => {
            exitCode = code;
            steps.push(`exit ${code}`);
            exited();
          },
        });
        closers.push(() => d.dispose());
      });
      proc.emit('SIGTERM', 'SIGTERM');
      const a = agent();
      await waitFor(async () => (await a.agentService(`${name}-1`)) === 404);
      expect(steps).toEqual(['unhealthy', 'deregister']);
      await clock.advance(4_999);
      expect(exitCode).toBeUndefined();
      await clock.advance(1);
      await drained;
      await exitedP;
      expect(steps).toEqual(['unhealthy', 'deregister', 'drained', 'exit 0']);
      expect(proc.listenerCount('SIGTERM')).toBe(1);
    });

    it('dispose removes the handlers; a second signal exits at once with 1', async () => {
      const proc = new EventEmitter();
      const codes: number[] = [];
      const inst = { id: 'x', markUnhealthy: async () => undefined, deregister: async () => undefined };
      const clock = new VirtualClock();
      const d = manageSignals(inst, { drainMs: 1_000, process: proc, clock, exit: (c) => codes.push(c) });
      expect(proc.listenerCount('SIGINT')).toBe(1);
      proc.emit('SIGINT', 'SIGINT');
      proc.emit('SIGINT', 'SIGINT');
      expect(codes).toEqual([1]);
      await clock.runAll();
      expect(codes).toEqual([1, 0]);
      d.dispose();
      expect(proc.listenerCount('SIGINT')).toBe(0);
      expect(proc.listenerCount('SIGTERM')).toBe(0);
    });
  });
}

/** Wait on a condition re-checked on real I/O turns; bounded in count and time. */
async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (let i = 0; i < 100_000 && Date.now() < end; i++) {
    if (await cond()) return;
    await new Promise<void>((r) => setImmediate(r));
  }
  throw new Error('condition not met in time');
}

/** Wait until `cond` holds, re-checking whenever the code under test fires an event. */
async function until(cond: () => boolean, waiters: Array<() => void>, timeoutMs = 10_000): Promise<void> {
  for (let i = 0; i < 1_000 && !cond(); i++) {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('event not seen in time')), timeoutMs);
      waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
  if (!cond()) throw new Error('condition not met');
}
