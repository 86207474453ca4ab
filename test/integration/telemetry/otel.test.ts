/**
 * `@proxyless/telemetry/otel`: the SDK from OTEL_* variables exports spans over OTLP/HTTP to a
 * real receiver on 127.0.0.1, and bad variables are rejected by name and value.
 */

import { trace } from '@opentelemetry/api';
import { MeshError } from '@proxyless/core';
import { loadOtelSdk, OTEL_SDK_PACKAGES, startOtel } from '@proxyless/telemetry/otel';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

interface Received {
  path: string;
  headers: Record<string, unknown>;
  body: string;
}

let receiver: TestServer;
const received: Received[] = [];

beforeAll(async () => {
  receiver = await startServer('otlp', (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({
        path: req.url ?? '',
        headers: { ...req.headers },
        body: Buffer.concat(chunks).toString(),
      });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
});

afterAll(() => receiver.close());

describe('startOtel', () => {
  it('exports spans over OTLP/HTTP JSON to OTEL_EXPORTER_OTLP_ENDPOINT with headers and resource', async () => {
    const otel = startOtel({
      env: {
        OTEL_SERVICE_NAME: 'checkout',
        OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=test,team=payments',
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://${receiver.address}/`,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_EXPORTER_OTLP_HEADERS: 'x-api-key=s%20ecret',
      },
    });
    trace.getTracer('test').startSpan('work').end();
    await otel.forceFlush();
    await otel.shutdown();
    expect(await otel.shutdown()).toBeUndefined();
    expect(received).toHaveLength(1);
    expect(received[0]!.path).toBe('/v1/traces');
    expect(received[0]!.headers['x-api-key']).toBe('s ecret');
    const body = JSON.parse(received[0]!.body);
    const attrs = Object.fromEntries(
      body.resourceSpans[0].resource.attributes.map((a: { key: string; value: { stringValue: string } }) => [
        a.key,
        a.value.stringValue,
      ]),
    );
    expect(attrs).toMatchObject({
      'service.name': 'checkout',
      'deployment.environment': 'test',
      team: 'payments',
    });
    expect(body.resourceSpans[0].scopeSpans[0].spans[0].name).toBe('work');
  });

  it('does nothing when OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none', async () => {
    expect(startOtel({ env: { OTEL_SDK_DISABLED: 'true' } }).provider).toBeUndefined();
    expect(startOtel({ env: { OTEL_TRACES_EXPORTER: 'none' } }).provider).toBeUndefined();
  });

  it('rejects invalid variables, naming each with its value', () => {
    let error: unknown;
    try {
      startOtel({
        env: {
          OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
          OTEL_EXPORTER_OTLP_ENDPOINT: 'not a url',
          OTEL_EXPORTER_OTLP_TIMEOUT: 'soon',
          OTEL_SDK_DISABLED: 'perhaps',
          OTEL_RESOURCE_ATTRIBUTES: 'novalue',
        },
      });
    } catch (e) {
      error = e;
    }
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    const fields = (error as MeshError).details.issues?.map((i) => i.field).sort();
    expect(fields).toEqual([
      'OTEL_EXPORTER_OTLP_ENDPOINT',
      'OTEL_EXPORTER_OTLP_PROTOCOL',
      'OTEL_EXPORTER_OTLP_TIMEOUT',
      'OTEL_RESOURCE_ATTRIBUTES',
      'OTEL_SDK_DISABLED',
    ]);
    expect((error as Error).message).toContain('"grpc"');
  });

  it.each(['api-key=S3CRET-10,broken', 'x-honeycomb-team S3CRET-9', 'authorization=Bearer S3CRET-8%ZZ'])(
    'names a bad OTEL_EXPORTER_OTLP_HEADERS item by its place, never quoting the headers (%s)',
    (headers) => {
      let error: unknown;
      try {
        startOtel({ env: { OTEL_EXPORTER_OTLP_HEADERS: headers } });
      } catch (e) {
        error = e;
      }
      expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
      const all = `${(error as Error).message}${JSON.stringify((error as MeshError).details)}`;
      expect(all).toMatch(/OTEL_EXPORTER_OTLP_HEADERS: [^\n]*item \d/);
      expect(all).not.toContain('S3CRET');
    },
  );
});

describe('the SDK packages are optional peers', () => {
  it('missing ones are named together, with the install command (was Node’s error for the first, at import)', () => {
    const absent = new Set(['@opentelemetry/exporter-trace-otlp-proto', '@opentelemetry/resources']);
    const load = (name: string): unknown => {
      if (absent.has(name))
        throw Object.assign(new Error(`Cannot find module '${name}'`), { code: 'MODULE_NOT_FOUND' });
      return {};
    };
    let error: unknown;
    try {
      loadOtelSdk(load);
    } catch (e) {
      error = e;
    }
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    const message = (error as MeshError).message;
    expect(message).toContain('@opentelemetry/resources, @opentelemetry/exporter-trace-otlp-proto');
    expect(message).toContain(`npm install ${OTEL_SDK_PACKAGES.join(' ')}`);
  });

  it('with the SDK off none of them is needed; with all installed they load', () => {
    // With the SDK off, startOtel needs none of the packages.
    const handle = startOtel({ env: { OTEL_SDK_DISABLED: 'true' } });
    expect(handle.provider).toBeUndefined();
    // Every package loads when one is started.
    expect(() => loadOtelSdk()).not.toThrow();
  });
});
