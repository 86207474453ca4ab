import { VirtualClock } from '@proxyless/core/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createDnsResolver,
  type DnsResolver,
  type DnsResolverOptions,
} from '../../../packages/discovery/src/dns/resolver.js';
import {
  type Dnsmasq,
  type DnsmasqRecords,
  dnsmasqBinary,
  dnsmasqConfig,
  freeUdpTcpPort,
  startDnsmasq,
} from '../../support/dnsmasq.js';
import { summary, watchUpdates } from './updates.js';

const bin = dnsmasqBinary();

const BASE: DnsmasqRecords = {
  ttl: 20,
  srv: [
    { name: '_http._tcp.api.mesh.test', target: 'a.mesh.test', port: 8080, priority: 1, weight: 10 },
    { name: '_http._tcp.api.mesh.test', target: 'b.mesh.test', port: 8081, priority: 1, weight: 30 },
    { name: '_http._tcp.api.mesh.test', target: 'c.mesh.test', port: 9090, priority: 2, weight: 5 },
    // Priority 1 targets without addresses: only the priority 2 group has endpoints.
    {
      name: '_http._tcp.fallback.mesh.test',
      target: 'nowhere.mesh.test',
      port: 8080,
      priority: 1,
      weight: 1,
    },
    { name: '_http._tcp.fallback.mesh.test', target: 'c.mesh.test', port: 9191, priority: 2, weight: 7 },
    // Consul's DNS interface: SRV records of the service name itself, each instance its own port.
    { name: 'web.service.consul', target: 'a.mesh.test', port: 21001, priority: 1, weight: 1 },
    { name: 'web.service.consul', target: 'b.mesh.test', port: 21002, priority: 1, weight: 1 },
    // Weight 0 everywhere: picked evenly.
    { name: '_grpc._tcp.zero.mesh.test', target: 'a.mesh.test', port: 7000, priority: 0, weight: 0 },
    { name: '_grpc._tcp.zero.mesh.test', target: 'b.mesh.test', port: 7000, priority: 0, weight: 0 },
  ],
  hosts: [
    { name: 'a.mesh.test', addresses: ['127.0.0.2', '::1'] },
    { name: 'b.mesh.test', addresses: ['127.0.0.3'] },
    { name: 'c.mesh.test', addresses: ['127.0.0.4'] },
    { name: 'web.mesh.test', addresses: ['127.0.0.5', '127.0.0.6', 'fd00::5'] },
  ],
};

