/**
 * Differential, property-based: responses written byte by byte by a raw server — 1xx before the
 * final response, every status class, no-body statuses, Content-Length, chunked (with extensions
 * and trailers), close-delimited, a body shorter than its Content-Length, repeated and empty
 * header lines, custom reason phrases — read through undici direct and through the mesh
 * (`mesh.request`, undici over `mesh.dispatcher`, `mesh.fetch`), with the default policies and
 * with retries and a concurrency limit on. Each way must see what undici sees, and each exchange
 * must end: nothing left in flight once the caller has the whole response, and `close()` has
 * nothing to wait for. (This found a fetch call left in flight for ever by a 103 before a 304.)
 */
import net from 'node:net';
import fc from 'fast-check';
import { createMesh, type Mesh, type PolicyOptions } from 'proxyless';
import { fetch as undiciFetch, request as undiciRequest } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorShape } from './support.js';

interface Spec {
  info: number[];
  status: number;
  reason: string;
  headers: [string, string][];
  framing: 'cl' | 'cl-zero' | 'cl-short' | 'chunked' | 'chunked-trailers' | 'close';
  bodyLength: number;
}

const NO_BODY = new Set([204, 304]);

/** The bytes of the response `spec` describes, and whether the server closes after it. */
function bytesOf(spec: Spec, seed: string): { raw: Buffer; close: boolean } {
  let text = '';
  for (const code of spec.info) text += `HTTP/1.1 ${code} Info\r\nLink: </a.css>; rel=preload\r\n\r\n`;
  text += `HTTP/1.1 ${spec.status} ${spec.reason}\r\n`;
  for (const [k, v] of spec.headers) text += `${k}: ${v}\r\n`;
  const body = `body-${seed}-${'z'.repeat(spec.bodyLength)}`;
  if (NO_BODY.has(spec.status)) return { raw: Buffer.from(`${text}\r\n`, 'latin1'), close: false };
  switch (spec.framing) {
    case 'cl':
      text += `Content-Length: ${body.length}\r\n\r\n${body}`;
      return { raw: Buffer.from(text, 'latin1'), close: false };
    case 'cl-zero':
      return { raw: Buffer.from(`${text}Content-Length: 0\r\n\r\n`, 'latin1'), close: false };
    case 'cl-short':
      text += `Content-Length: ${body.length + 10}\r\nConnection: close\r\n\r\n${body}`;
      return { raw: Buffer.from(text, 'latin1'), close: true };
    case 'close':
      return { raw: Buffer.from(`${text}Connection: close\r\n\r\n${body}`, 'latin1'), close: true };
    default: {
      const a = body.slice(0, 5);
      const b = body.slice(5);
      const trailer = spec.framing === 'chunked-trailers' ? 'X-Checksum: abc\r\n' : '';
      text += `Transfer-Encoding: chunked\r\n${trailer ? 'Trailer: X-Checksum\r\n' : ''}\r\n`;
      text += `${a.length.toString(16)}\r\n${a}\r\n${b.length.toString(16)};ext=1\r\n${b}\r\n0\r\n${trailer}\r\n`;
      return { raw: Buffer.from(text, 'latin1'), close: false };
    }
  }
}

const specs: Map<string, Spec> = new Map();
let server: net.Server;
let port = 0;
const sockets = new Set<net.Socket>();

