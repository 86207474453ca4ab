/**
 * Regressions in how one logical call is accounted for in traces, metrics and the access log:
 * a retried call with no caller span is one trace; an overall timeout names the endpoint it was
 * sent to; a call with no endpoints makes no attempt; a caller stopping the body is `DC`, not an
 * endpoint error; injected faults are visible in the trace.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpanKind, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { Registry } from 'prom-client';
import { createMesh, type Mesh } from 'proxyless';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer, until } from '../../support/http-server.js';

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
provider.register();

let upstream: TestServer;
const traceparents: string[] = [];
/** Responses held open by `/hold` until the test server closes. */
const held: Array<() => void> = [];
const meshes: Mesh[] = [];
const dir = mkdtempSync(join(tmpdir(), 'proxyless-call-accounting-'));

beforeAll(async () => {
  upstream = await startServer('up', (req, res) => {
    traceparents.push(String(req.headers.traceparent));
    req.resume();
    if (req.url === '/500') {
      res.writeHead(500);
      res.end('no');
    } else if (req.url === '/hold') {
      held.push(() => res.end());
    } else if (req.url === '/503stream') {
      res.writeHead(503);
      res.write('e'.repeat(1000));
      held.push(() => res.end('z'));
    } else if (req.url === '/reset') {
      res.writeHead(200, { 'content-length': '2000' });
      res.write('r'.repeat(1000), () => res.destroy());
    } else if (req.url === '/stream') {
      res.writeHead(200);
      res.write('a'.repeat(1000));
      held.push(() => res.end('z'));
    } else res.end('ok');
  });
});

beforeEach(() => {
  exporter.reset();
  traceparents.length = 0;
});

afterAll(async () => {
  await Promise.all(meshes.map((m) => m.close()));
  for (const release of held) release();
  await upstream.close();
  await provider.shutdown();
});

function mesh(options: Parameters<typeof createMesh>[0]): Mesh {
  const m = createMesh(options);
  meshes.push(m);
  return m;
}

function spansOf(service: string): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((s) => s.attributes['server.address'] === service);
}

function logLines(path: string): Array<Record<string, unknown>> {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function seriesOf(text: string, prefix: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(prefix));
}

