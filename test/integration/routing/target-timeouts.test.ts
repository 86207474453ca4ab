import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createMesh, type Mesh, MeshError } from 'proxyless';
import { flushPromises, VirtualClock } from 'proxyless/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { blackHole } from '../../support/black-hole.js';

describe('service-resolver ConnectTimeout and route IdleTimeout are applied', () => {
  let dir: string;
  let file: string;
  let mesh: Mesh | undefined;
  let hole: { port: number; close(): void };
  let slow: http.Server;
  let slowPort: number;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'mesh-target-timeouts-'));
    file = path.join(dir, 'mesh.json');
    hole = await blackHole();
    // `/stall-head`: never answers; `/stall-body`: sends the head and one chunk, then nothing.
    slow = http.createServer((req, res) => {
      if (req.url === '/stall-body') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first');
      } else if (req.url === '/ok') {
        res.end('ok');
      }
    });
    slow.listen(0, '127.0.0.1');
    await once(slow, 'listening');
    slowPort = (slow.address() as AddressInfo).port;
  });
  afterEach(async () => {
    await mesh?.destroy();
    mesh = undefined;
  });
  afterAll(async () => {
    hole.close();
    slow.closeAllConnections();
    slow.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a connect to a black-holed endpoint ends at the resolver’s ConnectTimeout, not undici’s 10 s', async () => {
    writeFileSync(
      file,
      JSON.stringify({
        services: { db: { endpoints: `127.0.0.1:${hole.port}`, retry: false } },
        configEntries: [{ Kind: 'service-resolver', Name: 'db', ConnectTimeout: '300ms' }],
      }),
    );
    mesh = createMesh({ env: { MESH_CONFIG_FILE: file } });
    const started = performance.now();
    const error = await mesh.request('http://db/').then(
      () => undefined,
      (e: unknown) => e,
    );
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(MeshError);
    expect((error as MeshError).code).toBe('MESH_CONNECT_FAILED');
    expect(((error as MeshError).cause as { code?: string }).code).toBe('UND_ERR_CONNECT_TIMEOUT');
    // undici's own connect timeout is 10 s: anything under it means the resolver's was applied.
    expect(elapsed).toBeLessThan(5000);
  });

  it('a route’s IdleTimeout ends a request waiting for its head, and one whose body stalls', async () => {
    writeFileSync(
      file,
      JSON.stringify({
        services: { slow: { endpoints: `127.0.0.1:${slowPort}`, retry: false } },
        configEntries: [
          { Kind: 'service-defaults', Name: 'slow', Protocol: 'http' },
          {
            Kind: 'service-router',
            Name: 'slow',
            Routes: [
              {
                Match: { HTTP: { PathPrefix: '/stall' } },
                Destination: { Service: 'slow', IdleTimeout: '300ms' },
              },
            ],
          },
        ],
      }),
    );
    mesh = createMesh({ env: { MESH_CONFIG_FILE: file } });
    const head = await mesh.request('http://slow/stall-head').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((head as MeshError).code).toBe('MESH_TIMEOUT');
    expect((head as MeshError).details).toMatchObject({ limit: 'idle', phase: 'request' });

    const res = await mesh.request('http://slow/stall-body');
    expect(res.statusCode).toBe(200);
    const body = await res.body.text().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(body).toMatchObject({ code: 'MESH_TIMEOUT', details: { limit: 'idle', phase: 'response' } });

    // Paths the route does not match keep undici's defaults.
    const ok = await mesh.request('http://slow/ok');
    expect(await ok.body.text()).toBe('ok');
  });

  it('a route’s IdleTimeout is exact and spans the whole call: retries included, activity restarts it (probe29)', async () => {
    // On undici's fast timers a 300 ms limit fired after 0.5–1 s, per attempt: a head due at 700 ms
    // arrived, and retries multiplied the wait. The mesh's clock here is virtual.
    const held: http.ServerResponse[] = [];
    let requests = 0;
    const server = http.createServer((req, res) => {
      requests++;
      req.resume();
      held.push(res);
      if (req.url === '/drip') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('a');
      }
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    try {
      writeFileSync(
        file,
        JSON.stringify({
          // The default retry policy stays on: a 5xx or a reset would be retried, an idle call is not.
          services: { idle: { endpoints: `127.0.0.1:${port}` } },
          configEntries: [
            { Kind: 'service-defaults', Name: 'idle', Protocol: 'http' },
            {
              Kind: 'service-router',
              Name: 'idle',
              Routes: [{ Match: { HTTP: { PathPrefix: '/' } }, Destination: { IdleTimeout: '300ms' } }],
            },
          ],
        }),
      );
      const clock = new VirtualClock();
      mesh = createMesh({ env: { MESH_CONFIG_FILE: file }, clock });
      let settled: unknown;
      void mesh.request('http://idle/head').then(
        (r) => {
          settled = r.statusCode;
        },
        (e: unknown) => {
          settled = e;
        },
      );
      await expect.poll(() => requests).toBe(1);
      await clock.advance(299);
      await flushPromises();
      expect(settled).toBeUndefined();
      await clock.advance(1);
      await expect.poll(() => settled).toMatchObject({ code: 'MESH_TIMEOUT', details: { limit: 'idle' } });
      expect(requests).toBe(1);

      const res = await mesh.request('http://idle/drip');
      const chunks: string[] = [];
      let failed: unknown;
      res.body.on('data', (c: Buffer) => chunks.push(String(c)));
      res.body.on('error', (e) => {
        failed = e;
      });
      await expect.poll(() => chunks.join('')).toBe('a');
      await clock.advance(250);
      held.at(-1)!.write('b');
      await expect.poll(() => chunks.join('')).toBe('ab');
      // 250 ms after the second chunk: still within the limit, counted from that chunk.
      await clock.advance(250);
      await flushPromises();
      expect(failed).toBeUndefined();
      await clock.advance(50);
      await expect.poll(() => failed).toMatchObject({ code: 'MESH_TIMEOUT', details: { phase: 'response' } });
      expect(requests).toBe(2);
    } finally {
      for (const r of held) r.destroy();
      server.closeAllConnections();
      server.close();
    }
  });
});
