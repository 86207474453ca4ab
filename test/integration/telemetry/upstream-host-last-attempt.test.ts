/**
 * The access log's `upstream_host` is the endpoint the call was sent to last, as Envoy's
 * %UPSTREAM_HOST% is the final attempt's host — also when the later attempts failed to connect
 * (undici never starts their exchange). Before, it named the first endpoint tried.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMesh, MeshError } from 'proxyless';
import { describe, expect, it } from 'vitest';

/** A port on 127.0.0.1 that refuses connections (it was free a moment ago). */
async function refusedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as { port: number };
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

describe('upstream_host after connect failures', () => {
  it.each([2, 3])('names the last of %i refusing endpoints, as the error does', async (n) => {
    const ports = await Promise.all(Array.from({ length: n }, refusedPort));
    const log = join(mkdtempSync(join(tmpdir(), 'proxyless-upstream-host-')), 'access.log');
    const mesh = createMesh({
      env: {},
      telemetry: { accessLog: log },
      services: {
        api: {
          endpoints: ports.map((p) => `127.0.0.1:${p}`).join(','),
          retry: { maxRetries: n - 1, backoff: { base: '1ms', max: '1ms' } },
          outlierDetection: false,
          circuitBreaker: false,
        },
      },
    });
    let error: unknown;
    try {
      await mesh.request('http://api/');
    } catch (e) {
      error = e;
    } finally {
      await mesh.close();
    }
    expect(MeshError.is(error, 'MESH_CONNECT_FAILED')).toBe(true);
    const endpoint = (error as MeshError).details.endpoint;
    const [line] = readFileSync(log, 'utf8').trim().split('\n');
    const entry = JSON.parse(line!) as { upstream_host: string; attempts: number };
    expect(entry.attempts).toBe(n);
    expect(entry.upstream_host).toBe(endpoint);
  });
});
