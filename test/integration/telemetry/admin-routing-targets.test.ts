/**
 * `/clusters` of a routed service (probe45): a routed call goes through the destination of its
 * routing target, not the service's own, so the admin server lists each target the service's
 * routes and splits lead to, under the service, with the endpoints that took the traffic — a
 * canary's v1 and v2, and another service a route sends to. Before, `/clusters` showed only the
 * service's own destination (every endpoint at 0 requests) and no sign of the targets.
 */
import { Registry } from 'prom-client';
import { createConfigSource, createMesh, type Mesh } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Servers, startServers, webEntries } from '../routing/scenario.js';

interface EndpointJson {
  id: string;
  requests?: number;
  failures?: number;
  connections?: number;
}
interface TargetJson {
  name: string;
  service: string;
  subset?: string;
  resolved: boolean;
  circuitBreaker?: string;
  endpoints: EndpointJson[];
}
interface ServiceJson {
  name: string;
  endpoints: EndpointJson[];
  targets?: TargetJson[];
}

describe('/clusters of a routed service', () => {
  let servers: Servers;
  let mesh: Mesh;
  let url: string;
  const registry = new Registry();
  const endpoint = (version: string, address: string) => {
    const [host, port] = address.split(':');
    return { address: host!, port: Number(port), metadata: { version } };
  };

  beforeAll(async () => {
    servers = await startServers();
    mesh = createMesh({
      env: { MESH_ADMIN_PORT: '0' },
      metrics: { registry },
      configSource: createConfigSource('routes', {
        services: {
          web: { endpoints: [endpoint('v1', servers.v1.address), endpoint('v2', servers.v2.address)] },
          admin: { endpoints: servers.admin.address },
          // A service with no chain.
          plain: { endpoints: servers.admin.address },
        },
        // Consul's examples: v2 gets 0 % of the split, the x-canary header, and /admin/ goes to admin.
        configEntries: webEntries(0) as never,
      }),
    });
    url = (await mesh.admin()) as string;
  });
  afterAll(async () => {
    await mesh?.close();
    await servers?.close();
  });

  const clusters = async (): Promise<ServiceJson[]> =>
    ((await (await fetch(`${url}/clusters`)).json()) as { services: ServiceJson[] }).services;
  const call = async (path: string, headers: Record<string, string> = {}) => {
    const r = await mesh.request(`http://web${path}`, { headers });
    return `${r.statusCode} ${await r.body.text()}`;
  };

  it('lists every target the routes led to, with the endpoints that took its calls', async () => {
    for (let i = 0; i < 3; i++) expect(await call('/x')).toBe('200 v1 /x');
    for (let i = 0; i < 2; i++) expect(await call('/x', { 'x-canary': '1' })).toBe('200 v2 /x');
    expect(await call('/admin/y')).toBe('200 admin /y');
    await (await mesh.request('http://plain/')).body.dump();

    const services = await clusters();
    const web = services.find((s) => s.name === 'web');
    const byId = new Map((web?.targets ?? []).map((t) => [t.name, t]));
    expect([...byId.keys()].sort()).toEqual([
      'admin.default.default.dc1',
      'v1.web.default.default.dc1',
      'v2.web.default.default.dc1',
    ]);
    const v1 = byId.get('v1.web.default.default.dc1')!;
    expect(v1).toMatchObject({ service: 'web', subset: 'v1', resolved: true, circuitBreaker: 'closed' });
    expect(v1.endpoints).toEqual([
      expect.objectContaining({ id: servers.v1.address, requests: 3, failures: 0 }),
    ]);
    // Its pool's connections (the keep-alive ones those calls opened).
    expect(v1.endpoints[0]?.connections).toBeGreaterThanOrEqual(1);
    const v2 = byId.get('v2.web.default.default.dc1')!;
    expect(v2).toMatchObject({ service: 'web', subset: 'v2' });
    expect(v2.endpoints).toEqual([expect.objectContaining({ id: servers.v2.address, requests: 2 })]);
    const admin = byId.get('admin.default.default.dc1')!;
    expect(admin.service).toBe('admin');
    expect(admin.subset).toBeUndefined();
    expect(admin.endpoints).toEqual([expect.objectContaining({ id: servers.admin.address, requests: 1 })]);
    // The service's own destination took none of it; a service with no chain lists no targets.
    expect(web?.endpoints.map((e) => e.requests ?? 0)).toEqual([0, 0]);
    const plain = services.find((s) => s.name === 'plain');
    expect(plain?.targets).toBeUndefined();
    expect(plain?.endpoints).toEqual([expect.objectContaining({ requests: 1 })]);
    // `admin` is reached only through web's route (probe46): its routing target of the whole
    // service is its live destination, listed as a service of its own, as Envoy lists each cluster.
    // Before, mesh.services(), stats('admin'), endpoints('admin') and /clusters knew nothing of it.
    expect(mesh.services()).toContain('admin');
    expect(mesh.stats('admin')?.endpoints).toEqual([
      expect.objectContaining({ id: servers.admin.address, requests: 1, failures: 0 }),
    ]);
    expect(mesh.endpoints('admin')?.endpoints.map((e) => e.id)).toEqual([servers.admin.address]);
    const adminService = services.find((s) => s.name === 'admin');
    expect(adminService?.endpoints).toEqual([
      expect.objectContaining({ id: servers.admin.address, requests: 1 }),
    ]);
    expect(adminService?.endpoints[0]?.connections).toBeGreaterThanOrEqual(1);
    // Its breaker and panic series are there from the moment that destination was built.
    const series = async (name: string) =>
      ((await registry.getMetricsAsJSON()).find((m) => m.name === name)?.values ?? [])
        .filter((v) => v.labels.service === 'admin')
        .map((v) => `${v.labels.state ?? ''}=${v.value}`);
    expect(await series('mesh_circuit_breaker_state')).toEqual(['closed=1', 'open=0', 'half-open=0']);
    expect(await series('mesh_panic_mode')).toEqual(['=0']);
  });

  it('/config_dump shows the chain in force: routes as written, where each leads, and every target', async () => {
    const dump = (await (await fetch(`${url}/config_dump`)).json()) as {
      services: Record<string, { routes?: Record<string, unknown> }>;
    };
    const routes = dump.services.web?.routes as {
      routes: Array<Record<string, unknown>>;
      targets: Record<string, Record<string, unknown>>;
    };
    expect(routes.routes.map((r) => r.target ?? r.splitter)).toEqual([
      'v2.web.default.default.dc1',
      'admin.default.default.dc1',
      // The splitter node, named as Consul's compiled chain names it.
      'web.default.default',
    ]);
    expect(routes.routes[1]).toMatchObject({
      match: { HTTP: { PathPrefix: '/admin/' } },
      destination: { Service: 'admin', PrefixRewrite: '/' },
    });
    // Consul's implicit catch-all route last, to the splitter and its weights.
    expect(routes.routes[2]).toMatchObject({ match: { HTTP: { PathPrefix: '/' } } });
    expect(routes.routes[2]?.splits).toEqual([
      expect.objectContaining({ weight: 100, target: 'v1.web.default.default.dc1' }),
      expect.objectContaining({ weight: 0, target: 'v2.web.default.default.dc1' }),
    ]);
    expect(routes.targets['v1.web.default.default.dc1']).toMatchObject({
      service: 'web',
      subset: 'v1',
      filter: 'Service.Meta.version == "v1"',
      failover: ['v2.web.default.default.dc1'],
    });
    expect(dump.services.plain?.routes).toBeUndefined();
    // `admin`, reached only through web's route, is built: its routing target's stages.
    expect(dump.services.admin).toMatchObject({
      live: true,
      roles: expect.arrayContaining(['retry', 'pick']),
    });
  });
});
