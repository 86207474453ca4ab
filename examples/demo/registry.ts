/**
 * `pnpm demo registry` — registration and discovery together, with no external set-up: a Consul
 * HTTP API double on 127.0.0.1 stands in for the agent (the same double the test suite runs; point
 * `CONSUL_HTTP_ADDR` at a real agent and the services below work unchanged).
 *
 * Two `inventory` instances register themselves with a TTL health check their mesh keeps passing;
 * a `storefront` mesh discovers them through blocking queries and calls them. Then one instance
 * shuts down gracefully (deregistered before it stops serving), and the agent "restarts" and
 * forgets everything: the remaining instance registers itself again.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMesh, type Mesh } from 'proxyless';
import { startConsulDouble } from '../../test/consul-double/server.js';

type Say = (s?: string) => void;

interface Instance {
  id: string;
  port: number;
  mesh: Mesh;
  server: http.Server;
}

async function startInventory(id: string, env: Record<string, string>): Promise<Instance> {
  const server = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json', 'x-served-by': id });
    res.end(JSON.stringify({ sku: 'A-1', stock: 7, from: id }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const mesh = createMesh({ env, serviceName: 'inventory' });
  await mesh.register({
    service: 'inventory',
    id,
    address: '127.0.0.1',
    port,
    tags: ['v1'],
    metadata: { version: '1.4.2' },
    check: { kind: 'ttl', ttlMs: 3000 },
  });
  return { id, port, mesh, server };
}

async function calls(storefront: Mesh, n: number): Promise<Map<string, number>> {
  const by = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const res = await storefront.fetch('http://inventory.service.consul/stock/A-1');
    const who = res.headers.get('x-served-by') ?? '?';
    await res.text();
    by.set(who, (by.get(who) ?? 0) + 1);
  }
  return by;
}

function untilSet(mesh: Mesh, service: string, pred: (n: number) => boolean): Promise<void> {
  const now = mesh.endpoints(service);
  if (now && pred(now.endpoints.length)) return Promise.resolve();
  return new Promise((resolve) => {
    const sub = mesh.onEvent((e) => {
      if (e.type === 'endpoints_changed' && e.service === service && pred(e.set.endpoints.length)) {
        sub.dispose();
        resolve();
      }
    });
  });
}

export async function registryDemo(say: Say): Promise<void> {
  const consul = await startConsulDouble();
  const env = { CONSUL_HTTP_ADDR: consul.address };
  say(
    `Consul HTTP API (double) at ${consul.address}; every service below is configured by CONSUL_HTTP_ADDR only`,
  );
  const a = await startInventory('inventory-a', env);
  const b = await startInventory('inventory-b', env);
  say(`registered: ${Object.keys(consul.agentServices()).join(', ')} (TTL checks kept passing by each mesh)`);
  const storefront = createMesh({ env, serviceName: 'storefront' });
  try {
    const first = await calls(storefront, 20);
    say(`storefront → inventory, 20 calls: ${[...first].map(([k, v]) => `${k}=${v}`).join(', ')}`);
    say(
      `endpoints: ${storefront
        .endpoints('inventory')
        ?.endpoints.map((e) => `${e.id} (${e.health}, tags ${e.tags.join('/')})`)
        .join('; ')}`,
    );

    say('\ninventory-b shuts down gracefully: deregister first, then stop serving');
    const one = untilSet(storefront, 'inventory', (n) => n === 1);
    await b.mesh.close(); // deregisters
    await one;
    b.server.close();
    const second = await calls(storefront, 10);
    say(`10 calls: ${[...second].map(([k, v]) => `${k}=${v}`).join(', ')}; failed: 0`);

    say('\nthe agent restarts and forgets every registration');
    consul.restartAgent();
    say(`agent services right after the restart: ${Object.keys(consul.agentServices()).length}`);
    // inventory-a's next TTL heartbeat (every ttl/3) answers 404: its registrar registers it again.
    for (let i = 0; i < 100 && !('inventory-a' in consul.agentServices()); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    say(`inventory-a registered itself again: ${'inventory-a' in consul.agentServices()}`);
    await untilSet(storefront, 'inventory', (n) => n === 1);
    const third = await calls(storefront, 5);
    say(`5 calls: ${[...third].map(([k, v]) => `${k}=${v}`).join(', ')}`);
  } finally {
    await storefront.close();
    await a.mesh.close();
    a.server.close();
    await consul.close();
  }
}
