import { createMesh, type Mesh, type MeshEvent } from 'proxyless';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Dnsmasq, dnsmasqBinary, startDnsmasq } from '../../support/dnsmasq.js';
import { startServer, type TestServer } from '../../support/http-server.js';
import { nextEvent } from '../../support/mesh-events.js';
import { refusingPort } from '../../support/ports.js';

/** `n` GETs one after another; the answers by server name, and the failures. */
async function calls(
  mesh: Mesh,
  url: string,
  n: number,
): Promise<{ by: Map<string, number>; errors: string[] }> {
  const by = new Map<string, number>();
  const errors: string[] = [];
  for (let i = 0; i < n; i++) {
    try {
      const res = await mesh.fetch(url);
      const who = await res.text();
      if (res.status === 200) by.set(who, (by.get(who) ?? 0) + 1);
      else errors.push(`status ${res.status}`);
    } catch (error) {
      errors.push(String((error as Error).message));
    }
  }
  return { by, errors };
}

describe('priority levels: a backup endpoint takes calls only when the primaries cannot', () => {
  let primary: TestServer;
  let backup: TestServer;
  let dead: number;
  const meshes: Mesh[] = [];
  beforeAll(async () => {
    [primary, backup] = await Promise.all([startServer('primary'), startServer('backup')]);
    dead = await refusingPort();
  });
  afterAll(async () => {
    await Promise.all([primary, backup].map((s) => s.close()));
  });
  afterEach(async () => {
    await Promise.all(meshes.splice(0).map((m) => m.close()));
  });

  const mesh = (endpoints: unknown[]): Mesh => {
    const m = createMesh({ env: {}, services: { api: { endpoints } as never } });
    meshes.push(m);
    return m;
  };

  it('all calls go to priority 0 while it is healthy; the backup gets none', async () => {
    const m = mesh([
      { address: '127.0.0.1', port: primary.port },
      { address: '127.0.0.1', port: backup.port, priority: 1 },
    ]);
    const { by, errors } = await calls(m, 'http://api/', 40);
    expect(errors).toEqual([]);
    expect(by).toEqual(new Map([['primary', 40]]));
    expect(m.stats('api')?.priorities).toEqual([
      { priority: 0, load: 100 },
      { priority: 1, load: 0 },
    ]);
  });

  it('a primary refusing connections: every call answered by the backup, 0 errors', async () => {
    const m = mesh([
      { address: '127.0.0.1', port: dead },
      { address: '127.0.0.1', port: backup.port, priority: 1 },
    ]);
    const events: MeshEvent[] = [];
    m.onEvent((e) => events.push(e));
    const { by, errors } = await calls(m, 'http://api/', 30);
    // The first call's connect is refused and retried on the backup (the default retry policy).
    expect(errors).toEqual([]);
    expect(by).toEqual(new Map([['backup', 30]]));
    expect(m.stats('api')?.priorities).toEqual([
      { priority: 0, load: 0 },
      { priority: 1, load: 100 },
    ]);
    const dead0 = m.stats('api')?.endpoints.find((e) => e.port === dead);
    expect(dead0?.requests).toBe(1);
  });

  it('a primary answering 503: ejected by outlier detection, then the backup takes every call', async () => {
    let status = 200;
    const flaky = await startServer('flaky', (req, res) => {
      req.resume();
      res.writeHead(status);
      res.end('flaky');
    });
    try {
      const m = mesh([
        { address: '127.0.0.1', port: flaky.port },
        { address: '127.0.0.1', port: backup.port, priority: 1 },
      ]);
      const events: MeshEvent[] = [];
      m.onEvent((e) => events.push(e));
      expect((await calls(m, 'http://api/', 10)).by).toEqual(new Map([['flaky', 10]]));
      status = 503;
      // Each 503 is retried (the default policy) on the backup: the caller sees 200s only.
      const { by, errors } = await calls(m, 'http://api/', 30);
      expect(errors).toEqual([]);
      expect(by).toEqual(new Map([['backup', 30]]));
      const flakyStats = m.stats('api')?.endpoints.find((e) => e.port === flaky.port);
      expect(flakyStats).toMatchObject({ ejected: true, priority: 0 });
      // Five consecutive 5xx eject it; no call reaches it after that.
      expect(flakyStats?.requests).toBe(15);
      expect(m.stats('api')?.priorities).toEqual([
        { priority: 0, load: 0 },
        { priority: 1, load: 100 },
      ]);
      const kinds = events.flatMap((e) => (e.type === 'balancer' ? [e.event.type] : []));
      expect(kinds).toEqual(expect.arrayContaining(['eject', 'priority_load']));
    } finally {
      await flaky.close();
    }
  });

  it('a primary failing its active health check: the backup takes every call, and gives them back when it passes', async () => {
    let healthy = true;
    const checked = await startServer('checked', (req, res) => {
      req.resume();
      res.writeHead(req.url === '/healthz' && !healthy ? 503 : 200);
      res.end('checked');
    });
    try {
      const m = createMesh({
        env: {},
        services: {
          api: {
            endpoints: [
              { address: '127.0.0.1', port: checked.port },
              { address: '127.0.0.1', port: backup.port, priority: 1 },
            ],
            healthCheck: {
              path: '/healthz',
              interval: '20ms',
              timeout: '15ms',
              unhealthyThreshold: 1,
              healthyThreshold: 1,
            },
          },
        } as never,
      });
      meshes.push(m);
      expect((await calls(m, 'http://api/', 5)).by).toEqual(new Map([['checked', 5]]));
      const failover = nextEvent(m, (e) => e.type === 'balancer' && e.event.type === 'priority_load');
      healthy = false;
      await failover;
      expect((await calls(m, 'http://api/', 10)).by).toEqual(new Map([['backup', 10]]));
      const back = nextEvent(m, (e) => e.type === 'balancer' && e.event.type === 'priority_load');
      healthy = true;
      await back;
      expect((await calls(m, 'http://api/', 10)).by).toEqual(new Map([['checked', 10]]));
    } finally {
      await checked.close();
    }
  });

  it('refuses a bad priority, naming the field and value, and applies nothing', () => {
    expect(() =>
      createMesh({
        env: {},
        services: { api: { endpoints: [{ address: '127.0.0.1', port: 80, priority: -1 }] } as never },
      }),
    ).toThrow(/services\.api\.endpoints\[0\]\.priority[\s\S]*-1/);
    expect(() =>
      createMesh({
        env: {},
        services: { api: { endpoints: [{ address: '127.0.0.1', port: 80, priority: 1.5 }] } as never },
      }),
    ).toThrow(/services\.api\.endpoints\[0\]\.priority[\s\S]*1\.5/);
  });
});

