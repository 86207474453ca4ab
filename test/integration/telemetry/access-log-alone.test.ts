/**
 * The access log alone (metrics and tracing off, `MESH_METRICS=false MESH_TRACING=false`) still
 * counts a call's attempts and names the endpoint it was sent to last. Both come from the attempt
 * stage, which was left out of the stack when neither metrics nor tracing were on: every line said
 * `"attempts":0,"upstream_host":"-"` (probe31 envoy 1).
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMesh } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

let server: TestServer;
let answered = 0;
beforeAll(async () => {
  // 503, 503, then 200, for each call.
  server = await startServer('flaky', (_req, res) => {
    answered++;
    res.writeHead(answered % 3 === 0 ? 200 : 503, { 'content-type': 'text/plain' });
    res.end('x');
  });
});
afterAll(() => server.close());

describe('access log with metrics and tracing off', () => {
  for (const [name, settings] of [
    ['in code', { env: {}, telemetry: { metrics: { enabled: false }, tracing: { enabled: false } } }],
    ['from the environment', { env: { MESH_METRICS: 'false', MESH_TRACING: 'false' } }],
  ] as const) {
    it(`counts the attempts and names the upstream host (${name})`, async () => {
      answered = 0;
      const log = join(mkdtempSync(join(tmpdir(), 'proxyless-access-alone-')), 'access.log');
      const env = { ...settings.env, MESH_ACCESS_LOG: log };
      const mesh = createMesh({
        ...settings,
        env,
        services: {
          api: {
            endpoints: server.address,
            retry: { maxRetries: 2, retryOn: ['5xx'], backoff: { base: '1ms', max: '1ms' } },
            outlierDetection: false,
            circuitBreaker: false,
          },
        },
      });
      try {
        const res = await mesh.request('http://api/');
        await res.body.dump();
        expect(res.statusCode).toBe(200);
      } finally {
        await mesh.close();
      }
      const [line] = readFileSync(log, 'utf8').trim().split('\n');
      const entry = JSON.parse(line!) as { upstream_host: string; attempts: number; response_code: number };
      expect(entry).toMatchObject({ attempts: 3, upstream_host: server.address, response_code: 200 });
    });
  }
});
