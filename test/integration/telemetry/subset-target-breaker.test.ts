/**
 * A canary subset's circuit breaker is not the service's (probe45). With `web` routed to subsets
 * v1 and v2 (each its own destination and breaker), v2 failing opens v2's breaker only: its
 * `circuit_breaker` event names the target, and `mesh_circuit_breaker_state{service="web"}` keeps
 * following the service's own breaker (closed) while v1 serves. Before, the event had no target
 * and the gauge said `web` was open — and stayed so while every other call succeeded.
 */
import { Registry } from 'prom-client';
import { createConfigSource, createMesh, type MeshEvent } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';
import { versionResolver } from '../routing/scenario.js';

describe("a subset target's circuit breaker", () => {
  let v1: TestServer;
  let v2: TestServer;
  beforeAll(async () => {
    v1 = await startServer('v1', (req, res) => {
      req.resume();
      res.end('v1');
    });
    v2 = await startServer('v2', (req, res) => {
      req.resume();
      res.statusCode = 503;
      res.end('v2');
    });
  });
  afterAll(async () => {
    await v1.close();
    await v2.close();
  });

  it('opens for the target alone: its event names the target, the service gauge stays closed', async () => {
    const endpoint = (version: string, s: TestServer) => {
      const [address, port] = s.address.split(':');
      return { address: address!, port: Number(port), metadata: { version } };
    };
    const registry = new Registry();
    const mesh = createMesh({
      env: { MESH_ADMIN_PORT: '0' },
      metrics: { registry },
      configSource: createConfigSource('routes', {
        services: {
          web: {
            endpoints: [endpoint('v1', v1), endpoint('v2', v2)],
            retry: false,
            outlierDetection: false,
            circuitBreaker: { volumeThreshold: 5, errorThresholdPercentage: 50 },
          },
        },
        configEntries: [
          { Kind: 'service-defaults', Name: 'web', Protocol: 'http' },
          versionResolver(),
          {
            Kind: 'service-router',
            Name: 'web',
            Routes: [
              {
                Match: { HTTP: { Header: [{ Name: 'x-version', Exact: '2' }] } },
                Destination: { ServiceSubset: 'v2' },
              },
            ],
          },
        ],
      }),
    });
    const breakerEvents: MeshEvent[] = [];
    mesh.onEvent((e) => {
      if (e.type === 'circuit_breaker') breakerEvents.push(e);
    });
    const gauge = async (): Promise<Record<string, number>> => {
      const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === 'mesh_circuit_breaker_state');
      const out: Record<string, number> = {};
      for (const v of metric?.values ?? []) {
        const labels = v.labels as Record<string, string>;
        if (labels.service === 'web') out[labels.state!] = v.value;
      }
      return out;
    };
    try {
      const url = await mesh.admin();
      for (let i = 0; i < 10; i++) {
        const r = await mesh.request('http://web/', { headers: { 'x-version': '2' } }).catch((e: Error) => e);
        if (!(r instanceof Error)) await r.body.dump();
      }
      for (let i = 0; i < 5; i++) {
        const r = await mesh.request('http://web/');
        expect([r.statusCode, await r.body.text()]).toEqual([200, 'v1']);
      }
      expect(breakerEvents).toEqual([
        { type: 'circuit_breaker', service: 'web', state: 'open', target: 'v2.web.default.default.dc1' },
      ]);
      expect(mesh.stats('web')?.targets?.['v2.web.default.default.dc1']?.circuitBreaker).toBe('open');
      expect(mesh.stats('web')?.targets?.['v1.web.default.default.dc1']?.circuitBreaker).toBe('closed');
      // The service's own breaker: closed, as its gauge says.
      expect(mesh.stats('web')?.circuitBreaker).toBe('closed');
      expect(await gauge()).toEqual({ closed: 1, open: 0, 'half-open': 0 });
      // The admin server's events say whose breaker it was.
      const events = (await (await fetch(`${url}/events`)).json()) as {
        events: Array<{ type: string; detail: string }>;
      };
      expect(events.events.filter((e) => e.type === 'circuit_breaker').map((e) => e.detail)).toEqual([
        'target v2.web.default.default.dc1: circuit open',
      ]);
    } finally {
      await mesh.close();
    }
  });
});
