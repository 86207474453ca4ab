/**
 * The mesh loads `@opentelemetry/api` only once an SDK registers something (otel-api.ts), so an
 * SDK registered after `createMesh` must still be picked up: the next call makes a CLIENT span
 * and sends its `traceparent`.
 */
import { context, propagation, SpanKind, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { Registry } from 'prom-client';
import { createMesh, type Mesh } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

const seen: Array<string | undefined> = [];
let server: TestServer;
let mesh: Mesh;
let provider: NodeTracerProvider | undefined;

beforeAll(async () => {
  server = await startServer('api', (req, res) => {
    seen.push(req.headers.traceparent as string | undefined);
    req.resume();
    res.writeHead(200);
    res.end('ok');
  });
});

afterAll(async () => {
  await mesh?.close();
  await server.close();
  await provider?.shutdown();
  trace.disable();
  context.disable();
  propagation.disable();
});

describe('an OpenTelemetry SDK registered after createMesh', () => {
  it('is picked up: no span before it, a CLIENT span and traceparent after', async () => {
    expect((globalThis as Record<symbol, unknown>)[Symbol.for('opentelemetry.js.api.1')]).toBeUndefined();
    mesh = createMesh({
      env: {},
      metrics: { registry: new Registry() },
      services: { api: { endpoints: server.address } },
    });
    expect(await (await mesh.fetch('http://api/before')).text()).toBe('ok');
    expect(seen).toEqual([undefined]);

    const exporter = new InMemorySpanExporter();
    provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    provider.register();

    expect(await (await mesh.fetch('http://api/after')).text()).toBe('ok');
    expect(seen).toHaveLength(2);
    const spans = exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.CLIENT);
    expect(spans).toHaveLength(1);
    const { traceId, spanId } = spans[0]!.spanContext();
    expect(spans[0]!.attributes['server.address']).toBe('api');
    expect(seen[1]).toBe(`00-${traceId}-${spanId}-01`);
  });
});
