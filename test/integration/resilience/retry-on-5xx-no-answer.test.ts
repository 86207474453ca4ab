/**
 * `retryOn: ['5xx']` and `['gateway-error']` over real sockets: as in Envoy, they also retry an
 * upstream that does not answer at all — a refused connect, a connection reset — not only its
 * statuses (Envoy docs: "or does not respond at all (disconnect/reset/read timeout). (Includes
 * connect-failure and refused-stream)"; `retry_state_impl.cc`, `wouldRetryFromReset`). What may
 * be sent again is unchanged: a refused connect sent nothing, so any method goes to the other
 * endpoint; a reset after the request was sent is retried only for an idempotent request.
 */
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { createMesh, type Mesh, MeshError } from 'proxyless';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
provider.register();

let deadAddress: string;
let good: TestServer;
let resetter: TestServer;

beforeAll(async () => {
  const dead = await startServer('dead');
  deadAddress = dead.address;
  await dead.close(); // nothing listens there any more: connections are refused
  good = await startServer('good');
  resetter = await startServer('resetter', (req) => {
    req.socket.destroy(); // no answer at all: the connection is reset
  });
});

afterAll(async () => {
  await good.close();
  await resetter.close();
  await provider.shutdown();
});

/** The `mesh.retry` span events so far: why each retry was made and what failed. */
function retries(): { reason: unknown; code: unknown }[] {
  return exporter
    .getFinishedSpans()
    .flatMap((s) => s.events)
    .filter((e) => e.name === 'mesh.retry')
    .map((e) => ({ reason: e.attributes?.['mesh.reason'], code: e.attributes?.['error.type'] }));
}

describe.each(['5xx', 'gateway-error'] as const)('retryOn [%s] over real sockets', (on) => {
  let mesh: Mesh | undefined;
  afterEach(async () => {
    await mesh?.close();
    mesh = undefined;
    exporter.reset();
  });

  function meshTo(first: string): Mesh {
    return createMesh({
      env: {},
      services: {
        api: {
          endpoints: `${first},${good.address}`,
          retry: { maxRetries: 2, retryOn: [on], backoff: { base: '1ms', max: '5ms' } },
          circuitBreaker: false,
          outlierDetection: false,
        },
      },
    });
  }

  it('retries a refused connect on the other endpoint, even for a POST (nothing was sent)', async () => {
    mesh = meshTo(deadAddress);
    // Round robin sends one of the first calls to the refusing endpoint first; every call answers.
    for (let i = 0; i < 4 && retries().length === 0; i++) {
      const res = await mesh.request('http://api/x', { method: 'POST', body: `call ${i}` });
      expect([i, res.statusCode, await res.body.text()]).toEqual([i, 200, 'good']);
    }
    expect(retries()).toEqual([{ reason: on, code: 'MESH_CONNECT_FAILED' }]);
  });

  it('retries a reset for an idempotent GET on the other endpoint', async () => {
    mesh = meshTo(resetter.address);
    const resetsBefore = resetter.requests;
    for (let i = 0; i < 4; i++) {
      const res = await mesh.request('http://api/x');
      expect([i, res.statusCode, await res.body.text()]).toEqual([i, 200, 'good']);
    }
    expect(resetter.requests).toBeGreaterThan(resetsBefore);
    expect(retries().length).toBe(resetter.requests - resetsBefore);
    for (const r of retries()) expect(r).toEqual({ reason: on, code: 'MESH_UPSTREAM_RESET' });
  });

  it('does not replay a POST whose request was sent before the reset', async () => {
    mesh = meshTo(resetter.address);
    const resetsBefore = resetter.requests;
    let failure: unknown;
    // POSTs until one reaches the resetting endpoint: that one fails, and is not sent again.
    for (let i = 0; i < 4 && resetter.requests === resetsBefore; i++) {
      const goodBefore = good.requests;
      try {
        const res = await mesh.request('http://api/x', { method: 'POST', body: 'charge' });
        await res.body.dump();
      } catch (e) {
        failure = e;
        expect(good.requests).toBe(goodBefore);
      }
    }
    expect(resetter.requests).toBe(resetsBefore + 1);
    expect(MeshError.is(failure, 'MESH_UPSTREAM_RESET')).toBe(true);
    expect(retries()).toEqual([]);
  });
});
