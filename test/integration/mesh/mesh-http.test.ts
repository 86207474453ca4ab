import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { createMesh, type Mesh, type MeshEvent } from 'proxyless';
import { fetch as undiciFetch } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

let servers: TestServer[] = [];
const meshes: Mesh[] = [];

beforeAll(async () => {
  servers = await Promise.all(['a', 'b', 'c'].map((n) => startServer(n)));
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
});

function mesh(options: Parameters<typeof createMesh>[0]): Mesh {
  const m = createMesh(options);
  meshes.push(m);
  return m;
}

const list = (ss: TestServer[]): string => ss.map((s) => s.address).join(',');

function nextEvent(m: Mesh, pred: (e: MeshEvent) => boolean): Promise<MeshEvent> {
  return new Promise((resolve) => {
    const sub = m.onEvent((e) => {
      if (pred(e)) {
        sub.dispose();
        resolve(e);
      }
    });
  });
}

describe('createMesh over real HTTP servers', () => {
  it('spreads requests evenly over three endpoints with round_robin', async () => {
    const m = mesh({ env: { MESH_ENDPOINTS_GREETER: list(servers) } });
    const counts = new Map<string, number>();
    for (let i = 0; i < 90; i++) {
      const res = await m.fetch('http://greeter/');
      const who = await res.text();
      counts.set(who, (counts.get(who) ?? 0) + 1);
    }
    expect(Object.fromEntries(counts)).toEqual({ a: 30, b: 30, c: 30 });
  });

  it('keeps the logical name in the Host header', async () => {
    const echo = await startServer('echo', (req, res) => {
      res.end(req.headers.host);
    });
    try {
      const m = mesh({ env: { MESH_ENDPOINTS_PAYMENTS_API: echo.address } });
      const r = await m.request('http://payments-api/x');
      expect(await r.body.text()).toBe('payments-api');
      expect(r.endpoint).toBe(echo.address);
      const m2 = mesh({ env: { MESH_ENDPOINTS_PAYMENTS_API: echo.address, MESH_HOST_HEADER: 'endpoint' } });
      expect(await (await m2.request('http://payments-api/x')).body.text()).toBe(echo.address);
    } finally {
      await echo.close();
    }
  });

  it('fails fast with MESH_NO_ENDPOINTS for a known service with no endpoints, without a network attempt', async () => {
    const before = servers.reduce((n, s) => n + s.requests, 0);
    const m = mesh({ env: {}, services: { empty: { endpoints: [] } } });
    await expect(m.request('http://empty/')).rejects.toMatchObject({ code: 'MESH_NO_ENDPOINTS' });
    expect(servers.reduce((n, s) => n + s.requests, 0)).toBe(before);
  });

  it("takes an empty endpoint string ('' or blanks) as the empty list, in options and in the config file", async () => {
    // Before: refused, "expected a comma-separated list of host:port[=weight] with no empty items".
    const m = mesh({ env: {}, services: { empty: { endpoints: '' }, blank: { endpoints: '  ' } } });
    await expect(m.request('http://empty/')).rejects.toMatchObject({ code: 'MESH_NO_ENDPOINTS' });
    await expect(m.request('http://blank/')).rejects.toMatchObject({ code: 'MESH_NO_ENDPOINTS' });
    const dir = mkdtempSync(path.join(os.tmpdir(), 'proxyless-empty-endpoints-'));
    const file = path.join(dir, 'mesh.json');
    writeFileSync(file, JSON.stringify({ services: { payments: { endpoints: '' } } }));
    const fromFile = mesh({ env: { MESH_CONFIG_FILE: file } });
    await expect(fromFile.request('http://payments/')).rejects.toMatchObject({ code: 'MESH_NO_ENDPOINTS' });
    // A list item stays one endpoint: an empty one is still refused.
    expect(() => mesh({ env: {}, services: { bad: { endpoints: [''] } } })).toThrow(
      /services\.bad\.endpoints\[0\]/,
    );
  });

  it('passes unknown hosts through untouched, or rejects them with MESH_PASSTHROUGH=false', async () => {
    const m = mesh({ env: {} });
    const direct = await m.fetch(`http://127.0.0.1:${servers[0]!.port}/`);
    expect(await direct.text()).toBe('a');
    const strict = mesh({ env: { MESH_PASSTHROUGH: 'false' } });
    await expect(strict.request(`http://127.0.0.1:${servers[0]!.port}/`)).rejects.toMatchObject({
      code: 'MESH_UNKNOWN_SERVICE',
    });
    await expect(strict.fetch(`http://127.0.0.1:${servers[0]!.port}/`)).rejects.toThrow();
  });

  it('reaches an IPv6 loopback endpoint', async () => {
    const v6 = await startServer('six', undefined, '::1');
    try {
      const m = mesh({ env: { MESH_ENDPOINTS_SIX: `[::1]:${v6.port}` } });
      expect(await (await m.fetch('http://six/')).text()).toBe('six');
    } finally {
      await v6.close();
    }
  });

  it('serves undici.fetch and undici.request given mesh.dispatcher', async () => {
    const m = mesh({ env: { MESH_ENDPOINTS_GREETER: servers[1]!.address } });
    const res = await undiciFetch('http://greeter/', { dispatcher: m.dispatcher });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('b');
  });

  it("routes Node's global fetch through the mesh after install(), and the undo restores it", async () => {
    const m = mesh({ env: { MESH_ENDPOINTS_GREETER: servers[2]!.address } });
    await expect(fetch('http://greeter/')).rejects.toThrow();
    const undo = m.install();
    try {
      const res = await fetch('http://greeter/');
      expect(await res.text()).toBe('c');
    } finally {
      undo();
    }
    await expect(fetch('http://greeter/')).rejects.toThrow();
    // Pass-through hosts keep working while installed.
    const undo2 = m.install();
    try {
      expect(await (await fetch(`http://127.0.0.1:${servers[0]!.port}/`)).text()).toBe('a');
    } finally {
      undo2();
    }
  });

  it('moves traffic when the config file changes, and keeps the last good set on bad files', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mesh-file-'));
    const file = path.join(dir, 'mesh.json');
    const write = (text: string): void => {
      writeFileSync(`${file}.tmp`, text);
      renameSync(`${file}.tmp`, file);
    };
    const doc = (ss: TestServer[]): string =>
      JSON.stringify({
        services: { greeter: { endpoints: ss.map((s) => ({ address: s.host, port: s.port })) } },
      });
    try {
      write(doc(servers));
      const m = mesh({ env: { MESH_CONFIG_FILE: file } });
      const seen = async (n: number): Promise<Set<string>> => {
        const s = new Set<string>();
        for (let i = 0; i < n; i++) s.add(await (await m.fetch('http://greeter/')).text());
        return s;
      };
      expect(await seen(9)).toEqual(new Set(['a', 'b', 'c']));

      const changed = nextEvent(m, (e) => e.type === 'endpoints_changed' && e.set.endpoints.length === 1);
      write(doc([servers[0]!]));
      await changed;
      expect(await seen(6)).toEqual(new Set(['a']));

      const rejected = nextEvent(m, (e) => e.type === 'config_rejected');
      write('{"services": {"greeter": {"endpoints": [{"address": "127.0.0.1", "port": 0}]}}}');
      const err = (await rejected) as Extract<MeshEvent, { type: 'config_rejected' }>;
      expect(err.error.message).toMatch(/services\.greeter\.endpoints\[0\]\.port/);
      expect(await seen(4)).toEqual(new Set(['a']));

      const halfWritten = nextEvent(m, (e) => e.type === 'config_rejected');
      writeFileSync(file, doc(servers).slice(0, 25));
      await halfWritten;
      expect(await seen(4)).toEqual(new Set(['a']));
      expect(m.endpoints('greeter')?.stale).toBe(true);

      const back = nextEvent(m, (e) => e.type === 'endpoints_changed' && e.set.endpoints.length === 2);
      write(doc([servers[1]!, servers[2]!]));
      await back;
      expect(await seen(6)).toEqual(new Set(['b', 'c']));
      expect(m.endpoints('greeter')?.stale).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('streaming and cancellation', () => {
  const TEN_MB = 10 * 1024 * 1024;

  it('streams a 10 MB upload to the endpoint before the client has produced it all', async () => {
    let firstByteAt = -1;
    let received = 0;
    const sink = await startServer('sink', (req, res) => {
      req.on('data', (c: Buffer) => {
        if (firstByteAt < 0) firstByteAt = produced;
        received += c.length;
      });
      req.on('end', () => res.end(String(received)));
    });
    let produced = 0;
    const chunk = Buffer.alloc(64 * 1024, 7);
    const body = Readable.from(
      (async function* () {
        while (produced < TEN_MB) {
          produced += chunk.length;
          yield chunk;
        }
      })(),
    );
    try {
      const m = mesh({ env: { MESH_ENDPOINTS_SINK: sink.address } });
      const heap0 = process.memoryUsage().heapUsed;
      const r = await m.request('http://sink/upload', { method: 'PUT', body });
      expect(await r.body.text()).toBe(String(TEN_MB));
      expect(firstByteAt).toBeGreaterThan(0);
      expect(firstByteAt).toBeLessThan(TEN_MB / 2);
      expect(process.memoryUsage().heapUsed - heap0).toBeLessThan(TEN_MB);
    } finally {
      await sink.close();
    }
  });

  it('streams a 10 MB download to the caller while the endpoint is still writing', async () => {
    let written = 0;
    const source = await startServer('source', (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-length': TEN_MB });
      const chunk = Buffer.alloc(64 * 1024, 1);
      const pump = (): void => {
        while (written < TEN_MB) {
          written += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
    });
    try {
      const m = mesh({ env: { MESH_ENDPOINTS_SOURCE: source.address } });
      const res = await m.fetch('http://source/big');
      const reader = res.body!.getReader();
      const first = await reader.read();
      expect(first.done).toBe(false);
      const writtenAtFirstChunk = written;
      let total = first.value!.length;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        total += value.length;
      }
      expect(total).toBe(TEN_MB);
      expect(writtenAtFirstChunk).toBeLessThan(TEN_MB);
    } finally {
      await source.close();
    }
  });

  it('aborting mid-response frees the connection and the next request succeeds', async () => {
    let requests = 0;
    const slow = await startServer('slow', (req, res) => {
      req.resume();
      requests++;
      res.writeHead(200);
      if (requests === 1) {
        res.write('partial');
        return; // never ends: the caller must abort
      }
      res.end('done');
    });
    try {
      const m = mesh({ env: { MESH_ENDPOINTS_SLOW: slow.address, MESH_CONNECTIONS_PER_ENDPOINT: '1' } });
      const ac = new AbortController();
      const res = await m.fetch('http://slow/', { signal: ac.signal });
      const reader = res.body!.getReader();
      await reader.read();
      ac.abort();
      await expect(reader.read()).rejects.toThrow();
      // With one connection per endpoint, this only succeeds if the aborted one was released.
      const next = await m.request('http://slow/');
      expect(await next.body.text()).toBe('done');
    } finally {
      await slow.close();
    }
  });

  it('rejects with the signal’s reason, as undici does, when the caller aborts before the answer (#9.13)', async () => {
    const hang = await startServer('hang', (req) => {
      req.resume();
    });
    try {
      const m = mesh({ env: { MESH_ENDPOINTS_HANG: hang.address } });
      const ac = new AbortController();
      const p = m.request('http://hang/', { signal: ac.signal });
      ac.abort();
      await expect(p).rejects.toMatchObject({ name: 'AbortError' });
    } finally {
      await hang.close();
    }
  });
});
