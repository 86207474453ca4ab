import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createMesh, type Mesh, MeshError } from 'proxyless';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

/**
 * A listening socket whose owner never accepts: a stopped process with a full accept queue. The
 * kernel drops further SYNs, so a connect to it neither succeeds nor fails — only a connect timeout
 * ends it (what a black-holed endpoint does).
 */
async function blackHole(): Promise<{ port: number; close(): void }> {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      '-e',
      "const s=require('net').createServer();s.listen({port:0,host:'127.0.0.1',backlog:1},()=>console.log(s.address().port))",
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
  const port = Number(String(chunk).trim());
  child.kill('SIGSTOP');
  // Linux queues backlog + 1 completed handshakes: fill the queue, then connects hang.
  const fillers: net.Socket[] = [];
  await new Promise<void>((resolve) => {
    let connected = 0;
    for (let i = 0; i < 4; i++) {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => undefined);
      s.on('connect', () => {
        if (++connected === 2) resolve();
      });
      fillers.push(s);
    }
  });
  return {
    port,
    close() {
      for (const s of fillers) s.destroy();
      child.kill('SIGKILL');
    },
  };
}

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
    expect(((head as MeshError).cause as { code?: string }).code).toBe('UND_ERR_HEADERS_TIMEOUT');

    const res = await mesh.request('http://slow/stall-body');
    expect(res.statusCode).toBe(200);
    const body = await res.body.text().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((body as { code?: string }).code).toMatch(/MESH_TIMEOUT|UND_ERR_BODY_TIMEOUT/);

    // Paths the route does not match keep undici's defaults.
    const ok = await mesh.request('http://slow/ok');
    expect(await ok.body.text()).toBe('ok');
  });
});
