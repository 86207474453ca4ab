/**
 * The differential harness: the same call runs three ways against one loopback server — undici
 * direct (`http://127.0.0.1:PORT`), undici over `mesh.dispatcher` and the mesh's own
 * `mesh.request` / `mesh.fetch` (`http://svc`, the service registered to that server) — and the
 * caller-visible results are compared. Allowed differences (docs): the logical `Host` and the
 * `x-mesh-deadline-ms` request header (filtered out by the echo route), and retries (turned off).
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import zlib from 'node:zlib';
import { createMesh, type Mesh } from 'proxyless';
import { type Dispatcher, fetch as undiciFetch, request as undiciRequest } from 'undici';

export type RequestFn = (url: string, options?: Record<string, unknown>) => Promise<Dispatcher.ResponseData>;
export type FetchFn = (url: string, init?: Record<string, unknown>) => Promise<Response>;

/** One way of calling the server. */
export interface Way {
  readonly name: 'direct' | 'dispatcher' | 'mesh';
  /** `http://127.0.0.1:PORT` or `http://svc`. */
  readonly base: string;
  readonly request: RequestFn;
  readonly fetch: FetchFn;
  /** The dispatcher under this way (the global agent for direct). */
  readonly dispatcher: Dispatcher | undefined;
}

/** Request headers the echo route leaves out: the documented differences. */
const DIFFERENT = new Set(['host', 'x-mesh-deadline-ms']);

/** A deterministic payload of `n` bytes. */
export function payload(n: number, seed = 7): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

export function digest(bytes: Uint8Array): string {
  return `${bytes.byteLength}:${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}`;
}

const ENCODED = payload(4096);
const encoders: Record<string, (b: Buffer) => Buffer> = {
  gzip: (b) => zlib.gzipSync(b),
  br: (b) => zlib.brotliCompressSync(b),
  deflate: (b) => zlib.deflateSync(b),
};

function route(req: http.IncomingMessage, res: http.ServerResponse): void {
  res.sendDate = false; // a Date header would differ between calls
  const url = new URL(req.url ?? '/', 'http://x');
  const p = url.pathname;
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('error', () => undefined);
  const after = (fn: () => void) => req.on('end', fn);
  if (p === '/echo' || p === '/redirect-target') {
    after(() => {
      let body = Buffer.concat(chunks);
      // A multipart boundary is random per request: written as BOUNDARY so bodies compare.
      const boundary = /boundary=([^;]+)/.exec(req.headers['content-type'] ?? '')?.[1];
      const unrandom = (v: string) => (boundary ? v.split(boundary).join('BOUNDARY') : v);
      if (boundary) body = Buffer.from(unrandom(body.toString('latin1')), 'latin1');
      const headers: string[] = [];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        const name = req.rawHeaders[i] as string;
        if (!DIFFERENT.has(name.toLowerCase()))
          headers.push(`${name}: ${unrandom(String(req.rawHeaders[i + 1]))}`);
      }
      // Multipart lengths differ with the boundary's length: compare the rest.
      if (boundary)
        for (let i = 0; i < headers.length; i++)
          headers[i] = headers[i]!.replace(/^(content-length): \d+$/i, '$1: N');
      const json = JSON.stringify({ method: req.method, url: req.url, headers, body: digest(body) });
      res.writeHead(200, 'Echoed', { 'content-type': 'application/json', 'X-Echo': '1' });
      res.end(req.method === 'HEAD' ? undefined : json);
    });
    return;
  }
  if (p === '/bytes') {
    const n = Number(url.searchParams.get('n') ?? '1000');
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(n) });
    after(() => res.end(payload(n)));
    return;
  }
  if (p === '/json') {
    after(() => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"a":[1,2,{"b":"c"}]}');
    });
    return;
  }
  if (p === '/trailers') {
    after(() => {
      res.writeHead(200, { trailer: 'x-checksum, x-count' });
      res.write('part one;');
      res.write('part two');
      res.addTrailers({ 'x-checksum': 'abc123', 'x-count': '2' });
      res.end();
    });
    return;
  }
  if (p.startsWith('/status/')) {
    const code = Number(p.slice('/status/'.length));
    after(() => {
      res.writeHead(code, { 'x-status': String(code), etag: '"v1"' });
      res.end(code === 204 || code === 304 ? undefined : `status ${code}`);
    });
    return;
  }
  if (p === '/conditional') {
    after(() => {
      if (req.headers['if-none-match'] === '"v1"') {
        res.writeHead(304, { etag: '"v1"' });
        res.end();
      } else {
        res.writeHead(200, { etag: '"v1"' });
        res.end('fresh');
      }
    });
    return;
  }
  if (p === '/hints') {
    after(() => {
      res.writeEarlyHints({ link: '</a.css>; rel=preload; as=style' });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('after hints');
    });
    return;
  }
  if (p.startsWith('/enc/')) {
    const enc = p.slice('/enc/'.length);
    after(() => {
      const encode = encoders[enc];
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-encoding': enc });
      res.end(encode ? encode(ENCODED) : ENCODED);
    });
    return;
  }
  if (p === '/redirect') {
    after(() => {
      res.writeHead(Number(url.searchParams.get('code') ?? '302'), { location: '/redirect-target?from=r' });
      res.end();
    });
    return;
  }
  if (p === '/slow-head') {
    const t = setTimeout(() => res.end('late'), 2000);
    res.on('close', () => clearTimeout(t));
    req.resume();
    return;
  }
  if (p === '/slow-body') {
    after(() => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first part;');
      const t = setTimeout(() => res.end('late part'), 2000);
      res.on('close', () => clearTimeout(t));
    });
    return;
  }
  if (p === '/close-early') {
    after(() => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('only ten b');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    return;
  }
  if (p === '/cl-long') {
    // More bytes than declared: written raw, as Node's server refuses to.
    after(() => {
      res.socket?.end('HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhelloworld');
    });
    return;
  }
  if (p === '/big') {
    const total = Number(url.searchParams.get('mb') ?? '1') * 1024 * 1024;
    const chunk = payload(64 * 1024);
    after(() => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
      let sent = 0;
      const pump = () => {
        bigAhead(false);
        while (sent < total) {
          sent += chunk.length;
          if (!res.write(chunk)) {
            // Held by back-pressure: the reader has all it can buffer.
            bigAhead(true);
            res.once('drain', pump);
            return;
          }
        }
        res.end();
        bigAhead(true);
      };
      pump();
    });
    return;
  }
  if (p === '/flaky') {
    // 500 for the first `fails` requests with this `key`, then 200: for retries layered on top.
    const key = url.searchParams.get('key') ?? '';
    const seen = (flaky.get(key) ?? 0) + 1;
    flaky.set(key, seen);
    after(() => {
      const failing = seen <= Number(url.searchParams.get('fails') ?? 1);
      res.writeHead(failing ? 500 : 200, { 'content-type': 'text/plain' });
      res.end(`${failing ? 'no' : 'ok'} ${seen}`);
    });
    return;
  }
  after(() => {
    res.writeHead(404);
    res.end('no such route');
  });
}

