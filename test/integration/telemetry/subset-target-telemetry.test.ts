/**
 * A canary subset's circuit breaker is not the service's (probe45), and is not hidden either
 * (probe46). With `web` routed to subsets v1 and v2 (each its own destination and breaker), v2
 * failing opens v2's breaker only: its `circuit_breaker` event names the target, and
 * `mesh_circuit_breaker_state` has a series per subset, labelled `target` (as Envoy's stats are per
 * cluster, each Consul subset a cluster of its own), next to the service's own. At probe45 a
 * subset's breaker set no series at all: with a resolver's `DefaultSubset`, every call went through
 * the subset, failed `MESH_CIRCUIT_OPEN`, and the only breaker gauge said closed. The panic gauge
 * follows the same rule: a subset in panic had set `mesh_panic_mode{service="web"}` to 1 while the
 * service's own balancer and v1 were not in panic. And the access log's `upstream_cluster` of a
 * call sent to a subset is the subset's target ID (it was the bare service name for v1 and v2 alike).
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { Registry } from 'prom-client';
import { createConfigSource, createMesh, type MeshError, type MeshEvent } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';
import { versionHeaderRouter, versionResolver } from '../routing/scenario.js';

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
provider.register();
afterAll(async () => {
  await provider.shutdown();
});

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
          versionHeaderRouter(),
        ],
      }),
    });
    const breakerEvents: MeshEvent[] = [];
    mesh.onEvent((e) => {
      if (e.type === 'circuit_breaker') breakerEvents.push(e);
    });
    const gauge = (target?: string) => breakerGauge(registry, 'web', target);
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
      // Each subset's breaker has its own series, from the moment its destination is built.
      expect(await gauge('v2.web.default.default.dc1')).toEqual({ closed: 0, open: 1, 'half-open': 0 });
      expect(await gauge('v1.web.default.default.dc1')).toEqual({ closed: 1, open: 0, 'half-open': 0 });
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

  it("a resolver's DefaultSubset takes every call: its open breaker is on the gauge, and a subset's panic is its own", async () => {
    const registry = new Registry();
    const v1Down = await startServer('v1-down', (req, res) => {
      req.resume();
      res.statusCode = 503;
      res.end('down');
    });
    const mesh = createMesh({
      env: {},
      metrics: { registry },
      configSource: createConfigSource('default-subset', {
        services: {
          web: {
            endpoints: [endpoint('v1', v1Down), endpoint('v2', v2)],
            retry: false,
            outlierDetection: { consecutive5xx: 3, maxEjectionPercent: 100 },
            circuitBreaker: { volumeThreshold: 5, errorThresholdPercentage: 50 },
          },
        },
        configEntries: [versionResolver()],
      }),
    });
    try {
      const codes: Array<string | number> = [];
      for (let i = 0; i < 8; i++) {
        const r = await mesh.request('http://web/').catch((e: MeshError) => e);
        if (r instanceof Error) codes.push((r as MeshError).code);
        else {
          codes.push(r.statusCode);
          await r.body.dump();
        }
      }
      expect(codes).toEqual([503, 503, 503, 503, 503, ...Array(3).fill('MESH_CIRCUIT_OPEN')]);
      expect(await breakerGauge(registry, 'web', 'v1.web.default.default.dc1')).toEqual({
        closed: 0,
        open: 1,
        'half-open': 0,
      });
      // The subset's one endpoint is ejected: that subset is in panic, not the service.
      expect(await panicGauge(registry, 'web')).toEqual({ '': 0, 'v1.web.default.default.dc1': 1 });
    } finally {
      await mesh.close();
      await v1Down.close();
    }
  });

  it("names a subset's routing target as the access log's upstream_cluster and its spans' mesh.target, as Envoy names a Consul subset's cluster", async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'proxyless-log-')), 'access.log');
    const mesh = createMesh({
      env: { MESH_ACCESS_LOG: file },
      metrics: { registry: new Registry() },
      configSource: createConfigSource('access-log', {
        services: {
          web: {
            endpoints: [endpoint('v1', v1), endpoint('v2', v2)],
            retry: false,
          },
          plain: { endpoints: v1.address },
        },
        configEntries: [
          { Kind: 'service-defaults', Name: 'web', Protocol: 'http' },
          versionResolver(),
          versionHeaderRouter(),
        ],
      }),
    });
    exporter.reset();
    await (await mesh.request('http://web/one')).body.dump();
    await (await mesh.request('http://web/two', { headers: { 'x-version': '2' } })).body.dump();
    await (await mesh.request('http://plain/three')).body.dump();
    await mesh.close();
    const lines = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => [l.path, l.upstream_cluster, l.upstream_host, l.response_code])).toEqual([
      ['/one', 'v1.web.default.default.dc1', v1.address, 200],
      ['/two', 'v2.web.default.default.dc1', v2.address, 503],
      ['/three', 'plain', v1.address, 200],
    ]);
    const clients = exporter.getFinishedSpans().filter((x) => x.kind === SpanKind.CLIENT);
    expect(clients.map((x) => [x.attributes['url.full'], x.attributes['mesh.target']])).toEqual([
      ['http://web/one', 'v1.web.default.default.dc1'],
      ['http://web/two', 'v2.web.default.default.dc1'],
      ['http://plain/three', undefined],
    ]);
  });
});

/** `mesh_circuit_breaker_state` of `service` by state: the service's own series, or a subset target's. */
async function breakerGauge(
  registry: Registry,
  service: string,
  target?: string,
): Promise<Record<string, number>> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === 'mesh_circuit_breaker_state');
  const out: Record<string, number> = {};
  for (const v of metric?.values ?? []) {
    const labels = v.labels as Record<string, string>;
    if (labels.service === service && labels.target === target) out[labels.state!] = v.value;
  }
  return out;
}

/** `mesh_panic_mode` of `service` by `target` label (`''`: the service's own balancer). */
async function panicGauge(registry: Registry, service: string): Promise<Record<string, number>> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === 'mesh_panic_mode');
  const out: Record<string, number> = {};
  for (const v of metric?.values ?? []) {
    const labels = v.labels as Record<string, string>;
    if (labels.service === service) out[labels.target ?? ''] = v.value;
  }
  return out;
}

/** An endpoint of `s` with `Meta.version`, for the resolver's subsets. */
function endpoint(version: string, s: TestServer) {
  const [address, port] = s.address.split(':');
  return { address: address!, port: Number(port), metadata: { version } };
}
