/**
 * A retry with no endpoint left to send it to, over a real refused port: the only endpoint refuses
 * the connect, which moves it to TRANSIENT_FAILURE, so the pick stage refuses the retry with
 * MESH_NO_HEALTHY_ENDPOINTS before anything is sent. The caller must get the refused connect (the
 * last real error), and the retry stage must say why it stopped.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { createMesh, MeshError } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer } from '../../support/http-server.js';

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
provider.register();

let deadAddress: string;
const dir = mkdtempSync(join(tmpdir(), 'proxyless-no-healthy-'));

beforeAll(async () => {
  const dead = await startServer('dead');
  deadAddress = dead.address; // 127.0.0.1:<port>
  await dead.close(); // nothing listens there any more: connections are refused
});

afterAll(async () => {
  await provider.shutdown();
  rmSync(dir, { recursive: true, force: true });
});

describe('retry on connect-failure with a single endpoint that refuses connections', () => {
  it('fails with the refused connect, not MESH_NO_HEALTHY_ENDPOINTS, and gives up saying why', async () => {
    const accessLog = join(dir, 'access.log');
    const mesh = createMesh({
      env: {},
      telemetry: { accessLog },
      services: {
        d: {
          endpoints: deadAddress,
          retry: { maxRetries: 2, retryOn: ['connect-failure'], backoff: { base: '1ms' } },
        },
      },
    });
    let error: unknown;
    try {
      await mesh.request('http://d/x');
    } catch (e) {
      error = e;
    } finally {
      await mesh.close();
    }
    expect(MeshError.is(error, 'MESH_CONNECT_FAILED')).toBe(true);
    const failed = error as MeshError;
    expect(failed.details.endpoint).toBe(deadAddress);
    expect((failed.cause as { code?: string } | undefined)?.code).toBe('ECONNREFUSED');

    const events = exporter.getFinishedSpans().flatMap((s) => s.events);
    const of = (name: string) =>
      events.filter((e) => e.name === name).map((e) => e.attributes?.['mesh.reason']);
    expect(of('mesh.retry')).toEqual(['connect-failure']);
    expect(of('mesh.give_up')).toEqual(['no_healthy_endpoints (connect-failure)']);

    const line = JSON.parse(readFileSync(accessLog, 'utf8').trim());
    expect(line).toMatchObject({ error_code: 'MESH_CONNECT_FAILED', response_flags: 'UF' });
  });
});
