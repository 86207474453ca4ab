/**
 * Differential: requests undici refuses before sending (an upgrade its `request()` handler cannot
 * take, headers that are not an object or an array, no method, an origin with a path) are refused
 * by the mesh with undici's error class, code and message; what undici sends as it is (a header
 * named `__proto__`) the mesh sends too; and `request()` results carry undici's `context`.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createMesh } from 'proxyless';
import { Agent, type Dispatcher, request as undiciRequest, upgrade as undiciUpgrade } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { differences, everyWay, type Fixture, pairs, same, seeRequest, startFixture } from './support.js';

let fx: Fixture;
beforeAll(async () => {
  fx = await startFixture();
});
afterAll(() => fx.close());

/** How a call settled; an error with its message, which is part of what undici promises here. */
async function outcome<T>(fn: () => Promise<T>): Promise<{ ok: T } | { error: Record<string, unknown> }> {
  try {
    return { ok: await fn() };
  } catch (e) {
    const err = e as Error & { code?: unknown };
    return { error: { class: err.constructor.name, code: err.code, message: err.message } };
  }
}

/** `p`, or a `{ hang }` value when it has not settled after `ms`: a hang is a result, not a stuck test. */
function orHang<T>(p: Promise<T>, ms = 3000): Promise<T | { hang: number }> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<{ hang: number }>((resolve) => {
    timer = setTimeout(() => resolve({ hang: ms }), ms);
  });
  return Promise.race([p, hang]).finally(() => clearTimeout(timer));
}

const invalidArg = (message: string) => ({
  error: { class: 'InvalidArgumentError', code: 'UND_ERR_INVALID_ARG', message },
});

describe('differential: inputs undici refuses before sending', () => {
  for (const [name, headers] of [
    ['a string', 'x-a: 1'],
    ['a number', 5],
  ] as const) {
    it(`headers that are ${name}`, async () => {
      const r = await everyWay(fx, (w) =>
        outcome(async () => seeRequest(await w.request(`${w.base}/echo`, { headers }))),
      );
      expect(r.direct).toEqual(invalidArg('headers must be an object or an array'));
      expect(pairs(r), differences(r)).toEqual(same(r));
    });
  }

  // Several options wrong at once: refused for the one undici names first (probe26 fuzz defect 2).
  for (const [name, options, message] of [
    [
      'a bad method token and an odd header array',
      { method: 'GE T', headers: ['x-odd'] },
      'invalid request method',
    ],
    [
      'a bad typeOfService and an odd header array',
      { typeOfService: 300, headers: ['x-odd'] },
      'typeOfService must be an integer between 0 and 255',
    ],
    ['a bad reset and string headers', { reset: 'yes', headers: 'x-a: 1' }, 'invalid reset'],
    ['a bad bodyTimeout and string headers', { bodyTimeout: -1, headers: 'x-a: 1' }, 'invalid bodyTimeout'],
  ] as const) {
    it(`${name}: undici's first error`, async () => {
      const r = await everyWay(fx, (w) =>
        outcome(async () => seeRequest(await w.request(`${w.base}/echo`, options as never))),
      );
      expect(r.direct).toEqual(invalidArg(message));
      expect(pairs(r), differences(r)).toEqual(same(r));
    });
  }
  // undici's `Request` checks the body's type, then joins `query` to the path, then reads headers.
  for (const [name, path, options, error] of [
    [
      'a query with a path that has one, and string headers',
      '/echo?x=1',
      { query: { a: 1 }, headers: 'x-a: 1' },
      {
        class: 'Error',
        code: undefined,
        message: 'Query params cannot be passed when url already contains "?" or "#".',
      },
    ],
    [
      'a body of no body type, a query with a path that has one, and string headers',
      '/echo?x=1',
      { method: 'POST', body: 5, query: { a: 1 }, headers: 'x-a: 1' },
      {
        class: 'InvalidArgumentError',
        code: 'UND_ERR_INVALID_ARG',
        message: 'body must be a string, a Buffer, a Readable stream, an iterable, or an async iterable',
      },
    ],
  ] as const) {
    it(`${name}: undici's first error`, async () => {
      const r = await everyWay(fx, (w) =>
        outcome(async () => seeRequest(await w.request(`${w.base}${path}`, options as never))),
      );
      expect(r.direct).toEqual({ error });
      expect(pairs(r), differences(r)).toEqual(same(r));
    });
  }

  it('a header object from JSON.parse with an own "__proto__" key is sent, as undici sends it', async () => {
    const r = await everyWay(fx, (w) =>
      outcome(async () =>
        seeRequest(await w.request(`${w.base}/echo`, { headers: JSON.parse('{"__proto__":"x","x-a":"1"}') })),
      ),
    );
    expect(JSON.stringify(r.direct)).toContain('__proto__: x');
    expect(pairs(r), differences(r)).toEqual(same(r));
  });

  it('dispatcher.request without a method', async () => {
    const agent = new Agent();
    try {
      const opts = { path: '/echo' } as Dispatcher.RequestOptions;
      const direct = await outcome(() =>
        agent.request({ ...opts, origin: `http://127.0.0.1:${fx.port}` }).then((r) => r.statusCode),
      );
      const mesh = await outcome(() =>
        fx.mesh.dispatcher.request({ ...opts, origin: 'http://svc' }).then((r) => r.statusCode),
      );
      expect(direct).toEqual(invalidArg('method must be a string'));
      expect(mesh).toEqual(direct);
    } finally {
      await agent.close();
    }
  });

  it('an origin with a path, a query or a fragment (a bare one with "/" is taken)', async () => {
    const agent = new Agent();
    try {
      for (const tail of ['/base', '/?q=1', '#f', '/']) {
        const call = (d: Dispatcher, origin: string) =>
          outcome(async () => {
            const r = await d.request({ origin: `${origin}${tail}`, path: '/echo', method: 'GET' });
            await r.body.dump();
            return r.statusCode;
          });
        const direct = await call(agent, `http://127.0.0.1:${fx.port}`);
        const mesh = await call(fx.mesh.dispatcher, 'http://svc');
        expect(direct).toEqual(tail === '/' ? { ok: 200 } : invalidArg('invalid url'));
        expect([tail, mesh]).toEqual([tail, direct]);
      }
    } finally {
      await agent.close();
    }
  });
});