beforeAll(async () => {
  // Answers `GET /r/<key>` with the response registered under that key.
  server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buf = '';
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const key = /^[A-Z]+ \/r\/(\S+)/.exec(buf.slice(0, end))?.[1] ?? '';
        buf = buf.slice(end + 4);
        const spec = specs.get(key);
        if (spec === undefined) {
          socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
          return;
        }
        const { raw, close } = bytesOf(spec, key);
        if (close) {
          socket.end(raw);
          return;
        }
        socket.write(raw);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

const token = fc.constantFrom(
  'X-A',
  'x-a',
  'Set-Cookie',
  'set-cookie',
  'Vary',
  'Cache-Control',
  'x-Empty',
  'Link',
  // A record key with a meaning of its own: undici defines it as an own property.
  '__proto__',
);
const value = fc.constantFrom('1', 'two words', '', 'a,b', 'c=d; Path=/', 'caf\u00e9');
const spec: fc.Arbitrary<Spec> = fc.record({
  info: fc.array(fc.constantFrom(102, 103), { maxLength: 2 }),
  status: fc.constantFrom(200, 201, 204, 206, 299, 301, 304, 400, 404, 418, 429, 500, 502, 503, 504, 599),
  reason: fc.constantFrom('OK', 'Custom Reason', 'x', ''),
  headers: fc.array(fc.tuple(token, value), { maxLength: 5 }),
  framing: fc.constantFrom('cl', 'cl-zero', 'cl-short', 'chunked', 'chunked-trailers', 'close'),
  bodyLength: fc.integer({ min: 0, max: 2000 }),
});

type Seen = Record<string, unknown>;

async function viaRequest(
  call: () => Promise<{
    statusCode: number;
    statusText?: string;
    headers: unknown;
    trailers: unknown;
    body: { text(): Promise<string> };
  }>,
): Promise<Seen> {
  try {
    const r = await call();
    const body = await r.body.text();
    return { status: r.statusCode, text: r.statusText, headers: r.headers, trailers: r.trailers, body };
  } catch (error) {
    return { error: errorShape(error) };
  }
}

async function viaFetch(call: () => Promise<Response>): Promise<Seen> {
  try {
    const r = await call();
    const body = await r.text();
    return { status: r.status, text: r.statusText, headers: [...r.headers], body };
  } catch (error) {
    return { error: errorShape(error) };
  }
}

let n = 0;
/** One response through every way, on a mesh of its own (so a failure shrinks to its own cause). */
async function check(policy: PolicyOptions, s: Spec): Promise<void> {
  const mesh = createMesh({
    env: {},
    services: {
      api: { endpoints: `127.0.0.1:${port}`, circuitBreaker: false, outlierDetection: false, ...policy },
    },
  });
  try {
    await compare(mesh, s);
  } finally {
    await mesh.destroy();
  }
}

async function compare(mesh: Mesh, s: Spec): Promise<void> {
  const key = `k${++n}`;
  specs.set(key, s);
  const direct = `http://127.0.0.1:${port}/r/${key}`;
  const logical = `http://api/r/${key}`;
  const undiciSeen = await viaRequest(() => undiciRequest(direct));
  const fetchSeen = await viaFetch(
    () => undiciFetch(direct, { redirect: 'manual' }) as unknown as Promise<Response>,
  );
  const ways: [string, Seen, Seen][] = [
    ['mesh.request', await viaRequest(() => mesh.request(logical)), undiciSeen],
    [
      'undici.request over mesh.dispatcher',
      await viaRequest(() => undiciRequest(logical, { dispatcher: mesh.dispatcher })),
      undiciSeen,
    ],
    ['mesh.fetch', await viaFetch(() => mesh.fetch(logical, { redirect: 'manual' })), fetchSeen],
  ];
  for (const [way, seen, expected] of ways) expect(seen, `${way}: ${JSON.stringify(s)}`).toEqual(expected);
  // The caller has every response whole: no exchange may still be open.
  expect(mesh.stats('api')?.inFlight, JSON.stringify(s)).toBe(0);
  specs.delete(key);
}

describe('differential: raw responses through undici and through the mesh', () => {
  for (const [name, policy] of [
    ['the default policies (breaker and ejection off: the responses are mostly errors)', {}],
    [
      'retries on 5xx, resets and 429, with a concurrency limit of 2',
      {
        retry: {
          maxRetries: 2,
          backoff: { base: '1ms', max: '2ms' },
          retryOn: ['5xx', 'reset', 'retriable-status-codes'],
          retriableStatusCodes: [429],
        },
        concurrencyLimit: { max: 2 },
      },
    ],
  ] as [string, PolicyOptions][]) {
    it(`every way sees what undici sees, and every exchange ends: ${name}`, async () => {
      await fc.assert(
        fc.asyncProperty(spec, (s) => check(policy, s)),
        { numRuns: 150, seed: 44 },
      );
    }, 60_000);
  }
});
