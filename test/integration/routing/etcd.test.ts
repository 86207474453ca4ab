import { Registry } from 'prom-client';
import { createMesh, type Mesh, type MeshEvent } from 'proxyless';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type EtcdServer, etcdBinary, startEtcd } from '../../support/etcd-server.js';
import { nextEvent } from '../../support/mesh-events.js';
import { applied, checkRouting, load, rejected, type Servers, startServers, webEntries } from './scenario.js';

const bin = etcdBinary();

describe.skipIf(!bin.available)(
  `traffic management from etcd /proxyless/config/ (real etcd) ${bin.skipReason}`,
  () => {
    let etcd: EtcdServer;
    let servers: Servers;
    let mesh: Mesh | undefined;
    beforeAll(async () => {
      [etcd, servers] = await Promise.all([startEtcd(), startServers()]);
      const ep = (s: { host: string; port: number }, version: string) =>
        JSON.stringify({ address: s.host, port: s.port, metadata: { version } });
      await etcd.put('/proxyless/services/web/v1', ep(servers.v1, 'v1'));
      await etcd.put('/proxyless/services/web/v2', ep(servers.v2, 'v2'));
      await etcd.put('/proxyless/services/admin/a', ep(servers.admin, 'v1'));
    });
    afterEach(async () => {
      await mesh?.close();
      mesh = undefined;
    });
    afterAll(async () => {
      await servers?.close();
      await etcd?.stop();
    });

    const putEntries = async (entries: unknown[]): Promise<void> => {
      for (const e of entries) {
        const { Kind, Name } = e as { Kind: string; Name: string };
        await etcd.put(`/proxyless/config/${Kind}/${Name}`, JSON.stringify(e));
      }
    };
    const env = () => ({ MESH_REGISTRY: 'etcd', MESH_ETCD_ENDPOINTS: etcd.endpoint });

    it('routes Consul’s documented examples from etcd keys', async () => {
      await putEntries(webEntries(10));
      mesh = createMesh({ env: env() });
      await applied(mesh, 'etcd');
      await checkRouting(mesh);
    });

    it('keeps the last good version when a bad entry is written, and fails over with 0 failed GETs', async () => {
      await putEntries(webEntries(0));
      mesh = createMesh({ env: env() });
      const m = mesh;
      await applied(m, 'etcd');
      expect((await load(m, 'http://web/', 40)).by).toEqual({ v1: 40 });

      const rej = rejected(m, 'etcd');
      await etcd.put(
        '/proxyless/config/service-splitter/web',
        JSON.stringify({
          Kind: 'service-splitter',
          Name: 'web',
          Splits: [{ Weight: -5, ServiceSubset: 'v2' }],
        }),
      );
      const event = await rej;
      expect(event.error.code).toBe('MESH_CONFIG_INVALID');
      expect(event.error.message).toMatch(/service-splitter\/web/);
      expect(event.version).toBeGreaterThan(0);
      expect((await load(m, 'http://web/', 100)).by).toEqual({ v1: 100 });

      const ok = applied(m, 'etcd');
      await putEntries(webEntries(0));
      await ok;

      const gone = nextEvent(
        m,
        (e) => e.type === 'endpoints_changed' && e.service === 'web' && e.set.endpoints.length === 0,
      );
      await etcd.del('/proxyless/services/web/v1');
      await gone;
      expect(await load(m, 'http://web/', 200)).toEqual({ by: { v2: 200 }, failed: 0, errors: [] });
      await etcd.put(
        '/proxyless/services/web/v1',
        JSON.stringify({ address: servers.v1.host, port: servers.v1.port, metadata: { version: 'v1' } }),
      );
    });
    it('an etcd outage is a config_source_error and stale in /config_dump; the entries in force keep routing (probe28)', async () => {
      await putEntries(webEntries(0));
      mesh = createMesh({ env: { ...env(), MESH_ADMIN_PORT: '0' }, metrics: { registry: new Registry() } });
      const m = mesh;
      await applied(m, 'etcd');
      const url = await m.admin();
      const routing = async () =>
        (
          (await (await fetch(`${url}/config_dump`)).json()) as {
            routing: { etcd?: Record<string, unknown> };
          }
        ).routing.etcd;
      // Endpoints resolved before the outage: they stay (stale), as the routing does.
      expect((await load(m, 'http://web/', 20)).by).toEqual({ v1: 20 });
      const before = await routing();
      expect(before).toMatchObject({ stale: false });
      expect(before?.version).toBeGreaterThan(0);

      const failed = nextEvent(m, (e) => e.type === 'config_source_error');
      await etcd.halt();
      try {
        expect(await failed).toMatchObject({ source: 'etcd', error: { code: 'MESH_REGISTRY_UNAVAILABLE' } });
        expect(await routing()).toMatchObject({
          version: before?.version,
          stale: true,
          lastError: { code: 'MESH_REGISTRY_UNAVAILABLE' },
        });
        expect((await load(m, 'http://web/', 20)).by).toEqual({ v1: 20 });
      } finally {
        await etcd.resume();
      }
      await expect.poll(async () => (await routing())?.stale, { timeout: 20_000, interval: 100 }).toBe(false);
      expect((await routing())?.lastError).toBeUndefined();
    });
    it('one registry failure is one resolver_error for a routed service; targets report their subsets as targets (probe28)', async () => {
      await putEntries(webEntries(50));
      const registry = new Registry();
      mesh = createMesh({ env: env(), metrics: { registry } });
      const m = mesh;
      await applied(m, 'etcd');
      // Both split targets and the service's own destination are live.
      expect((await load(m, 'http://web/', 40)).failed).toBe(0);
      const events: MeshEvent[] = [];
      m.onEvent((e) => {
        if ((e.type === 'resolver_error' || e.type === 'endpoints_changed') && e.service === 'web')
          events.push(e);
      });
      const failed = nextEvent(m, (e) => e.type === 'resolver_error' && e.service === 'web');
      await etcd.put('/proxyless/services/web/zz', 'not json');
      await failed;
      const fixed = nextEvent(
        m,
        (e) =>
          e.type === 'endpoints_changed' &&
          e.service === 'web' &&
          !e.set.stale &&
          !('target' in e && e.target),
      );
      await etcd.del('/proxyless/services/web/zz');
      await fixed;
      expect(events.filter((e) => e.type === 'resolver_error')).toHaveLength(1);
      const errors = (await registry.getSingleMetric('mesh_resolver_errors_total')?.get())?.values.find(
        (v) => v.labels.service === 'web',
      );
      expect(errors?.value).toBe(1);
      // The service's own set is reported without a target; each target's subset with its ID.
      const changed = events.filter((e) => e.type === 'endpoints_changed');
      const own = changed.filter((e) => !e.target);
      expect(own.map((e) => e.set.endpoints.length)).toEqual([2, 2]);
      const targets = new Set(changed.filter((e) => e.target).map((e) => e.target));
      expect([...targets].sort()).toEqual(['v1.web.default.default.dc1', 'v2.web.default.default.dc1']);
      for (const e of changed.filter((x) => x.target)) expect(e.set.endpoints).toHaveLength(1);
      // mesh_endpoints counts the service's two endpoints, not a target's one.
      const endpoints = (await registry.getSingleMetric('mesh_endpoints')?.get())?.values
        .filter((v) => v.labels.service === 'web')
        .reduce((n, v) => n + v.value, 0);
      expect(endpoints).toBe(2);
    });

    it('a registry that keeps failing reports its stale set once per destination, not once per retry (probe28)', async () => {
      mesh = createMesh({ env: env() });
      const m = mesh;
      expect((await load(m, 'http://admin/', 5)).failed).toBe(0);
      const events: MeshEvent[] = [];
      m.onEvent((e) => {
        if ((e.type === 'resolver_error' || e.type === 'endpoints_changed') && e.service === 'admin')
          events.push(e);
      });
      await etcd.halt();
      try {
        // Several failed retries while etcd is down.
        await expect
          .poll(() => events.filter((e) => e.type === 'resolver_error').length, {
            timeout: 20_000,
            interval: 50,
          })
          .toBeGreaterThanOrEqual(3);
      } finally {
        await etcd.resume();
      }
      const stale = events.filter((e) => e.type === 'endpoints_changed' && e.set.stale);
      expect(stale).toHaveLength(1);
    });

    it('MESH_ETCD_CONFIG_PREFIX reads the config entries from another prefix, and off reads none', async () => {
      // The prefix was fixed at /proxyless/config/: a second mesh in the same etcd, or a user whose
      // role may read only the service keys, could not move or turn off the watch.
      await putEntries(webEntries(0));
      for (const e of webEntries(100)) {
        const { Kind, Name } = e as { Kind: string; Name: string };
        await etcd.put(`/staging/config/${Kind}/${Name}`, JSON.stringify(e));
      }
      mesh = createMesh({ env: { ...env(), MESH_ETCD_CONFIG_PREFIX: '/staging/config' } });
      await applied(mesh, 'etcd');
      expect((await load(mesh, 'http://web/', 40)).by).toEqual({ v2: 40 });
      await mesh.close();

      const events: string[] = [];
      mesh = createMesh({ env: { ...env(), MESH_ETCD_CONFIG_PREFIX: 'off' } });
      mesh.onEvent((e) => {
        if ('source' in e && e.source === 'etcd') events.push(e.type);
      });
      // No entries: the service's endpoints are balanced as they are, v1 and v2 alike.
      const { by, failed } = await load(mesh, 'http://web/', 40);
      expect(failed).toBe(0);
      expect(Object.keys(by).sort()).toEqual(['v1', 'v2']);
      expect(events).toEqual([]);
    });
  },
);