describe('differential: request() asking for an upgrade', () => {
  let port: number;
  let upgrades = 0;
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    req.resume();
    res.end('no upgrade');
  });
  // Switch protocols and keep the socket open, as a WebSocket server does.
  server.on('upgrade', (_req, socket: Socket) => {
    upgrades++;
    socket.on('error', () => undefined);
    socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n');
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const mesh = () => createMesh({ env: {}, services: { up: { endpoints: `127.0.0.1:${port}` } } });

  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('is refused at once with undici\'s "invalid onUpgrade method", and nothing is sent', async () => {
    const m = mesh();
    try {
      const direct = await orHang(
        outcome(() => undiciRequest(`http://127.0.0.1:${port}/u`, { upgrade: 'websocket' })),
      );
      const ways = {
        dispatcher: await orHang(
          outcome(() => undiciRequest('http://up/u', { upgrade: 'websocket', dispatcher: m.dispatcher })),
        ),
        mesh: await orHang(outcome(() => m.request('http://up/u', { upgrade: 'websocket' }))),
      };
      expect(direct).toEqual(invalidArg('invalid onUpgrade method'));
      expect(ways).toEqual({ dispatcher: direct, mesh: direct });
      expect(upgrades).toBe(0);
      expect(m.stats('up')?.inFlight).toBe(0);
    } finally {
      await m.destroy();
    }
  });

  it('undici.upgrade() over the mesh still switches protocols and ends the call', async () => {
    const m = mesh();
    try {
      const before = upgrades;
      const r = await orHang(
        undiciUpgrade('http://up/u', { dispatcher: m.dispatcher, protocol: 'websocket' }),
      );
      expect('socket' in r && r.headers.upgrade).toBe('websocket');
      if ('socket' in r) r.socket.destroy();
      expect(upgrades).toBe(before + 1);
      expect(m.stats('up')?.inFlight).toBe(0);
    } finally {
      await m.destroy();
    }
  });
});

describe('differential: request() result context', () => {
  it('is undefined, as undici gives, with the retry stage in force', async () => {
    // The fixture's mesh turns retries off; this one keeps the defaults (retry on).
    const m = createMesh({ env: {}, services: { ctx: { endpoints: `127.0.0.1:${fx.port}` } } });
    try {
      const direct = await undiciRequest(`http://127.0.0.1:${fx.port}/echo`);
      await direct.body.dump();
      const viaMesh = await m.request('http://ctx/echo');
      await viaMesh.body.dump();
      const viaDispatcher = await undiciRequest('http://ctx/echo', { dispatcher: m.dispatcher });
      await viaDispatcher.body.dump();
      expect(m.stats('ctx')?.roles).toContain('retry');
      const see = (r: Pick<Dispatcher.ResponseData, 'context'>) => ({
        has: 'context' in r,
        context: r.context,
      });
      expect({ mesh: see(viaMesh), dispatcher: see(viaDispatcher) }).toEqual({
        mesh: see(direct),
        dispatcher: see(direct),
      });
      expect(direct.context).toBeUndefined();
    } finally {
      await m.destroy();
    }
  });
});