describe.skipIf(!bin.available)(`DNS discovery against a real dnsmasq ${bin.skipReason}`, () => {
  let dns: Dnsmasq;
  const resolvers: DnsResolver[] = [];

  beforeAll(async () => {
    dns = await startDnsmasq(BASE);
  });
  afterAll(async () => {
    await dns?.close();
  });
  afterEach(async () => {
    await Promise.all(resolvers.splice(0).map((r) => r.close()));
    if (!dns.running) await dns.start();
    if (dns.config !== dnsmasqConfig(BASE)) await dns.update(BASE);
  });

  const resolver = (options: Partial<DnsResolverOptions> = {}): DnsResolver => {
    const r = createDnsResolver({ servers: [dns.server], domains: ['mesh.test'], ...options });
    resolvers.push(r);
    return r;
  };

  it('gives every SRV priority group, each endpoint with its priority, SRV weights as endpoint weights', async () => {
    // Only the lowest group was given: with its endpoints down, calls failed while the priority 2
    // group (the backup RFC 2782 says to try next) was never known to the balancer.
    const log = watchUpdates(resolver(), 'api.mesh.test');
    const u = await log.next();
    expect(summary(u)).toEqual([
      '127.0.0.2:8080(10)',
      '127.0.0.3:8081(30)',
      '127.0.0.4:9090(5)',
      '[::1]:8080(10)',
    ]);
    if (u.kind !== 'endpoints') throw new Error('expected endpoints');
    expect(u.set.source).toBe('dns');
    expect(u.set.stale).toBe(false);
    const priorities = Object.fromEntries(u.set.endpoints.map((e) => [e.id, e.priority ?? 0]));
    expect(priorities).toEqual({
      '127.0.0.2:8080': 1,
      '127.0.0.3:8081': 1,
      '[::1]:8080': 1,
      '127.0.0.4:9090': 2,
    });
    const a = u.set.endpoints.find((e) => e.id === '127.0.0.2:8080');
    expect(a?.metadata).toEqual({ 'dns.target': 'a.mesh.test', 'dns.priority': '1' });
  });

  it('a priority group whose targets have no address adds nothing; the next group is there', async () => {
    const log = watchUpdates(resolver(), 'fallback.mesh.test');
    const u = await log.next();
    expect(summary(u)).toEqual(['127.0.0.4:9191(7)']);
    if (u.kind !== 'endpoints') throw new Error('expected endpoints');
    expect(u.set.endpoints[0]?.priority).toBe(2);
  });

  it('honours a custom SRV prefix and spreads evenly when every weight is 0', async () => {
    const log = watchUpdates(resolver({ srv: '_grpc._tcp' }), 'zero.mesh.test');
    expect(summary(await log.next())).toEqual(['127.0.0.2:7000(1)', '127.0.0.3:7000(1)', '[::1]:7000(1)']);
  });

  it('asks SRV of the name itself with srv "name", as Consul DNS answers web.service.consul', async () => {
    // Only a _service._proto prefix could be asked, so Consul DNS gave A records and the default
    // port, never the instances' own ports.
    const log = watchUpdates(resolver({ srv: 'name', domains: ['service.consul'] }), 'web.service.consul');
    expect(summary(await log.next())).toEqual(['127.0.0.2:21001(1)', '127.0.0.3:21002(1)', '[::1]:21001(1)']);
  });

  it('falls back to A and AAAA records of the name with the default port', async () => {
    const log = watchUpdates(resolver({ defaultPort: 8443 }), 'web.mesh.test');
    expect(summary(await log.next())).toEqual([
      '127.0.0.5:8443(1)',
      '127.0.0.6:8443(1)',
      '[fd00::5]:8443(1)',
    ]);
  });

  it('looks up A/AAAA only when SRV is off', async () => {
    const log = watchUpdates(resolver({ srv: false }), 'a.mesh.test');
    expect(summary(await log.next())).toEqual(['127.0.0.2:80(1)', '[::1]:80(1)']);
  });

  it('applies NXDOMAIN from a healthy server as an empty set (not an error)', async () => {
    const log = watchUpdates(resolver(), 'ghost.mesh.test');
    const u = await log.next();
    expect(u.kind).toBe('endpoints');
    if (u.kind === 'endpoints') expect(u.set.endpoints).toEqual([]);
  });

  it('qualifies a short service name with the first domain', async () => {
    const r = resolver({ services: ['web'] });
    expect(r.match('web')).toBe('web');
    expect(r.dnsName('web')).toBe('web.mesh.test');
    const log = watchUpdates(r, 'web');
    expect(summary(await log.next())).toEqual(['127.0.0.5:80(1)', '127.0.0.6:80(1)', '[fd00::5]:80(1)']);
  });

  it('refreshes when the TTL expires (on the injected clock) and picks up changed records', async () => {
    const clock = new VirtualClock();
    const log = watchUpdates(resolver({ clock, minRefreshMs: 1_000, maxRefreshMs: 60_000 }), 'web.mesh.test');
    expect(summary(await log.next())).toHaveLength(3);
    await dns.update({
      ...BASE,
      hosts: [...(BASE.hosts ?? []).slice(0, 3), { name: 'web.mesh.test', addresses: ['127.0.0.9'] }],
    });
    // The only timer is the refresh, due when the 20 s TTL runs out.
    expect(clock.pendingTimers).toBe(1);
    await clock.next();
    expect(clock.now()).toBe(20_000);
    const u = await log.next();
    expect(summary(u)).toEqual(['127.0.0.9:80(1)']);
    if (u.kind === 'endpoints') {
      expect(u.set.updatedAt).toBe(20_000);
      expect(u.set.version).toBe(2);
    }
  });

  it('picks up a change after a 1 s TTL in real time (system clock)', async () => {
    await dns.update({ ...BASE, ttl: 1 });
    const log = watchUpdates(resolver({ minRefreshMs: 100, maxRefreshMs: 60_000 }), 'web.mesh.test');
    expect(summary(await log.next())).toHaveLength(3);
    const startedAt = performance.now();
    await dns.update({
      ...BASE,
      ttl: 1,
      hosts: [...(BASE.hosts ?? []).slice(0, 3), { name: 'web.mesh.test', addresses: ['127.0.0.9'] }],
    });
    // Bounded: unchanged answers are not delivered, so the next update is the change itself.
    const u = await log.until((x) => x.kind === 'endpoints' && x.set.endpoints.length === 1, 5);
    expect(summary(u)).toEqual(['127.0.0.9:80(1)']);
    expect(performance.now() - startedAt).toBeLessThan(3_000);
  });

  it('keeps the refresh interval within minRefresh and maxRefresh', async () => {
    const clock = new VirtualClock();
    // TTL 20 s, but at most 7 s between refreshes.
    const short = watchUpdates(
      resolver({ clock, minRefreshMs: 1_000, maxRefreshMs: 7_000 }),
      'web.mesh.test',
    );
    await short.next();
    await clock.next();
    expect(clock.now()).toBe(7_000);
    const clock2 = new VirtualClock();
    // TTL 20 s, but at least 45 s between refreshes.
    const long = watchUpdates(
      resolver({ clock: clock2, minRefreshMs: 45_000, maxRefreshMs: 90_000 }),
      'web.mesh.test',
    );
    await long.next();
    await clock2.next();
    expect(clock2.now()).toBe(45_000);
  });

  it('keeps the last answer (stale) while the server is down, and recovers', async () => {
    const clock = new VirtualClock();
    const r = resolver({ clock, minRefreshMs: 1_000, backoff: { baseMs: 500, capMs: 4_000 } });
    const log = watchUpdates(r, 'api.mesh.test');
    const first = await log.next();
    expect(first.kind).toBe('endpoints');
    await dns.stop();
    await clock.next(); // the TTL refresh: the closed port answers ICMP "port unreachable"
    const down = await log.next();
    if (down.kind !== 'error') throw new Error('expected an error update');
    expect(down.error.code).toBe('MESH_REGISTRY_UNAVAILABLE');
    expect(down.error.message).toContain(dns.server);
    expect(down.lastGood?.stale).toBe(true);
    expect(down.lastGood?.staleSince).toBe(clock.now());
    expect(summary({ kind: 'endpoints', set: down.lastGood! })).toEqual(summary(first));
    expect(r.current('api.mesh.test')?.stale).toBe(true);
    await dns.start();
    await clock.next(); // the backoff retry
    const back = await log.until((u) => u.kind === 'endpoints', 5);
    if (back.kind !== 'endpoints') throw new Error('expected endpoints');
    expect(back.set.stale).toBe(false);
    expect(summary(back)).toEqual(summary(first));
  });

  it('tries the next server when the first one is down', async () => {
    const deadPort = await freeUdpTcpPort();
    const log = watchUpdates(
      resolver({ servers: [`127.0.0.1:${deadPort}`, dns.server], timeoutMs: 5_000 }),
      'b.mesh.test',
    );
    expect(summary(await log.next())).toEqual(['127.0.0.3:80(1)']);
  });

  it('applies an empty set when the records are removed from a healthy server', async () => {
    const clock = new VirtualClock();
    const log = watchUpdates(resolver({ clock, minRefreshMs: 1_000 }), 'web.mesh.test');
    expect(summary(await log.next())).toHaveLength(3);
    await dns.update({
      ...BASE,
      hosts: (BASE.hosts ?? []).slice(0, 3),
      extra: ['host-record=web2.mesh.test,127.0.0.9'],
    });
    await clock.next();
    const u = await log.next();
    expect(u.kind).toBe('endpoints');
    if (u.kind === 'endpoints') expect(u.set.endpoints).toEqual([]);
    await dns.update(BASE);
  });

  it('retries over TCP when the UDP answer is truncated', async () => {
    const many: DnsmasqRecords = {
      ...BASE,
      srv: Array.from({ length: 40 }, (_, i) => ({
        name: '_http._tcp.big.mesh.test',
        target: `node-${i}.mesh.test`,
        port: 8000 + i,
        priority: 1,
        weight: 1,
      })),
      hosts: Array.from({ length: 40 }, (_, i) => ({
        name: `node-${i}.mesh.test`,
        addresses: [`127.0.1.${i + 1}`],
      })),
    };
    await dns.update(many);
    try {
      const log = watchUpdates(resolver(), 'big.mesh.test');
      const u = await log.next();
      expect(u.kind).toBe('endpoints');
      if (u.kind === 'endpoints') expect(u.set.endpoints).toHaveLength(40);
    } finally {
      await dns.update(BASE);
    }
  });

  it('shares one upstream watch among watchers and stops on close()', async () => {
    const r = resolver();
    const one = watchUpdates(r, 'api.mesh.test');
    const two = watchUpdates(r, 'api.mesh.test');
    const [u1, u2] = await Promise.all([one.next(), two.next()]);
    expect(u1).toBe(u2);
    await r.close();
    expect(r.current('api.mesh.test')).toBeUndefined();
    await expect(r.close()).resolves.toBeUndefined();
  });
});