describe('one logical call, accounted once', () => {
  it('keeps a retried call with no caller span in one trace: attempt 1 the root, the rest under the INTERNAL span below it', async () => {
    const m = mesh({
      env: {},
      metrics: { registry: new Registry() },
      services: {
        retried: {
          endpoints: upstream.address,
          retry: { maxRetries: 2, retryOn: ['5xx'], backoff: { base: 0, max: 0 } },
        },
      },
    });
    expect(trace.getActiveSpan()).toBeUndefined();
    const res = await m.request('http://retried/500');
    await res.body.text();
    expect(res.statusCode).toBe(500);
    const spans = spansOf('retried');
    const internal = spans.filter((s) => s.kind === SpanKind.INTERNAL);
    const clients = spans.filter((s) => s.kind === SpanKind.CLIENT);
    expect(internal).toHaveLength(1);
    expect(clients).toHaveLength(3);
    const traceId = internal[0]!.spanContext().traceId;
    expect(new Set(spans.map((s) => s.spanContext().traceId))).toEqual(new Set([traceId]));
    // Attempt 1 went out before a retry could be known: the trace's root, parent of the INTERNAL span.
    const [first, ...rest] = clients;
    expect(first!.parentSpanContext?.spanId).toBeUndefined();
    expect(internal[0]!.parentSpanContext?.spanId).toBe(first!.spanContext().spanId);
    for (const c of rest) expect(c.parentSpanContext?.spanId).toBe(internal[0]!.spanContext().spanId);
    expect(traceparents).toHaveLength(3);
    expect(new Set(traceparents.map((t) => t.split('-')[1]))).toEqual(new Set([traceId]));
  });

  it('names the endpoint in the access log when the overall timeout fails a call already sent', async () => {
    const log = join(dir, 'timeout.log');
    const m = mesh({
      env: {},
      metrics: { registry: new Registry() },
      telemetry: { accessLog: log },
      services: { slow: { endpoints: upstream.address, timeout: '50ms', retry: false } },
    });
    await expect(m.request('http://slow/hold')).rejects.toMatchObject({ code: 'MESH_TIMEOUT' });
    await m.close();
    const [line] = logLines(log);
    expect(line).toMatchObject({ upstream_host: upstream.address, response_flags: 'UT', attempts: 1 });
  });

  it('makes no attempt, no CLIENT span and no attempt series for a call with no endpoints', async () => {
    const log = join(dir, 'noeps.log');
    const registry = new Registry();
    const m = mesh({
      env: {},
      metrics: { registry },
      telemetry: { accessLog: log },
      services: { noeps: { endpoints: [], retry: false } },
    });
    await expect(m.request('http://noeps/x')).rejects.toMatchObject({ code: 'MESH_NO_ENDPOINTS' });
    await m.close();
    const spans = spansOf('noeps');
    expect(spans.map((s) => s.kind)).toEqual([SpanKind.INTERNAL]);
    expect(spans[0]!.attributes['error.type']).toBe('MESH_NO_ENDPOINTS');
    expect(spans[0]!.attributes['mesh.attempts']).toBe(0);
    expect(seriesOf(await registry.metrics(), 'mesh_attempts_total{')).toEqual([]);
    expect(logLines(log)[0]).toMatchObject({ attempts: 0, upstream_host: '-', response_flags: 'UH' });
  });

  it('records a caller that stops the body as a downstream abort (DC), not an endpoint error', async () => {
    const log = join(dir, 'abort.log');
    const registry = new Registry();
    const m = mesh({
      env: {},
      metrics: { registry },
      telemetry: { accessLog: log },
      services: { s: { endpoints: upstream.address, retry: false } },
    });
    const res = await m.request('http://s/stream');
    res.body.on('error', () => {});
    res.body.once('data', () => res.body.destroy());
    // One attempt, no caller span: its CLIENT span is the call's only span, ended with the call.
    await until(() => spansOf('s').some((s) => s.kind === SpanKind.CLIENT), 'the call ended');
    await m.close();
    const text = await registry.metrics();
    expect(seriesOf(text, 'http_client_request_duration_seconds_count')).toEqual([
      'http_client_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",server_address="s",error_type="UND_ERR_ABORTED"} 1',
    ]);
    // The attempt answered 200: it counts by its head's status, as Envoy's upstream_rq_200 does
    // (`cancelled` is an attempt stopped before any head).
    expect(seriesOf(text, 'mesh_attempts_total{')).toEqual([
      `mesh_attempts_total{service="s",endpoint="${upstream.address}",outcome="success"} 1`,
    ]);
    expect(spansOf('s').map((s) => s.attributes['error.type'])).toEqual(['UND_ERR_ABORTED']);
    expect(logLines(log)[0]).toMatchObject({ response_flags: 'DC', error_code: 'UND_ERR_ABORTED' });
  });

  it('counts an attempt by its head: a 503 whose body the caller drops is 5xx; a reset after a 200 head is error', async () => {
    const registry = new Registry();
    const m = mesh({
      env: {},
      metrics: { registry },
      services: { s: { endpoints: upstream.address, retry: false, outlierDetection: false } },
    });
    for (let i = 0; i < 3; i++) {
      const res = await m.request('http://s/503stream');
      expect(res.statusCode).toBe(503);
      res.body.on('error', () => {});
      res.body.destroy();
    }
    const reset = await m.request('http://s/reset');
    await expect(reset.body.text()).rejects.toThrow();
    const attempts = (): Promise<string[]> =>
      registry.metrics().then((text) => seriesOf(text, 'mesh_attempts_total{'));
    await expect.poll(attempts, { timeout: 5000, interval: 20 }).toHaveLength(2);
    // Before: the three dropped 503s were `cancelled`, while mesh.stats() counted three failures.
    expect((await attempts()).sort()).toEqual([
      `mesh_attempts_total{service="s",endpoint="${upstream.address}",outcome="5xx"} 3`,
      `mesh_attempts_total{service="s",endpoint="${upstream.address}",outcome="error"} 1`,
    ]);
    const stats = m.stats('s')!.endpoints[0]!;
    expect({ requests: stats.requests, failures: stats.failures }).toEqual({ requests: 4, failures: 4 });
  });

  it('shows an injected abort as an INTERNAL span and an injected delay as a mesh.fault event', async () => {
    const m = mesh({
      env: {},
      metrics: { registry: new Registry() },
      services: {
        fi: {
          endpoints: upstream.address,
          retry: false,
          faultInjection: { abort: { percent: 100, status: 503 } },
        },
        di: {
          endpoints: upstream.address,
          retry: false,
          faultInjection: { delay: { percent: 100, duration: '1ms' } },
        },
      },
    });
    const aborted = await m.request('http://fi/x');
    await aborted.body.text();
    expect(aborted.statusCode).toBe(503);
    const fi = spansOf('fi');
    expect(fi.map((s) => s.kind)).toEqual([SpanKind.INTERNAL]);
    expect(fi[0]!.attributes['error.type']).toBe('503');
    expect(fi[0]!.events.map((e) => e.name)).toContain('mesh.fault');
    // Under a caller's span a one-attempt call has just its CLIENT span: the event goes there.
    await trace.getTracer('test').startActiveSpan('caller', async (caller) => {
      const delayed = await m.request('http://di/x');
      await delayed.body.text();
      caller.end();
    });
    const di = spansOf('di');
    expect(di.map((s) => s.kind)).toEqual([SpanKind.CLIENT]);
    expect(di[0]!.events.map((e) => e.name)).toContain('mesh.fault');
  });

  it('counts a hedge that lost the race as cancelled, not as its endpoint’s error', async () => {
    const fast = await startServer('fast', (_req, res) => res.end('fast'));
    try {
      const registry = new Registry();
      const m = mesh({
        env: {},
        metrics: { registry },
        services: {
          h: {
            // `/hold` never answers on the upstream; the fast server answers at once.
            endpoints: `${upstream.address},${fast.address}`,
            loadBalancer: { policy: 'round_robin' },
            hedge: { delay: '30ms', maxHedges: 1 },
            retry: false,
          },
        },
      });
      // Round robin: at least one of the two calls goes to the upstream first and is hedged.
      for (let i = 0; i < 2; i++) expect(await (await m.request('http://h/hold')).body.text()).toBe('fast');
      // The loser's attempt ends when its cancellation is processed, just after the call's answer.
      const prefix = `mesh_attempts_total{service="h",endpoint="${upstream.address}",outcome="cancelled"}`;
      await expect
        .poll(async () => seriesOf(await registry.metrics(), prefix).length, { timeout: 5000, interval: 20 })
        .toBe(1);
      // Before: the loser was `outcome="error"` against the upstream.
      const series = seriesOf(await registry.metrics(), 'mesh_attempts_total{');
      expect(series.some((l) => l.includes('outcome="error"'))).toBe(false);
    } finally {
      await fast.close();
    }
  });
  it('counts an attempt a per-try timeout gave up while it waited in the pool as cancelled, not an endpoint error', async () => {
    const registry = new Registry();
    const m = mesh({
      env: {},
      metrics: { registry },
      services: {
        queued: {
          endpoints: upstream.address,
          // Long enough for the streaming call's own head on a loaded machine (it is timed too).
          perTryTimeout: '1s',
          retry: false,
          circuitBreaker: { maxConnections: 1 },
        },
      },
    });
    // The one connection streams; the next call waits in the pool until its per-try timeout.
    const streaming = await m.request('http://queued/stream');
    await expect(m.request('http://queued/x')).rejects.toMatchObject({
      code: 'MESH_TIMEOUT',
      details: { limit: 'perTry', sent: false },
    });
    const attempts = seriesOf(await registry.metrics(), 'mesh_attempts_total{');
    // Before: outcome="error" for the endpoint, which never saw the request.
    expect(attempts.filter((l) => l.includes('outcome="error"'))).toEqual([]);
    expect(attempts.find((l) => l.includes('outcome="cancelled"'))).toMatch(/ 1$/);
    streaming.body.destroy();
  });
});
