/**
 * What a call does after its only attempt's span has ended is in its trace: an INTERNAL span
 * (the call's) carries the events that came after (a retry the breaker refused, `give_up`) and the
 * call's own failure (the caller aborting in the retry backoff). Before, the one exported span
 * showed a retry that never came and the call's outcome was nowhere.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { createMesh, type Mesh } from 'proxyless';
import { VirtualClock } from 'proxyless/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer, until } from '../../support/http-server.js';

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
provider.register();

let server: TestServer;
const meshes: Mesh[] = [];
beforeAll(async () => {
  server = await startServer('busy', (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    res.writeHead(503);
    res.end('no');
  });
});
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
  exporter.reset();
});
afterAll(async () => {
  await server.close();
  await provider.shutdown();
});

const internal = (): ReadableSpan | undefined =>
  exporter.getFinishedSpans().find((s) => s.kind === SpanKind.INTERNAL);

describe('the trace of a call after its only attempt', () => {
  it('a retry the breaker refuses: its events are on the call span', async () => {
    const mesh = createMesh({
      env: {},
      services: {
        api: {
          endpoints: server.address,
          outlierDetection: false,
          retry: { maxRetries: 2, retryOn: ['5xx'], backoff: { base: '1ms', max: '1ms' } },
          circuitBreaker: { volumeThreshold: 1, errorThresholdPercentage: 1 },
        },
      },
    });
    meshes.push(mesh);
    const res = await mesh.request('http://api/');
    expect(res.statusCode).toBe(503);
    await res.body.text();
    const clients = exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.CLIENT);
    expect(clients).toHaveLength(1);
    const call = internal();
    expect(call?.events.map((e) => e.name)).toEqual(['mesh.retry', 'mesh.circuit_open', 'mesh.give_up']);
    expect(call?.attributes).toMatchObject({ 'http.response.status_code': 503, 'mesh.attempts': 1 });
    expect(call?.links[0]?.context.spanId).toBe(clients[0]?.spanContext().spanId);
  });

  it('the caller aborting in the retry backoff: the call span has its failure', async () => {
    const clock = new VirtualClock(0);
    const mesh = createMesh({
      env: {},
      clock,
      services: {
        api: {
          endpoints: server.address,
          retry: { maxRetries: 2, retryOn: ['5xx'], backoff: { base: '1s', max: '1s' } },
          circuitBreaker: false,
        },
      },
    });
    meshes.push(mesh);
    const controller = new AbortController();
    const call = mesh.request('http://api/', { signal: controller.signal }).catch((e: unknown) => e);
    // The first attempt's 503 has ended (its span too): the call sleeps in its backoff.
    await until(() => exporter.getFinishedSpans().length === 1, 'the first attempt ended');
    controller.abort(new Error('stop'));
    expect(await call).toMatchObject({ message: 'stop' });
    const span = internal();
    expect(span?.status.code).toBe(2);
    expect(span?.attributes['mesh.attempts']).toBe(1);
    expect(span?.events.map((e) => e.name)).toContain('mesh.retry');
  });
});
