/**
 * Telemetry end to end through `mesh.fetch` against real servers: metrics in a passed registry,
 * the access log with Envoy response flags, the admin endpoint on a free port, and a trace A → B.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { context, SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { startServerSpan } from '@proxyless/telemetry';
import { Registry } from 'prom-client';
import { createMesh, type Mesh } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
provider.register();

let ok: TestServer;
let dead: TestServer;
let deadAddress: string;
const meshes: Mesh[] = [];

beforeAll(async () => {
  ok = await startServer('ok', (req, res) => {
    const server = startServerSpan(req, res);
    req.resume();
    context.with(server.context, () => {
      res.writeHead(req.url === '/fail' ? 503 : 200);
      res.end('ok');
    });
  });
  dead = await startServer('dead');
  deadAddress = dead.address;
  await dead.close(); // nothing listens there any more: connections are refused
});

afterAll(async () => {
  await Promise.all(meshes.map((m) => m.close()));
  await ok.close();
  await provider.shutdown();
});

function mesh(options: Parameters<typeof createMesh>[0]): Mesh {
  const m = createMesh(options);
  meshes.push(m);
  return m;
}

describe('telemetry through mesh.fetch (#14)', () => {
  it('records exact request counts and attempt outcomes in the passed registry', async () => {
    const registry = new Registry();
    const m = mesh({
      env: {},
      metrics: { registry },
      services: { api: { endpoints: ok.address, retry: { maxRetries: 1, backoff: { base: 0, max: 0 } } } },
    });
    for (let i = 0; i < 5; i++) await (await m.fetch('http://api/x')).text();
    await (await m.fetch('http://api/fail')).text();
    const text = await registry.metrics();
    const count = (status: string) =>
      Number(
        new RegExp(
          `http_client_request_duration_seconds_count\\{[^}]*http_request_method="GET"[^}]*http_response_status_code="${status}"[^}]*server_address="api"[^}]*\\} (\\d+)`,
        ).exec(text)?.[1] ?? Number.NaN,
      );
    expect(count('200')).toBe(5);
    expect(count('503')).toBe(1);
    // The 503 was retried once: two attempts answered 503, five answered 200.
    expect(text).toMatch(/mesh_retries_total\{[^}]*service="api"[^}]*\} 1/);
  });

  it('writes one access-log line per request with Envoy flags (UF for a refused endpoint)', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'proxyless-log-')), 'access.log');
    const m = mesh({
      env: { MESH_ACCESS_LOG: file },
      metrics: { registry: new Registry() },
      services: { gone: { endpoints: deadAddress, retry: false }, api: { endpoints: ok.address } },
    });
    await (await m.fetch('http://api/a')).text();
    await expect(m.fetch('http://gone/b')).rejects.toThrow();
    await m.close();
    const lines = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(2);
    const byPath = new Map(lines.map((l) => [String(l.path), l]));
    expect(byPath.get('/a')).toMatchObject({
      method: 'GET',
      response_code: 200,
      response_flags: '-',
      upstream_cluster: 'api',
      upstream_host: ok.address,
      attempts: 1,
    });
    expect(byPath.get('/b')).toMatchObject({
      response_code: 0,
      upstream_cluster: 'gone',
      error_code: 'MESH_CONNECT_FAILED',
    });
    expect(String(byPath.get('/b')?.response_flags).split(',')).toContain('UF');
  });

  it('serves the admin endpoint on a free port: metrics, clusters, readiness', async () => {
    const m = mesh({
      env: { MESH_ADMIN_PORT: '0' },
      metrics: { registry: new Registry() },
      services: { api: { endpoints: ok.address } },
    });
    const url = await m.admin();
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    await (await m.fetch('http://api/x')).text();
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toContain('http_client_request_duration_seconds');
    const clusters = (await (await fetch(`${url}/clusters`)).json()) as unknown;
    expect(JSON.stringify(clusters)).toContain(ok.address.split(':')[1]!);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
  });

  it('one CLIENT span per attempt, parent of the server span, through mesh.fetch', async () => {
    exporter.reset();
    const m = mesh({
      env: {},
      metrics: { registry: new Registry() },
      services: { api: { endpoints: ok.address } },
    });
    await (await m.fetch('http://api/traced')).text();
    // One attempt, no caller span: the CLIENT span is the trace's root, the SERVER span under it.
    await expect.poll(() => exporter.getFinishedSpans().length).toBe(2);
    const spans = exporter.getFinishedSpans();
    const client = spans.find((s) => s.kind === SpanKind.CLIENT)!;
    const server = spans.find((s) => s.kind === SpanKind.SERVER)!;
    expect(client.attributes['server.address']).toBe('api');
    expect(client.attributes['http.response.status_code']).toBe(200);
    expect(client.attributes['network.peer.port']).toBe(Number(ok.address.split(':')[1]));
    expect(server.spanContext().traceId).toBe(client.spanContext().traceId);
    expect(server.parentSpanContext?.spanId ?? (server as { parentSpanId?: string }).parentSpanId).toBe(
      client.spanContext().spanId,
    );
  });
});