const bin = dnsmasqBinary();

describe.skipIf(!bin.available)(`SRV priorities through a real dnsmasq ${bin.skipReason}`, () => {
  let dns: Dnsmasq;
  let backup: TestServer;
  let mesh: Mesh;
  beforeAll(async () => {
    backup = await startServer('backup');
    const dead = await refusingPort();
    dns = await startDnsmasq({
      ttl: 30,
      srv: [
        {
          name: '_http._tcp.pay.mesh.test',
          target: 'primary.mesh.test',
          port: dead,
          priority: 10,
          weight: 1,
        },
        {
          name: '_http._tcp.pay.mesh.test',
          target: 'backup.mesh.test',
          port: backup.port,
          priority: 20,
          weight: 1,
        },
      ],
      hosts: [
        { name: 'primary.mesh.test', addresses: ['127.0.0.1'] },
        { name: 'backup.mesh.test', addresses: ['127.0.0.1'] },
      ],
    });
    mesh = createMesh({
      env: { MESH_REGISTRY: 'dns', MESH_DNS_SERVERS: dns.server, MESH_DNS_DOMAIN: 'mesh.test' },
    });
  });
  afterAll(async () => {
    await mesh?.close();
    await dns?.close();
    await backup?.close();
  });

  it('the priority 10 target refuses connections: the priority 20 target answers every call', async () => {
    // Only the lowest group used to be given to the balancer: every call failed while the backup
    // group stood unused in DNS.
    const { by, errors } = await calls(mesh, 'http://pay.mesh.test/', 20);
    expect(errors).toEqual([]);
    expect(by).toEqual(new Map([['backup', 20]]));
    expect(
      mesh
        .endpoints('pay.mesh.test')
        ?.endpoints.map((e) => e.priority)
        .sort(),
    ).toEqual([10, 20]);
  });
});
