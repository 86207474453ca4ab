/**
 * Cases of issue #12 ("Consul fidelity"), run by `consulCases` against the double and (opt-in)
 * a real agent. Each names the behaviour it pins; double-only ones need a double control.
 */

import type { Registrar } from '@proxyless/core';
import { MeshError, seededRandom } from '@proxyless/core';
import { flushPromises, VirtualClock } from '@proxyless/core/testing';
import { describe, expect, it } from 'vitest';
import { consulRetryDelay } from '../../../packages/discovery/src/consul/backoff.js';
import { ConsulHttp } from '../../../packages/discovery/src/consul/http.js';
import {
  type ConsulRegistrarEvent,
  type ConsulRegistrarOptions,
  createConsulRegistrar,
} from '../../../packages/discovery/src/consul/registrar.js';
import {
  type ConsulResolverEvent,
  type ConsulResolverOptions,
  createConsulResolver,
} from '../../../packages/discovery/src/consul/resolver.js';
import { type ConsulDouble, startConsulDouble } from '../../consul-double/server.js';
import { type Agent, type ConsulTarget, uniqueName, Watcher } from './helpers.js';

/** What the shared cases hand to this file. */
export interface CaseKit {
  target: () => ConsulTarget;
  closers: Array<() => Promise<void> | void>;
  agent: () => Agent;
  resolver: (extra?: ConsulResolverOptions) => ReturnType<typeof createConsulResolver>;
  watch: (r: ReturnType<typeof createConsulResolver>, service: string) => Watcher;
  ttlService: (name: string, id: string, extra?: Record<string, unknown>) => Record<string, unknown>;
  itDouble: (title: string, fn: () => Promise<void>) => void;
  dbl: () => ConsulDouble;
  waitFor: (cond: () => boolean | Promise<boolean>, timeoutMs?: number) => Promise<void>;
}