/** Requests seen per `/flaky` key. */
const flaky = new Map<string, number>();

/** The server every way calls, plus the mesh that names it `svc`. */
/** Whether a `/big` response's writer is ahead of its reader: held by back-pressure, or done. */
let ahead = false;
const aheadWaiters: (() => void)[] = [];
function bigAhead(value: boolean): void {
  ahead = value;
  if (value) for (const w of aheadWaiters.splice(0)) w();
}

/**
 * Resolves when the server writing a `/big` response is ahead of the reader: its writes are held
 * by back-pressure (every buffer on the way is full), or it has written everything. A real event,
 * for a reader that must read with the server ahead of it.
 */
export function serverAhead(): Promise<void> {
  return ahead ? Promise.resolve() : new Promise((resolve) => aheadWaiters.push(resolve));
}

export interface Fixture {
  readonly port: number;
  readonly mesh: Mesh;
  readonly ways: readonly Way[];
  close(): Promise<void>;
}

export async function startFixture(): Promise<Fixture> {
  const sockets = new Set<Socket>();
  const server = http.createServer(route);
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  // Retries are a documented difference: off, so a failed exchange is seen as undici sees it.
  const mesh = createMesh({
    env: {},
    services: { svc: { endpoints: `127.0.0.1:${port}`, retry: false, timeout: false } },
  });
  const d = mesh.dispatcher;
  const ways: Way[] = [
    {
      name: 'direct',
      base: `http://127.0.0.1:${port}`,
      request: (u, o) => undiciRequest(u, o as never),
      fetch: (u, i) => undiciFetch(u, i as never) as unknown as Promise<Response>,
      dispatcher: undefined,
    },
    {
      name: 'dispatcher',
      base: 'http://svc',
      request: (u, o) => undiciRequest(u, { ...o, dispatcher: d } as never),
      fetch: (u, i) => undiciFetch(u, { ...i, dispatcher: d } as never) as unknown as Promise<Response>,
      dispatcher: d,
    },
    {
      name: 'mesh',
      base: 'http://svc',
      request: (u, o) => mesh.request(u, o as never) as unknown as Promise<Dispatcher.ResponseData>,
      fetch: (u, i) => mesh.fetch(u, i as never),
      dispatcher: d,
    },
  ];
  return {
    port,
    mesh,
    ways,
    close: async () => {
      await mesh.destroy().catch(() => undefined);
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/**
 * The documented difference in errors (docs/architecture.md): a transport failure before the
 * response head reaches the caller as a MeshError (`MESH_CONNECT_FAILED`, `MESH_UPSTREAM_RESET`,
 * `MESH_TIMEOUT`) whose `cause` is undici's own error, so it is compared by that cause.
 */
const TRANSPORT_MESH_CODES = new Set(['MESH_CONNECT_FAILED', 'MESH_UPSTREAM_RESET', 'MESH_TIMEOUT']);

/** Caller-visible shape of an error: class, name, code and the same for its causes. */
export function errorShape(e: unknown, depth = 0): Record<string, unknown> | undefined {
  if (e === undefined || e === null || depth > 4) return undefined;
  if (typeof e !== 'object') return { value: String(e) };
  const err = e as { name?: unknown; code?: unknown; cause?: unknown };
  if (err.name === 'MeshError' && TRANSPORT_MESH_CODES.has(String(err.code)) && err.cause !== undefined) {
    return errorShape(err.cause, depth);
  }
  return {
    class: e.constructor?.name,
    name: err.name,
    code: err.code,
    cause: errorShape(err.cause, depth + 1),
  };
}

/** Run `fn` and describe how it settled. */
export async function settle<T>(fn: () => Promise<T>): Promise<{ ok: T } | { error: unknown }> {
  try {
    return { ok: await fn() };
  } catch (error) {
    return { error: errorShape(error) };
  }
}

const RESULT_FIELDS = ['body', 'context', 'headers', 'opaque', 'statusCode', 'statusText', 'trailers'];

/** What a caller sees of an `undici.request` result, body read with `read` (text by default). */
export async function seeRequest(
  r: Dispatcher.ResponseData,
  read: (body: Dispatcher.ResponseData['body']) => Promise<unknown> = (b) => b.text(),
): Promise<Record<string, unknown>> {
  const body = await read(r.body);
  return {
    statusCode: r.statusCode,
    statusText: (r as { statusText?: string }).statusText,
    headers: r.headers,
    body:
      body instanceof Uint8Array
        ? digest(body)
        : body instanceof ArrayBuffer
          ? digest(new Uint8Array(body))
          : body,
    trailers: r.trailers,
    // undici's result fields (the mesh may add its own, e.g. `endpoint`).
    fields: RESULT_FIELDS.filter((k) => k in r),
  };
}

/** What a caller sees of a fetch `Response`, with the way's base written as `BASE`. */
export async function seeResponse(res: Response, base: string): Promise<Record<string, unknown>> {
  const body = new Uint8Array(await res.arrayBuffer());
  return {
    status: res.status,
    statusText: res.statusText,
    headers: [...res.headers],
    body: digest(body),
    url: res.url.replace(base, 'BASE'),
    redirected: res.redirected,
    type: res.type,
  };
}

/**
 * Run the same scenario every way; returns `{ direct, dispatcher, mesh }`. A way that does not
 * settle within `hangMs` yields `{ hang: ms }` (so a hang is a difference, not a stuck test).
 */
export async function everyWay<T>(
  fixture: Fixture,
  run: (way: Way) => Promise<T>,
  hangMs = 3000,
): Promise<Record<string, T | { hang: number }>> {
  const out: Record<string, T | { hang: number }> = {};
  for (const way of fixture.ways) {
    let timer: NodeJS.Timeout | undefined;
    const hang = new Promise<{ hang: number }>((resolve) => {
      timer = setTimeout(() => resolve({ hang: hangMs }), hangMs);
    });
    out[way.name] = await Promise.race([run(way), hang]).finally(() => clearTimeout(timer));
  }
  return out;
}

/** The results of the mesh ways, each next to undici's, for one `toEqual`. */
export function pairs<T>(results: Record<string, T>): { dispatcher: T[]; mesh: T[] } {
  const direct = results.direct as T;
  return {
    dispatcher: [results.dispatcher as T, direct],
    mesh: [results.mesh as T, direct],
  };
}

/** Assert-friendly: `{ dispatcher: [x, x], mesh: [x, x] }` when every way matched undici. */
export function same<T>(results: Record<string, T>): { dispatcher: T[]; mesh: T[] } {
  const direct = results.direct as T;
  return { dispatcher: [direct, direct], mesh: [direct, direct] };
}

/** Paths where a value differs between `a` and `b` (`$.ok.statusText`), at most `max`. */
function diffPaths(a: unknown, b: unknown, at: string, out: string[], max: number): void {
  if (out.length >= max || Object.is(a, b)) return;
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) {
      diffPaths((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${at}.${k}`, out, max);
    }
    return;
  }
  out.push(`${at}: ${JSON.stringify(a)?.slice(0, 60)} ≠ undici ${JSON.stringify(b)?.slice(0, 60)}`);
}

/** One line per way naming where it differs from undici direct; empty when all match. */
export function differences(results: Record<string, unknown>): string {
  const lines: string[] = [];
  for (const [way, value] of Object.entries(results)) {
    if (way === 'direct') continue;
    const out: string[] = [];
    diffPaths(value, results.direct, '$', out, 6);
    if (out.length > 0) lines.push(`${way}: ${out.join('; ')}`);
  }
  return lines.join(' | ');
}
