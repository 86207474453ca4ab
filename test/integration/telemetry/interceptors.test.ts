/**
 * The call and attempt interceptors over real undici Pools to real servers on 127.0.0.1, with a
 * real OpenTelemetry SDK (in-memory exporter) registered globally: spans per attempt, semconv
 * attributes, traceparent on the wire, metrics when the body ends, and access-log flags.
 */

import { SpanKind, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { callOf, composeInterceptors, type DispatchFn, type Interceptor, MeshError } from '@proxyless/core';
import {
  type AccessLogRecord,
  type AccessLogSink,
  createTelemetry,
  type Telemetry,
} from '@proxyless/telemetry';
import { Registry } from 'prom-client';
import { Pool } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';
import { callContext, callOptions, collect, fakePick, fakeRetry, openBreaker, Pools } from './stages.js';

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
provider.register();

class MemorySink implements AccessLogSink {
  lines: AccessLogRecord[] = [];
  write(line: string): void {
    this.lines.push(JSON.parse(line) as AccessLogRecord);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

let ok: TestServer;
let flaky: TestServer;
let slow: TestServer;
const seen: Array<Record<string, string | string[] | undefined>> = [];
let flakyCalls = 0;
let pools: Pools;
let telemetry: Telemetry;
let registry: Registry;
let sink: MemorySink;

beforeAll(async () => {
  ok = await startServer('ok', (req, res) => {
    seen.push({ ...req.headers });
    req.resume();
    if (req.url === '/stream') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('part1');
      setTimeout(() => res.end('part2'), 150);
      return;
    }
    res.writeHead(req.url === '/missing' ? 404 : 200);
    res.end('ok');
  });
  flaky = await startServer('flaky', (req, res) => {
    seen.push({ ...req.headers });
    req.resume();
    flakyCalls++;
    res.writeHead(503);
    res.end('unavailable');
  });
  slow = await startServer('slow', (req, res) => {
    req.resume();
    setTimeout(() => {
      res.writeHead(200);
      res.end('late');
    }, 1000).unref();
  });
  pools = new Pools({ headersTimeout: 200 });
});

afterAll(async () => {
  await pools.close();
  await Promise.all([ok.close(), flaky.close(), slow.close()]);
  await telemetry.close();
  await provider.shutdown();
});

beforeEach(() => {
  exporter.reset();
  seen.length = 0;
  flakyCalls = 0;
  registry = new Registry();
  sink = new MemorySink();
  telemetry = createTelemetry({ registry, accessLog: sink });
});

function stack(policies: Interceptor[], endpoints: Array<{ address: string; port: number }>): DispatchFn {
  return composeInterceptors(
    [telemetry.callInterceptor, ...policies, telemetry.attemptInterceptor, fakePick(endpoints)],
    pools.terminal,
  );
}

const ep = (s: TestServer) => ({ address: s.host, port: s.port });
const clientSpans = (): ReadableSpan[] =>
  exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.CLIENT);
const internalSpans = (): ReadableSpan[] =>
  exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.INTERNAL);

/** Run `fn` under an active SERVER span of the caller's (ended afterwards). */
function underCaller<T>(fn: () => Promise<T>): Promise<T> {
  return trace.getTracer('test').startActiveSpan('caller', { kind: SpanKind.SERVER }, async (span) => {
    try {
      return await fn();
    } finally {
      span.end();
    }
  });
}

async function histogramCount(): Promise<number> {
  const m = registry.getSingleMetric('http_client_request_duration_seconds')!;
  return (await m.get()).values
    .filter((v) => (v as { metricName?: string }).metricName?.endsWith('_count'))
    .reduce((a, v) => a + v.value, 0);
}

