/**
 * A service reached only through a routing target (a splitter sends `web` to `api2`; `api2` is
 * never called by name) is removed with the config that named it as any service is:
 * `service_removed`, and its series go. They used to stay for good, holding one of the 2,000
 * service slots. Real loopback server, a config source fed by hand.
 */

import { Registry } from 'prom-client';
import { createConfigSource, createMesh, type MeshEvent } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startServer('s');
});
afterAll(() => server.close());

async function seriesOf(registry: Registry, service: string): Promise<string[]> {
  const names = new Set<string>();
  for (const m of await registry.getMetricsAsJSON())
    for (const v of m.values) {
      const labels = v.labels as Record<string, unknown>;
      if (labels.service === service || labels['server.address'] === service) names.add(m.name);
    }
  return [...names].sort();
}

describe('a service reached only through a routing target', () => {
  it('is removed, events and series, when the config stops naming it', async () => {
    const registry = new Registry();
    const source = createConfigSource('kv', {
      services: { web: { endpoints: server.address }, api2: { endpoints: server.address } },
      configEntries: [
        { Kind: 'service-defaults', Name: 'web', Protocol: 'http' },
        { Kind: 'service-defaults', Name: 'api2', Protocol: 'http' },
        { Kind: 'service-splitter', Name: 'web', Splits: [{ Weight: 100, Service: 'api2' }] },
      ],
    });
    const mesh = createMesh({ env: {}, configSource: source, metrics: { registry } });
    try {
      const events: MeshEvent[] = [];
      mesh.onEvent((e) => events.push(e));
      const r = await mesh.request('http://web/');
      expect(await r.body.text()).toBe('s');
      expect(await seriesOf(registry, 'api2')).toContain('mesh_endpoints');

      source.update({
        services: { web: { endpoints: server.address } },
        configEntries: [{ Kind: 'service-defaults', Name: 'web', Protocol: 'http' }],
      });
      expect(events.some((e) => e.type === 'service_removed' && e.service === 'api2')).toBe(true);
      expect(await seriesOf(registry, 'api2')).toEqual([]);
    } finally {
      await mesh.close();
    }
  });
});
