/**
 * A streamed request body goes out with the framing undici gives it, with the retry stage in
 * force: undici sends a `content-length` for a byte stream that has ended by the time the request
 * is written (`util.bodyLength`), `transfer-encoding: chunked` otherwise. The retry stage reads the
 * caller's stream through its replay recorder; that must not turn a known length into chunked
 * framing — not for a PUT it may replay, not for a POST it never will, not for `undici.pipeline()`,
 * and not for the attempt that replays the body or is sent after a refused connect.
 */
import { PassThrough, Readable } from 'node:stream';
import { createMesh, type Mesh } from 'proxyless';
import { Agent, pipeline, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

interface Seen {
  length: string | null;
  chunked: boolean;
  body: string;
}

/** A byte stream whose data is pushed and whose end is already there. */
function ended(text: string): Readable {
  const r = new Readable({ read() {} });
  r.push(text);
  r.push(null);
  return r;
}

describe('retry over a real backend: the framing of a streamed request body', () => {
  let server: TestServer;
  let deadAddress: string;
  const seen: Seen[] = [];
  /** Requests answered 503 before the server answers 200. */
  let failing = 0;
  let mesh: Mesh | undefined;
  let agent: Agent | undefined;

  beforeAll(async () => {
    server = await startServer('bodies', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({
          length: req.headers['content-length'] ?? null,
          chunked: req.headers['transfer-encoding'] === 'chunked',
          body: Buffer.concat(chunks).toString(),
        });
        const fail = failing > 0;
        if (fail) failing--;
        res.writeHead(fail ? 503 : 200, { 'content-type': 'text/plain' });
        res.end(fail ? 'retry me' : 'ok');
      });
    });
    const dead = await startServer('dead');
    deadAddress = dead.address;
    await dead.close(); // connections to it are refused
  });
  afterAll(() => server.close());
  afterEach(async () => {
    await mesh?.close();
    await agent?.close();
    mesh = undefined;
    agent = undefined;
    seen.length = 0;
    failing = 0;
  });

  function meshTo(endpoints: string): Mesh {
    return createMesh({
      env: {},
      services: {
        api: {
          endpoints,
          retry: { maxRetries: 2, backoff: { base: '1ms', max: '5ms' } },
          circuitBreaker: false,
          outlierDetection: false,
        },
      },
    });
  }

  /** What the server saw of one call to `url` over `dispatcher`. */
  async function sent(dispatcher: Agent | Mesh['dispatcher'], url: string, opts: object): Promise<Seen> {
    seen.length = 0;
    const res = await request(url, { dispatcher, ...opts });
    await res.body.dump();
    expect(res.statusCode).toBe(200);
    expect(seen).toHaveLength(1);
    return seen[0]!;
  }

  for (const method of ['PUT', 'POST'] as const) {
    it(`${method} with an ended Readable: content-length as undici sends it, not chunked`, async () => {
      mesh = meshTo(server.address);
      agent = new Agent();
      const direct = await sent(agent, `http://${server.address}/`, { method, body: ended('hello') });
      expect(direct).toEqual({ length: '5', chunked: false, body: 'hello' });
      // undici over the mesh's dispatcher, and the mesh's own API.
      expect(await sent(mesh.dispatcher, 'http://api/', { method, body: ended('hello') })).toEqual(direct);
      seen.length = 0;
      const res = await mesh.request('http://api/', { method, body: ended('hello') });
      await res.body.dump();
      expect(seen).toEqual([direct]);
    });
  }

  it('a stream still open when the request is written stays chunked, as with undici', async () => {
    mesh = meshTo(server.address);
    agent = new Agent();
    const open = () => {
      const r = new PassThrough();
      setTimeout(() => r.end('later'), 20);
      return r;
    };
    const direct = await sent(agent, `http://${server.address}/`, { method: 'PUT', body: open() });
    expect(direct).toEqual({ length: null, chunked: true, body: 'later' });
    expect(await sent(mesh.dispatcher, 'http://api/', { method: 'PUT', body: open() })).toEqual(direct);
  });

  it('undici.pipeline() over mesh.dispatcher frames the piped body as undici does', async () => {
    mesh = meshTo(server.address);
    agent = new Agent();
    const piped = async (dispatcher: Agent | Mesh['dispatcher'], url: string): Promise<Seen[]> => {
      seen.length = 0;
      const p = pipeline(url, { dispatcher, method: 'POST' }, ({ body }) => body);
      p.resume();
      const done = new Promise<void>((resolve, reject) => {
        p.on('end', resolve).on('error', reject);
      });
      p.end('piped body');
      await done;
      return [...seen];
    };
    const direct = await piped(agent, `http://${server.address}/`);
    expect(direct).toEqual([{ length: '10', chunked: false, body: 'piped body' }]);
    expect(await piped(mesh.dispatcher, 'http://api/')).toEqual(direct);
  });

  it('a retried PUT replays the body with the same content-length', async () => {
    mesh = meshTo(server.address);
    failing = 1;
    const res = await mesh.request('http://api/', { method: 'PUT', body: ended('hello') });
    await res.body.dump();
    expect(res.statusCode).toBe(200);
    expect(seen).toEqual([
      { length: '5', chunked: false, body: 'hello' },
      { length: '5', chunked: false, body: 'hello' },
    ]);
  });

  it('a POST sent on after a refused connect keeps its content-length', async () => {
    mesh = meshTo(`${deadAddress},${server.address}`);
    const refused: string[] = [];
    mesh.onEvent((e) => {
      if (e.type === 'balancer' && e.event.type === 'connectivity' && e.event.to === 'TRANSIENT_FAILURE')
        refused.push(e.event.endpoint);
    });
    // Round robin sends one of the first two calls to the refusing endpoint first.
    for (let i = 0; i < 2; i++) {
      const res = await mesh.request('http://api/', { method: 'POST', body: ended(`call ${i}`) });
      await res.body.dump();
      expect(res.statusCode).toBe(200);
    }
    expect(seen).toEqual([
      { length: '6', chunked: false, body: 'call 0' },
      { length: '6', chunked: false, body: 'call 1' },
    ]);
    expect(refused).toContain(deadAddress);
  });
});
