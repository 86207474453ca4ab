/**
 * A hedged attempt that answered a 5xx while another attempt of the call was still running is
 * held back (reset, its answer discarded) in case the other does better. It answered: its
 * endpoint's `mesh_attempts_total` counts it `5xx` and its CLIENT span has the status as
 * `error.type`, as outlier detection and the breaker count it at its head. Only an attempt
 * stopped before its head (a hedge that lost the race) is `cancelled`. Real loopback servers.
 */

import { mkdtempSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { Registry } from 'prom-client';
import { createMesh, type Mesh } from 'proxyless';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer, until } from '../../support/http-server.js';

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
provider.register();

const dir = mkdtempSync(join(tmpdir(), 'proxyless-hedge-outcome-'));
const meshes: Mesh[] = [];
const servers: TestServer[] = [];

afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
  exporter.reset();
});

afterAll(async () => {
  await provider.shutdown();
});

/**
 * Two endpoints. The request that arrives first is held; the second (the hedge) gets a 503 head
 * at once, its body left open. When the mesh resets that 503 exchange, the held request is
 * answered with `finalStatus`: the 503 came while the other attempt was still running.
 */
async function heldFiveHundredThenAnswer(finalStatus: number): Promise<{
  mesh: Mesh;
  registry: Registry;
  log: string;
  role: { held?: TestServer; fiveXX?: TestServer };
}> {
  const role: { held?: TestServer; fiveXX?: TestServer } = {};
  let heldRes: ServerResponse | undefined;
  const handler = (req: IncomingMessage, res: ServerResponse, s: TestServer): void => {
    req.resume();
    if (role.held === undefined) {
      role.held = s;
      heldRes = res;
      return;
    }
    role.fiveXX = s;
    res.once('close', () => {
      heldRes!.writeHead(finalStatus);
      heldRes!.end('late');
    });
    res.writeHead(503);
    res.write('busy');
  };
  servers.push(await startServer('a', handler), await startServer('b', handler));
  const registry = new Registry();
  const log = join(dir, `hedge-${finalStatus}.log`);
  const mesh = createMesh({
    env: {},
    metrics: { registry },
    telemetry: { accessLog: log },
    services: {
      h: {
        endpoints: servers.map((s) => s.address).join(','),
        loadBalancer: { policy: 'round_robin' },
        hedge: { delay: '20ms', maxHedges: 1 },
        retry: false,
        outlierDetection: false,
      },
    },
  });
  meshes.push(mesh);
  return { mesh, registry, log, role };
}

function clientSpans(): ReadableSpan[] {
  return exporter
    .getFinishedSpans()
    .filter((s) => s.kind === SpanKind.CLIENT && s.attributes['server.address'] === 'h');
}

function attemptSeries(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('mesh_attempts_total{'))
    .sort();
}

function spanOf(server: TestServer): ReadableSpan {
  const span = clientSpans().find((s) => s.attributes['network.peer.port'] === server.port);
  expect(span, `the CLIENT span of ${server.name}`).toBeDefined();
  return span!;
}

describe('a hedged attempt held back with a 5xx', () => {
  it('counts a 503 held back while the other attempt ran as 5xx of its endpoint, not cancelled', async () => {
    const { mesh, registry, log, role } = await heldFiveHundredThenAnswer(200);
    const r = await mesh.request('http://h/x');
    expect(await r.body.text()).toBe('late');
    expect(r.statusCode).toBe(200);
    const { held, fiveXX } = role;
    expect(held).toBeDefined();
    expect(fiveXX).toBeDefined();
    expect(fiveXX).not.toBe(held);
    expect(r.endpoint).toBe(held!.address);
    // Both attempts' spans end (and their attempts are counted) when their exchanges end.
    await until(() => clientSpans().length === 2, 'both attempts ended');

    // Before: outcome="cancelled" for the endpoint that answered 503.
    expect(attemptSeries(await registry.metrics())).toEqual(
      [
        `mesh_attempts_total{service="h",endpoint="${fiveXX!.address}",outcome="5xx"} 1`,
        `mesh_attempts_total{service="h",endpoint="${held!.address}",outcome="success"} 1`,
      ].sort(),
    );
    // The span says what the metric says: the endpoint answered 503 (before: MESH_ABORTED, with
    // "another hedged attempt answered first" though none had).
    const discarded = spanOf(fiveXX!);
    expect(discarded.attributes['http.response.status_code']).toBe(503);
    expect(discarded.attributes['error.type']).toBe('503');
    expect(discarded.status.code).toBe(SpanStatusCode.ERROR);
    expect(discarded.status.message).toMatch(/answered 503/);
    const winner = spanOf(held!);
    expect(winner.attributes['http.response.status_code']).toBe(200);
    expect(winner.attributes['error.type']).toBeUndefined();

    await mesh.close();
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      response_code: 200,
      upstream_host: held!.address,
      attempts: 2,
      response_flags: '-',
      error_code: '-',
    });
  });

  it('counts both attempts as 5xx when both answer 503: the first one held back, the last one returned', async () => {
    const { mesh, registry, log, role } = await heldFiveHundredThenAnswer(503);
    const r = await mesh.request('http://h/x');
    expect(await r.body.text()).toBe('late');
    expect(r.statusCode).toBe(503);
    const { held, fiveXX } = role;
    expect(r.endpoint).toBe(held!.address);
    await until(() => clientSpans().length === 2, 'both attempts ended');

    // Before: the 503 that came first was outcome="cancelled".
    expect(attemptSeries(await registry.metrics())).toEqual(
      [
        `mesh_attempts_total{service="h",endpoint="${fiveXX!.address}",outcome="5xx"} 1`,
        `mesh_attempts_total{service="h",endpoint="${held!.address}",outcome="5xx"} 1`,
      ].sort(),
    );
    expect(spanOf(fiveXX!).attributes['error.type']).toBe('503');
    expect(spanOf(held!).attributes['error.type']).toBe('503');

    await mesh.close();
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    expect(JSON.parse(lines[0]!)).toMatchObject({
      response_code: 503,
      upstream_host: held!.address,
      attempts: 2,
      error_code: '-',
    });
  });
});