/** The cases of issue #12. */
export function fidelityCases(k: CaseKit): void {
  const { target, closers, agent, resolver, watch, ttlService, itDouble, dbl, waitFor } = k;
  const registrar = (extra: Partial<ConsulRegistrarOptions> = {}): Registrar => {
    const t = target();
    const r = createConsulRegistrar({ address: t.address, ...(t.token ? { token: t.token } : {}), ...extra });
    closers.push(() => r.close());
    return r;
  };
  const eventsOf = () => {
    const events: ConsulRegistrarEvent[] = [];
    const waiters: Array<() => void> = [];
    return {
      events,
      onEvent: (e: ConsulRegistrarEvent) => {
        events.push(e);
        for (const f of waiters.splice(0)) f();
      },
      /** Wait until `cond` holds, re-checked on each registrar event (bounded). */
      until: async (cond: () => boolean): Promise<void> => {
        for (let i = 0; i < 1_000 && !cond(); i++) {
          await new Promise<void>((resolve, reject) => {
            const t = setTimeout(() => reject(new Error('registrar event not seen in time')), 10_000);
            waiters.push(() => {
              clearTimeout(t);
              resolve();
            });
          });
        }
      },
    };
  };

  describe('fidelity (#12)', () => {
    it('a restarted instance with the same ID is in rotation at once: stale maintenance and failed checks are dropped (#12)', async () => {
      const name = uniqueName('restarted');
      const id = `${name}-1`;
      const reg = {
        service: name,
        id,
        address: '10.6.0.1',
        port: 80,
        check: { kind: 'ttl', ttlMs: 60_000 },
      } as const;
      const first = registrar({ clock: new VirtualClock() });
      await first.register(reg);
      const a = agent();
      await a.check('fail', `service:${id}:ttl`);
      await a.maintenance(id, true); // an operator's `consul maint -service`
      const w = watch(resolver(), name);
      await w.endpoints((ids) => ids.length === 0);
      // The process restarts (kill -9: no deregistration) and registers the same ID again.
      const second = registrar({ clock: new VirtualClock() });
      await second.register(reg);
      const u = await w.endpoints((ids) => ids.length === 1);
      expect(u.set.endpoints[0]?.health).toBe('passing');
    });

    it('a register() still in flight when close() runs rejects MESH_CLOSED and leaves nothing registered (probe47)', async () => {
      const name = uniqueName('lateclose');
      const reg = registrar();
      const pending = reg.register({ service: name, id: `${name}-1`, address: '10.6.0.3', port: 80 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      const closed = reg.close();
      // Before: it resolved with an instance that close() had already deregistered.
      expect(MeshError.is(await pending, 'MESH_CLOSED')).toBe(true);
      await closed;
      expect(await agent().agentService(`${name}-1`)).toBe(404);
    });

    it('registers a TTL check by default: 15 s, heartbeat every 5 s, reaped after 1 min (#12)', async () => {
      const name = uniqueName('defcheck');
      const id = `${name}-1`;
      const clock = new VirtualClock();
      const ev = eventsOf();
      const reg = registrar({ clock, onEvent: ev.onEvent });
      await reg.register({ service: name, id, address: '10.6.0.2', port: 80 });
      const a = agent();
      expect(await a.checkStatus(`service:${id}:ttl`)).toBe('passing');
      if (target().kind === 'double') {
        expect(dbl().agentChecks()[`service:${id}:ttl`]).toMatchObject({
          Type: 'ttl',
          ttlMs: 15_000,
          deregisterAfterMs: 60_000,
        });
      }
      await a.check('fail', `service:${id}:ttl`);
      await clock.advance(4_999);
      expect(ev.events.filter((e) => e.type === 'heartbeat')).toHaveLength(0);
      await clock.advance(1);
      await ev.until(() => ev.events.some((e) => e.type === 'heartbeat'));
      expect(await a.checkStatus(`service:${id}:ttl`)).toBe('passing');
    });

    it('matches service names and tags case-insensitively, as Consul does (#12)', async () => {
      const a = agent();
      const name = uniqueName('CaseSvc');
      await a.register(ttlService(name, `${name}-1`, { Tags: ['Canary'] }));
      await a.register(ttlService(name, `${name}-2`, { Tags: ['stable'], Address: '10.1.0.2' }));
      const w = watch(resolver({ tag: 'canary' }), name.toLowerCase());
      const u = await w.endpoints((ids) => ids.length > 0);
      expect(u.set.endpoints.map((e) => e.id)).toEqual([`${name}-1`]);
      // The host form `<tag>.<name>.service.consul` is lower-cased; it finds `Canary` too.
      const r = resolver();
      const svc = r.match(`canary.${name}.service.consul`) ?? '';
      const t = watch(r, svc);
      const v = await t.endpoints((ids) => ids.length > 0);
      expect(v.set.endpoints.map((e) => e.id)).toEqual([`${name}-1`]);
    });

    it('starts the request timeout when the request is on a socket (#12)', async () => {
      const t = target();
      const http = new ConsulHttp({
        address: t.address,
        ...(t.token ? { token: t.token } : {}),
        maxConnections: 1,
      });
      closers.push(() => http.close());
      const name = uniqueName('socket-timer');
      const first = await http.request(`/v1/health/service/${name}`);
      // One connection, held by a 2.5 s blocking query; a 1.5 s request queued behind it must not
      // time out while it waits for the connection.
      const blocking = http.request(`/v1/health/service/${name}`, {
        query: { index: first.index ?? '1', wait: '2500ms' },
      });
      const queued = http.request(`/v1/health/service/${name}-other`, { timeoutMs: 1_500 });
      await expect(queued).resolves.toMatchObject({ status: 200 });
      await blocking;
    });

    itDouble(
      'with more watches than connections, an update to any watched service arrives at once (#12)',
      async () => {
        const d = dbl();
        const names = Array.from({ length: 80 }, () => uniqueName('many'));
        const a = agent();
        // Existing, quiet services: their blocking queries hold connections for the whole wait
        // (an unknown service's would return on any catalog write).
        for (const n of names) await a.register(ttlService(n, `${n}-1`));
        const r = resolver({ waitMs: 60_000 });
        const watchers = names.map((n) => watch(r, n));
        await Promise.all(watchers.map((w) => w.endpoints((ids) => ids.length === 1)));
        await waitFor(() => d.blockedQueries >= 64);
        // A watch whose blocking query has not reached the agent (it waits for a connection) is the
        // one that starved: a change to its service came only after some other query's `wait`.
        await waitFor(async () => {
          const before = d.blockedQueries;
          await new Promise((res) => setTimeout(res, 100));
          return d.blockedQueries === before;
        });
        const blocked = new Set(d.blockedServices());
        const i = Math.max(
          0,
          names.findIndex((n) => !blocked.has(n)),
        );
        const target = names[i] ?? '';
        const t0 = performance.now();
        await a.register(ttlService(target, `${target}-2`, { Address: '10.1.0.2' }));
        await watchers[i]?.endpoints((ids) => ids.length === 2);
        expect(performance.now() - t0).toBeLessThan(5_000);
        expect(watchers.flatMap((w) => w.updates).filter((u) => u.kind === 'error')).toEqual([]);
      },
    );

    itDouble(
      'beyond the long-poll cap, watches take turns, still see updates, and a warning is raised (#12)',
      async () => {
        const d = dbl();
        const events: ConsulResolverEvent[] = [];
        const names = Array.from({ length: 4 }, () => uniqueName('capped'));
        const a = agent();
        for (const n of names) await a.register(ttlService(n, `${n}-1`));
        const r = resolver({ waitMs: 2_000, maxLongPolls: 2, onLongPollLimit: (e) => events.push(e) });
        const watchers = names.map((n) => watch(r, n));
        await Promise.all(watchers.map((w) => w.endpoints((ids) => ids.length === 1)));
        expect(events).toEqual([{ type: 'long-poll-limit', watches: 3, limit: 2 }]);
        await waitFor(() => d.blockedQueries === 2);
        // A watch waiting for its turn still sees a change within about one wait.
        const blocked = new Set(d.blockedServices());
        const i = Math.max(
          0,
          names.findIndex((n) => !blocked.has(n)),
        );
        const target = names[i] ?? '';
        const t0 = performance.now();
        await a.register(ttlService(target, `${target}-2`, { Address: '10.1.0.2' }));
        await watchers[i]?.endpoints((ids) => ids.length === 2);
        expect(performance.now() - t0).toBeLessThan(5_000);
        expect(d.blockedQueries).toBeLessThanOrEqual(2);
      },
    );

    itDouble('a failed node drops all its instances with one index bump (#12)', async () => {
      const a = agent();
      const d = dbl();
      const node = uniqueName('node-b');
      const web = uniqueName('web');
      const api = uniqueName('api');
      await a.catalogRegister({
        Node: node,
        Address: '10.7.0.1',
        Service: { Service: web, ID: `${web}-b`, Port: 80 },
        Check: { CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing' },
      });
      await a.catalogRegister({
        Node: node,
        Address: '10.7.0.1',
        Service: { Service: api, ID: `${api}-b`, Port: 81 },
      });
      await a.register(ttlService(web, `${web}-local`));
      const r = resolver();
      const ws = watch(r, web);
      const as = watch(r, api);
      await ws.endpoints((ids) => ids.length === 2);
      await as.endpoints((ids) => ids.length === 1);
      const before = d.index;
      d.failNode(node);
      expect(d.index).toBe(before + 1);
      await ws.endpoints((ids) => ids.length === 1 && ids[0] === `${web}-local`);
      await as.endpoints((ids) => ids.length === 0);
    });

    itDouble('after a 429 no two calls come within base/2: floored jitter, longer base (#12)', async () => {
      const a = agent();
      const d = dbl();
      const name = uniqueName('throttled');
      await a.register(ttlService(name, `${name}-1`));
      const clock = new VirtualClock();
      const backoff = { baseMs: 1_000, capMs: 60_000, throttledBaseMs: 5_000 };
      const r = resolver({ clock, random: seededRandom(3), backoff });
      const expected = seededRandom(3);
      d.failNext(429, 3, { pathPrefix: `/v1/health/service/${name}` });
      const w = watch(r, name);
      const count = () => d.requests.filter((x) => x.path.endsWith(name)).length;
      for (let attempt = 0; attempt < 3; attempt++) {
        await w.error(() => true, 0);
        await waitFor(() => w.updates.filter((u) => u.kind === 'error').length >= attempt + 1);
        const delay = consulRetryDelay(attempt, backoff, expected, true);
        const step = Math.min(60_000, 5_000 * 2 ** attempt);
        expect(delay).toBeGreaterThanOrEqual(step / 2);
        const seen = count();
        await clock.advance(2_500 - 1); // base/2 of the throttled base
        await flushPromises();
        expect(count(), `a call within base/2 after 429 #${attempt + 1}`).toBe(seen);
        await clock.advance(delay - (2_500 - 1) - 1);
        await flushPromises();
        expect(count()).toBe(seen);
        await clock.advance(1);
        await waitFor(() => count() > seen);
      }
      await w.endpoints((ids) => ids.length === 1);
    });

    itDouble('honours Retry-After on 503 (#12)', async () => {
      const a = agent();
      const d = dbl();
      const name = uniqueName('retry-after');
      await a.register(ttlService(name, `${name}-1`));
      const clock = new VirtualClock();
      const r = resolver({ clock, random: seededRandom(1), backoff: { baseMs: 100, capMs: 1_000 } });
      d.failNext(503, 1, { pathPrefix: `/v1/health/service/${name}`, retryAfter: '7' });
      const w = watch(r, name);
      const count = () => d.requests.filter((x) => x.path.endsWith(name)).length;
      await w.error();
      await clock.advance(6_999);
      await flushPromises();
      expect(count()).toBe(1);
      await clock.advance(1);
      await w.endpoints((ids) => ids.length === 1);
    });

    itDouble(
      'Enterprise: registers, heartbeats and deregisters in the configured namespace, where a resolver finds it (#12)',
      async () => {
        const e = await startConsulDouble({ enterprise: true });
        closers.push(() => e.close());
        const clock = new VirtualClock();
        const ev = eventsOf();
        const reg = createConsulRegistrar({
          address: e.address,
          namespace: 'team-a',
          partition: 'p1',
          clock,
          onEvent: ev.onEvent,
        });
        closers.push(() => reg.close());
        const inst = await reg.register({ service: 'ns-svc', id: 'ns-1', address: '10.8.0.1', port: 80 });
        const r = createConsulResolver({
          address: e.address,
          namespace: 'team-a',
          partition: 'p1',
          minIntervalMs: 0,
          waitMs: 5_000,
        });
        closers.push(() => r.close());
        const w = new Watcher(r, 'ns-svc');
        closers.push(() => w.dispose());
        await w.endpoints((ids) => ids.length === 1);
        await clock.advance(5_000);
        await ev.until(() => ev.events.some((x) => x.type === 'heartbeat'));
        await inst.deregister();
        await w.endpoints((ids) => ids.length === 0);
        const writes = e.requests.filter((x) => x.method === 'PUT');
        expect(writes.length).toBeGreaterThanOrEqual(3);
        for (const x of writes)
          expect([x.query.get('ns'), x.query.get('partition')]).toEqual(['team-a', 'p1']);
      },
    );

    itDouble(
      'CE: a namespace is refused with MESH_CONFIG_INVALID naming CONSUL_NAMESPACE (#12)',
      async () => {
        const d = dbl();
        const reg = registrar({ namespace: 'team-a' });
        const err = await reg
          .register({ service: 'x', address: '10.0.0.1', port: 1 })
          .catch((x: unknown) => x);
        expect(MeshError.is(err, 'MESH_CONFIG_INVALID')).toBe(true);
        expect((err as MeshError).details.field).toBe('CONSUL_NAMESPACE');
        expect((err as MeshError).message).toContain('Consul Enterprise');
        expect(Object.keys(d.agentServices())).not.toContain('x-10.0.0.1-1');
        const w = watch(resolver({ namespace: 'team-a' }), uniqueName('ns'));
        const e = await w.error();
        expect(e.error.code).toBe('MESH_CONFIG_INVALID');
        expect(e.error.details.field).toBe('CONSUL_NAMESPACE');
      },
    );

    itDouble('resolves a large service (a 5 MB answer) with the default options (#12)', async () => {
      const a = agent();
      const d = dbl();
      const name = uniqueName('large');
      await a.register(ttlService(name, `${name}-1`));
      const w = watch(resolver(), name);
      await w.endpoints((ids) => ids.length === 1);
      const entry = (i: number) => ({
        Node: { Node: `node-${i}`, Address: `10.9.${i >> 8}.${i & 255}`, Meta: { rack: 'r'.repeat(200) } },
        Service: {
          ID: `${name}-${i}`,
          Service: name,
          Address: '',
          Port: 8080,
          Tags: ['t'.repeat(300)],
          Meta: { m: 'v'.repeat(400) },
        },
        Checks: [{ CheckID: 'serfHealth', Status: 'passing', Output: 'o'.repeat(300) }],
      });
      const body = JSON.stringify(Array.from({ length: 4_000 }, (_, i) => entry(i)));
      expect(body.length).toBeGreaterThan(5 * 1024 * 1024);
      d.garbage(name, body);
      await w.endpoints((ids) => ids.length === 4_000);
    });

    itDouble(
      'an oversized answer is not fetched again before the service changes, and the error suggests a tag or filter (#12)',
      async () => {
        const a = agent();
        const d = dbl();
        const name = uniqueName('oversized');
        await a.register(ttlService(name, `${name}-1`));
        const clock = new VirtualClock();
        const w = watch(resolver({ maxBodyBytes: 4_096, clock, backoff: { baseMs: 100, capMs: 100 } }), name);
        await w.endpoints((ids) => ids.length === 1);
        const at = w.updates.length;
        d.garbage(name, JSON.stringify(Array.from({ length: 200 }, () => ({ pad: 'x'.repeat(100) }))));
        const bigIndex = d.indexOf(name);
        const e = await w.error(() => true, at);
        expect(e.error.code).toBe('MESH_REGISTRY_PAYLOAD_INVALID');
        expect(e.error.message).toMatch(/tag/);
        expect(e.error.message).toMatch(/filter/);
        await clock.advance(100);
        await waitFor(() => d.blockedQueries > 0);
        const qs = d.requests.filter((x) => x.path.endsWith(name));
        expect(qs.at(-1)?.query.get('index')).toBe(String(bigIndex));
      },
    );

    itDouble('a shutdown during a re-registration leaves the instance deregistered (#12)', async () => {
      const d = dbl();
      const name = uniqueName('race');
      const id = `${name}-1`;
      const clock = new VirtualClock();
      const ev = eventsOf();
      const reg = registrar({ clock, onEvent: ev.onEvent });
      const inst = await reg.register({
        service: name,
        id,
        address: '10.9.0.1',
        port: 80,
        check: { kind: 'ttl', ttlMs: 30_000 },
      });
      d.restartAgent();
      const release = d.holdNext('/v1/agent/service/register');
      const registers = () => d.requests.filter((x) => x.path === '/v1/agent/service/register').length;
      const n = registers();
      await clock.advance(10_000); // heartbeat → 404 → register again (held by the agent)
      await waitFor(() => registers() > n);
      const deregs = () =>
        d.requests.filter((x) => x.path.startsWith('/v1/agent/service/deregister/')).length;
      const gone = inst.deregister(); // shutdown while the re-registration is in flight
      // A deregistration that overtakes the held registration reaches the agent now (bounded).
      await waitFor(() => deregs() > 0, 300).catch(() => undefined);
      release();
      await gone;
      await ev.until(() => ev.events.some((x) => x.type === 'reregistered'));
      expect(d.agentServices()[id]).toBeUndefined();
    });
  });
}
