import { VirtualClock } from '@proxyless/core/testing';
import { createMesh, type Mesh } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDnsResolver, type DnsResolver } from '../../../packages/discovery/src/dns/resolver.js';
import { type Dnsmasq, dnsmasqBinary, startDnsmasq } from '../../support/dnsmasq.js';
import { startServer, type TestServer } from '../../support/http-server.js';
import { nextEvent } from '../../support/mesh-events.js';

const bin = dnsmasqBinary();

describe.skipIf(!bin.available)(`mesh.fetch over DNS discovery (real dnsmasq) ${bin.skipReason}`, () => {
  let dns: Dnsmasq;
  let servers: TestServer[] = [];
  let resolver: DnsResolver;
  let mesh: Mesh;
  const clock = new VirtualClock();

  beforeAll(async () => {
    servers = await Promise.all(['a', 'b'].map((n) => startServer(n)));
    dns = await startDnsmasq({
      ttl: 30,
      srv: servers.map((s, i) => ({
        name: '_http._tcp.greeter.mesh.test',
        target: `node-${i}.mesh.test`,
        port: s.port,
        priority: 1,
        weight: 10,
      })),
      hosts: servers.map((_, i) => ({ name: `node-${i}.mesh.test`, addresses: ['127.0.0.1'] })),
    });
    // DNS refreshes run on a virtual clock; HTTP runs in real time.
    resolver = createDnsResolver({
      servers: [dns.server],
      domains: ['mesh.test'],
      clock,
      minRefreshMs: 1_000,
    });
    mesh = createMesh({ env: {}, resolvers: [resolver] });
  });
  afterAll(async () => {
    await mesh?.close();
    await resolver?.close();
    await dns?.close();
    await Promise.all(servers.map((s) => s.close()));
  });

  it('routes to the SRV endpoints and keeps routing on the last set while DNS is down', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const res = await mesh.fetch('http://greeter.mesh.test/');
      expect(res.status).toBe(200);
      seen.add(await res.text());
    }
    expect([...seen].sort()).toEqual(['a', 'b']);
    expect(mesh.endpoints('greeter.mesh.test')?.endpoints).toHaveLength(2);

    await dns.stop();
    const failed = nextEvent(mesh, (e) => e.type === 'resolver_error');
    await clock.next(); // TTL refresh → ECONNREFUSED from the stopped server
    const event = await failed;
    if (event.type !== 'resolver_error') throw new Error('expected resolver_error');
    expect(event.error.code).toBe('MESH_REGISTRY_UNAVAILABLE');
    expect(resolver.current('greeter.mesh.test')?.stale).toBe(true);
    for (let i = 0; i < 4; i++) {
      const res = await mesh.fetch('http://greeter.mesh.test/');
      expect(res.status).toBe(200);
      await res.text();
    }

    await dns.start();
    await clock.next(); // backoff retry
    await expect.poll(() => resolver.current('greeter.mesh.test')?.stale, { timeout: 5_000 }).toBe(false);
    const res = await mesh.fetch('http://greeter.mesh.test/');
    expect(res.status).toBe(200);
    await res.text();
  });

  it('is selected and configured by environment variables alone (MESH_REGISTRY=dns)', async () => {
    if (!dns.running) await dns.start();
    const fromEnv = createMesh({
      env: { MESH_REGISTRY: 'dns', MESH_DNS_SERVERS: `127.0.0.1:${dns.port}`, MESH_DNS_DOMAIN: 'mesh.test' },
    });
    try {
      const seen = new Set<string>();
      for (let i = 0; i < 6; i++) {
        const res = await fromEnv.fetch('http://greeter.mesh.test/');
        expect(res.status).toBe(200);
        seen.add(await res.text());
      }
      expect([...seen].sort()).toEqual(['a', 'b']);
      expect(fromEnv.endpoints('greeter.mesh.test')?.source).toBe('dns');
    } finally {
      await fromEnv.close();
    }
  });

  it('rejects bad DNS variables at createMesh, naming each', () => {
    expect(() =>
      createMesh({
        env: {
          MESH_REGISTRY: 'dns',
          MESH_DNS_SERVERS: '127.0.0.1:99999',
          MESH_DNS_DOMAIN: 'mesh.test',
          MESH_DNS_MIN_REFRESH: 'often',
        },
      }),
    ).toThrow(/MESH_DNS_SERVERS[\s\S]*MESH_DNS_MIN_REFRESH|MESH_DNS_MIN_REFRESH[\s\S]*MESH_DNS_SERVERS/);
  });

  it('looks the name up again when a connect to its endpoint fails, not only when the TTL ends', async () => {
    // The service moved (its SRV record now names another port) while the old answer had 300 s to
    // live: every call failed to connect until then.
    const before = await startServer('before');
    const records = (port: number) => ({
      ttl: 300,
      srv: [{ name: '_http._tcp.moving.mesh.test', target: 'host.mesh.test', port, priority: 1, weight: 1 }],
      hosts: [{ name: 'host.mesh.test', addresses: ['127.0.0.1'] }],
    });
    const own = await startDnsmasq(records(before.port));
    const ownClock = new VirtualClock();
    const r = createDnsResolver({
      servers: [own.server],
      domains: ['mesh.test'],
      clock: ownClock,
      minRefreshMs: 1_000,
    });
    const m = createMesh({ env: {}, resolvers: [r] });
    let after: TestServer | undefined;
    try {
      expect(await (await m.fetch('http://moving.mesh.test/')).text()).toBe('before');
      await before.close();
      after = await startServer('after');
      await own.update(records(after.port));
      // Past the shortest refresh interval, far from the TTL.
      await ownClock.advance(1_000);
      const moved = nextEvent(
        m,
        (e) =>
          e.type === 'endpoints_changed' &&
          e.service === 'moving.mesh.test' &&
          e.set.endpoints[0]?.port === after?.port,
      );
      // This call's connect is refused: the hint to look the name up again.
      await m.fetch('http://moving.mesh.test/').then(
        (res) => res.arrayBuffer(),
        () => undefined,
      );
      await moved;
      const res = await m.fetch('http://moving.mesh.test/');
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('after');
    } finally {
      await m.close();
      await r.close();
      await own.close();
      await after?.close();
    }
  });
});
