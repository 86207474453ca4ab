/**
 * Endpoints that leave a service's set take their `mesh_attempts_total` series along and free
 * their slot under the 64-endpoints cap, as Envoy drops a host's stats when it leaves the
 * cluster. A rolling deploy of 2 endpoints per generation over 35 generations used to end with 64
 * series of departed endpoints, none for the 2 live ones, and the live traffic under `_OTHER`.
 * Real loopback servers, a resolver fed by hand; each step waits for the mesh's
 * `endpoints_changed` event.
 */

import type http from 'node:http';
import { Registry } from 'prom-client';
import { createMesh, type Mesh } from 'proxyless';
import { manualResolver } from 'proxyless/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

const N = 70;
const servers: TestServer[] = [];
beforeAll(async () => {
  for (let i = 0; i < N; i++) servers.push(await startServer(`s${i}`));
});
afterAll(() => Promise.all(servers.map((s) => s.close())));

const endpointOf = (s: TestServer) => ({ address: s.host, port: s.port });

/** Resolves at the mesh's next `endpoints_changed` of `service`. */
function nextSet(mesh: Mesh, service: string): Promise<void> {
  return new Promise((resolve) => {
    const sub = mesh.onEvent((e) => {
      if (e.type !== 'endpoints_changed' || e.service !== service) return;
      sub.dispose();
      resolve();
    });
  });
}

async function attempts(registry: Registry): Promise<string[]> {
  const metric = registry.getSingleMetric('mesh_attempts_total');
  if (!metric) return [];
  return (await metric.get()).values
    .map((v) => `${String(v.labels.endpoint)} ${String(v.labels.outcome)} ${v.value}`)
    .sort();
}

describe('per-endpoint series of endpoints that left the set', () => {
  it('a rolling deploy past the 64-endpoint cap keeps series for the live endpoints only', async () => {
    const reg = manualResolver({ services: ['pods'] });
    const registry = new Registry();
    const mesh = createMesh({ env: {}, passthrough: false, resolvers: [reg], metrics: { registry } });
    try {
      for (let gen = 0; gen < N / 2; gen++) {
        const changed = gen === 0 ? undefined : nextSet(mesh, 'pods');
        reg.set('pods', [endpointOf(servers[2 * gen]!), endpointOf(servers[2 * gen + 1]!)]);
        await changed;
        for (let k = 0; k < 4; k++) await (await mesh.request('http://pods/')).body.dump();
      }
      const last = [servers[N - 2]!, servers[N - 1]!];
      expect(mesh.endpoints('pods')?.endpoints.map((e) => e.id)).toEqual(last.map((s) => s.address));
      expect(await attempts(registry)).toEqual(last.map((s) => `${s.address} success 2`).sort());

      // An endpoint that comes back gets its series again, from zero.
      const back = nextSet(mesh, 'pods');
      reg.set('pods', [endpointOf(servers[0]!)]);
      await back;
      await (await mesh.request('http://pods/')).body.dump();
      expect(await attempts(registry)).toEqual([`${servers[0]!.address} success 1`]);
    } finally {
      await mesh.close();
    }
  });

  it('an attempt that ends after its endpoint left counts under _OTHER and brings no series back', async () => {
    let arrived!: () => void;
    const reached = new Promise<void>((r) => {
      arrived = r;
    });
    let held: http.ServerResponse | undefined;
    const slow = await startServer('slow', (req, res) => {
      req.resume();
      held = res;
      arrived();
    });
    const reg = manualResolver({ services: ['pods'] });
    const registry = new Registry();
    const mesh = createMesh({ env: {}, passthrough: false, resolvers: [reg], metrics: { registry } });
    try {
      reg.set('pods', [endpointOf(slow)]);
      const inFlight = mesh.request('http://pods/');
      await reached;
      const changed = nextSet(mesh, 'pods');
      reg.set('pods', [endpointOf(servers[0]!)]);
      await changed;
      held?.end('late');
      const r = await inFlight;
      expect(await r.body.text()).toBe('late');
      await (await mesh.request('http://pods/')).body.dump();
      expect(await attempts(registry)).toEqual([`${servers[0]!.address} success 1`, '_OTHER success 1']);
    } finally {
      await mesh.close();
      await slow.close();
    }
  });
});
