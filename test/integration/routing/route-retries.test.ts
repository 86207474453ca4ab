/**
 * A route's retry settings replace the service's, conditions included, as Consul hands them to
 * Envoy (`getRetryPolicyForDestination`): `NumRetries` without a condition the retry stage knows
 * retries nothing (probe29).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createConfigSource, createMesh, type Mesh } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let server: http.Server;
let port: number;
let mesh: Mesh;
const hits = new Map<string, number>();

const route = (prefix: string, destination: Record<string, unknown>) => ({
  Match: { HTTP: { PathPrefix: prefix } },
  Destination: destination,
});

beforeAll(async () => {
  server = http.createServer((req, res) => {
    req.resume();
    hits.set(req.url ?? '', (hits.get(req.url ?? '') ?? 0) + 1);
    res.statusCode = 503;
    res.end('busy');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  mesh = createMesh({
    env: {},
    configSource: createConfigSource('routes', {
      // The service's own policy retries a 503 (gateway-error) twice.
      services: {
        api: { endpoints: `127.0.0.1:${port}`, retry: { maxRetries: 2, backoff: { base: '1ms' } } },
      },
      configEntries: [
        { Kind: 'service-defaults', Name: 'api', Protocol: 'http' },
        {
          Kind: 'service-router',
          Name: 'api',
          Routes: [
            route('/only-count', { NumRetries: 3 }),
            route('/grpc-only', { NumRetries: 2, RetryOn: ['unavailable'] }),
            route('/5xx', { NumRetries: 3, RetryOn: ['5xx'] }),
            route('/codes', { NumRetries: 1, RetryOnStatusCodes: [503] }),
          ],
        },
      ],
    }),
  });
});
afterAll(async () => {
  await mesh.close();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

describe("a route's retries (probe29)", () => {
  it.each([
    ['/only-count', 1],
    ['/grpc-only', 1],
    ['/5xx', 4],
    ['/codes', 2],
    ['/service', 3],
  ])('%s: sent %i times', async (path, sent) => {
    const r = await mesh.request(`http://api${path}`);
    await r.body.dump();
    expect(r.statusCode).toBe(503);
    expect(hits.get(path)).toBe(sent);
  });
});
