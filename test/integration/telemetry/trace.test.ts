/**
 * A trace across two services through real HTTP servers: client → A → B. Each server extracts
 * the caller's context and starts a SERVER span; each call through the telemetry interceptors
 * makes a CLIENT span and injects traceparent. Parent and child must be linked end to end.
 */

import { context, SpanKind, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { composeInterceptors, type DispatchFn } from '@proxyless/core';
import { createTelemetry, startServerSpan, type Telemetry } from '@proxyless/telemetry';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';
import { callContext, callOptions, collect, fakePick, Pools } from './stages.js';

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
provider.register();

let a: TestServer;
let b: TestServer;
let pools: Pools;
let telemetry: Telemetry;
let registry: Registry;
let toA: DispatchFn;
let toB: DispatchFn;

beforeAll(async () => {
  registry = new Registry();
  telemetry = createTelemetry({ registry });
  pools = new Pools();
  b = await startServer('b', (req, res) => {
    startServerSpan(req, res, { metrics: telemetry.metrics });
    req.resume();
    res.writeHead(200);
    res.end('from b');
  });
  a = await startServer('a', (req, res) => {
    const server = startServerSpan(req, res, { metrics: telemetry.metrics });
    req.resume();
    context.with(server.context, () => {
      void collect(toB, callOptions(callContext('b', 'GET', '/inner'))).then((r) => {
        res.writeHead(r.status === 200 ? 200 : 502);
        res.end(`a+${r.body}`);
      });
    });
  });
  toA = composeInterceptors(
    [telemetry.callInterceptor, telemetry.attemptInterceptor, fakePick([{ address: a.host, port: a.port }])],
    pools.terminal,
  );
  toB = composeInterceptors(
    [telemetry.callInterceptor, telemetry.attemptInterceptor, fakePick([{ address: b.host, port: b.port }])],
    pools.terminal,
  );
});

afterAll(async () => {
  await pools.close();
  await Promise.all([a.close(), b.close()]);
  await telemetry.close();
  await provider.shutdown();
});

describe('a trace across two services (A → B)', () => {
  it('links client, server A, A’s client and server B in one trace', async () => {
    const tracer = trace.getTracer('test');
    const root = tracer.startSpan('checkout');
    const r = await context.with(trace.setSpan(context.active(), root), () =>
      collect(toA, callOptions(callContext('a', 'GET', '/outer'))),
    );
    root.end();
    expect(r.body).toBe('a+from b');
    // The SERVER spans end on the response's `finish`, which may follow the client's body end.
    await expect.poll(() => exporter.getFinishedSpans().length).toBe(5);
    const spans = exporter.getFinishedSpans();
    const find = (kind: SpanKind, address: string) =>
      spans.find(
        (s) =>
          s.kind === kind &&
          (kind === SpanKind.CLIENT
            ? s.attributes['server.address'] === address
            : s.attributes['url.path'] === address),
      )!;
    const clientA = find(SpanKind.CLIENT, 'a');
    const serverA = find(SpanKind.SERVER, '/outer');
    const clientB = find(SpanKind.CLIENT, 'b');
    const serverB = find(SpanKind.SERVER, '/inner');
    const traceId = root.spanContext().traceId;
    for (const s of [clientA, serverA, clientB, serverB]) expect(s.spanContext().traceId).toBe(traceId);
    expect(clientA.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    expect(serverA.parentSpanContext?.spanId).toBe(clientA.spanContext().spanId);
    expect(serverA.parentSpanContext?.isRemote).toBe(true);
    expect(clientB.parentSpanContext?.spanId).toBe(serverA.spanContext().spanId);
    expect(serverB.parentSpanContext?.spanId).toBe(clientB.spanContext().spanId);
    expect(serverB.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.path': '/inner',
      'url.scheme': 'http',
      'server.address': '127.0.0.1',
      'server.port': b.port,
      'http.response.status_code': 200,
    });
    // The server side recorded its own duration histogram.
    const server = await registry.getSingleMetric('http_server_request_duration_seconds')!.get();
    const count = server.values.find((v) => (v as { metricName?: string }).metricName?.endsWith('_count'));
    expect(count?.value).toBe(2);
  });
});