describe('telemetry interceptors over real HTTP', () => {
  it('makes exactly one CLIENT span for a call with one attempt, with the semconv attributes', async () => {
    const ctx = callContext('payments', 'GET', '/charge?id=1');
    // Under a caller's span (without one, the call's INTERNAL span would be the trace's root).
    const r = await underCaller(() =>
      collect(stack([fakeRetry(2)], [ep(ok)]), callOptions(ctx, { 'X-Request-Id': 'r1' })),
    );
    expect(r.status).toBe(200);
    expect(internalSpans()).toHaveLength(0);
    const [span] = clientSpans();
    expect(clientSpans()).toHaveLength(1);
    expect(span!.name).toBe('GET');
    expect(span!.attributes).toEqual({
      'http.request.method': 'GET',
      'url.full': 'http://payments/charge?id=1',
      'server.address': 'payments',
      'server.port': 80,
      'network.peer.address': '127.0.0.1',
      'network.peer.port': ok.port,
      'http.response.status_code': 200,
    });
    // traceparent on the wire is this span; the caller's header arrived too.
    const sc = span!.spanContext();
    expect(seen[0]!.traceparent).toBe(`00-${sc.traceId}-${sc.spanId}-01`);
    expect(seen[0]!['x-request-id']).toBe('r1');
  });

  it('injects into flat-array and iterable headers without duplicating a caller traceparent', async () => {
    const dispatch = stack([], [ep(ok)]);
    await collect(dispatch, callOptions(callContext('a'), ['X-A', '1', 'Traceparent', 'stale-value']));
    await collect(dispatch, callOptions(callContext('a'), new Map([['X-B', '2']])));
    expect(seen[0]!['x-a']).toBe('1');
    expect(seen[0]!.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(seen[1]!['x-b']).toBe('2');
    expect(seen[1]!.traceparent).toMatch(/^00-/);
  });

  it('records the duration when the body ends, not at the head', async () => {
    let atHead = -1;
    const r = await collect(
      stack([], [ep(ok)]),
      callOptions(callContext('streamer', 'GET', '/stream')),
      () => {
        void histogramCount().then((n) => {
          atHead = n;
        });
      },
    );
    expect(r.body).toBe('part1part2');
    expect(atHead).toBe(0);
    expect(await histogramCount()).toBe(1);
    const m = await registry.getSingleMetric('http_client_request_duration_seconds')!.get();
    const sum = m.values.find((v) => (v as { metricName?: string }).metricName?.endsWith('_sum'))!.value;
    expect(sum).toBeGreaterThanOrEqual(0.14);
    expect(sink.lines).toHaveLength(1);
    expect(sink.lines[0]!.duration_ms).toBeGreaterThanOrEqual(140);
  });

  it('puts retries under one INTERNAL span, one CLIENT span per attempt, resend_count on retries', async () => {
    const ctx = callContext('inventory', 'GET', '/items');
    const r = await underCaller(() =>
      collect(stack([fakeRetry(2)], [ep(flaky), ep(flaky), ep(ok)]), callOptions(ctx)),
    );
    expect(r.status).toBe(200);
    const clients = clientSpans();
    expect(clients).toHaveLength(3);
    const [internal] = internalSpans();
    expect(internalSpans()).toHaveLength(1);
    expect(clients.map((s) => s.attributes['http.request.resend_count'])).toEqual([undefined, 1, 2]);
    expect(clients.map((s) => s.attributes['http.response.status_code'])).toEqual([503, 503, 200]);
    expect(clients[0]!.attributes['error.type']).toBe('503');
    // Attempt 1 went out before a retry could be known: it stays under the caller, linked.
    expect(internal!.links.map((l) => l.context.spanId)).toEqual([clients[0]!.spanContext().spanId]);
    for (const c of clients.slice(1))
      expect(c.parentSpanContext?.spanId).toBe(internal!.spanContext().spanId);
    expect(internal!.attributes['mesh.attempts']).toBe(3);
    expect(internal!.events.map((e) => e.name)).toEqual(['mesh.retry', 'mesh.retry']);
    expect(internal!.startTime[0] * 1e3 + internal!.startTime[1] / 1e6).toBeLessThanOrEqual(
      clients[0]!.startTime[0] * 1e3 + clients[0]!.startTime[1] / 1e6 + 1,
    );
    // Metrics: attempts per endpoint and outcome, retries by reason, one logical request.
    const attempts = (await registry.getSingleMetric('mesh_attempts_total')!.get()).values;
    expect(attempts.map((v) => [v.labels.endpoint, v.labels.outcome, v.value])).toEqual([
      [flaky.address, '5xx', 2],
      [ok.address, 'success', 1],
    ]);
    const retries = (await registry.getSingleMetric('mesh_retries_total')!.get()).values;
    expect(retries.map((v) => [v.labels.service, v.labels.reason, v.value])).toEqual([
      ['inventory', '5xx', 2],
    ]);
    expect(await histogramCount()).toBe(1);
    expect(sink.lines[0]).toMatchObject({
      attempts: 3,
      response_code: 200,
      response_flags: '-',
      upstream_host: ok.address,
    });
    expect(sink.lines[0]!.trace_id).toBe(internal!.spanContext().traceId);
  });

  it('logs URX when retries are exhausted', async () => {
    const r = await collect(stack([fakeRetry(1)], [ep(flaky)]), callOptions(callContext('inventory')));
    expect(r.status).toBe(503);
    expect(flakyCalls).toBe(2);
    expect(sink.lines[0]).toMatchObject({ response_code: 503, response_flags: 'URX', attempts: 2 });
    const count = (await registry.getSingleMetric('http_client_request_duration_seconds')!.get()).values.find(
      (v) => (v as { metricName?: string }).metricName?.endsWith('_count'),
    );
    expect(count?.labels).toMatchObject({ http_response_status_code: '503', error_type: '503' });
  });

  it('shows an ejection on the span of the attempt that caused it', async () => {
    // Stands for the balancer: on a 503 it ejects the endpoint when the attempt ends, before
    // the end reaches the stages above (as the pick stage reports to outlier detection).
    const ejector: Interceptor = (dispatch) => (opts, handler) => {
      const ctx = callOf(opts)!;
      let status = 0;
      return dispatch(opts, {
        ...handler,
        onRequestStart: (c, x) => handler.onRequestStart?.(c, x),
        onResponseStart: (c, st, h, m) => {
          status = st;
          handler.onResponseStart?.(c, st, h, m);
        },
        onResponseData: (c, chunk) => handler.onResponseData?.(c, chunk),
        onResponseEnd: (c, t) => {
          if (status === 503) {
            telemetry.onMeshEvent({
              type: 'balancer',
              service: ctx.service,
              event: {
                type: 'eject',
                endpoint: ctx.endpoint!.id,
                reason: 'consecutive_5xx',
                durationMs: 30_000,
              },
            });
          }
          handler.onResponseEnd?.(c, t);
        },
        onResponseError: (c, e) => handler.onResponseError?.(c, e),
      });
    };
    const dispatch = composeInterceptors(
      [
        telemetry.callInterceptor,
        fakeRetry(1),
        telemetry.attemptInterceptor,
        fakePick([ep(flaky), ep(ok)]),
        ejector,
      ],
      pools.terminal,
    );
    const r = await collect(dispatch, callOptions(callContext('inventory')));
    expect(r.status).toBe(200);
    const [first, second] = clientSpans();
    expect(first!.events.map((e) => [e.name, e.attributes?.['mesh.endpoint']])).toEqual([
      ['mesh.ejected', flaky.address],
    ]);
    expect(second!.events).toEqual([]);
    expect(telemetry.events.list().at(-1)).toMatchObject({ type: 'eject', service: 'inventory' });
  });

  it('logs UF for a dead endpoint, with the endpoint and error code', async () => {
    const dead = await startServer('dead');
    const address = { address: dead.host, port: dead.port };
    await dead.close();
    const r = await collect(stack([], [address]), callOptions(callContext('ghost')));
    expect(r.error).toBeDefined();
    expect(sink.lines[0]).toMatchObject({
      response_code: 0,
      response_flags: 'UF',
      upstream_host: `127.0.0.1:${address.port}`,
      error_code: 'ECONNREFUSED',
    });
    const [span] = clientSpans();
    expect(span!.attributes['error.type']).toBe('ECONNREFUSED');
    expect(span!.attributes['network.peer.port']).toBe(address.port);
  });

  it('logs UT for a timeout', async () => {
    const r = await collect(stack([], [ep(slow)]), callOptions(callContext('sloth')));
    expect(r.error).toBeDefined();
    expect(sink.lines[0]).toMatchObject({ response_flags: 'UT', error_code: 'UND_ERR_HEADERS_TIMEOUT' });
  });

  it('logs UO for an open circuit and makes the failure visible as an INTERNAL span', async () => {
    const r = await collect(stack([openBreaker], [ep(ok)]), callOptions(callContext('payments')));
    expect(MeshError.is(r.error, 'MESH_CIRCUIT_OPEN')).toBe(true);
    expect(sink.lines[0]).toMatchObject({
      response_flags: 'UO',
      attempts: 0,
      upstream_host: '-',
      error_code: 'MESH_CIRCUIT_OPEN',
    });
    expect(clientSpans()).toHaveLength(0);
    const [internal] = internalSpans();
    expect(internal!.attributes['error.type']).toBe('MESH_CIRCUIT_OPEN');
    expect(internal!.events.map((e) => e.name)).toEqual(['mesh.circuit_open']);
  });

  it('passes through dispatches that are not mesh calls, options untouched', async () => {
    const pool = new Pool(`http://${ok.address}`);
    let passed: unknown;
    const dispatch = composeInterceptors(
      [telemetry.callInterceptor, telemetry.attemptInterceptor],
      (opts, handler) => {
        passed = opts;
        return pool.dispatch(opts, handler);
      },
    );
    const opts = { method: 'GET' as const, path: '/', headers: { a: '1' } };
    const r = await collect(dispatch, opts);
    await pool.close();
    expect(r.status).toBe(200);
    expect(passed).toBe(opts);
    expect(exporter.getFinishedSpans()).toHaveLength(0);
    expect(sink.lines).toHaveLength(0);
  });
});
