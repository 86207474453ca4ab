/**
 * Request headers given as an iterable of pairs, against the same request through undici (a
 * property-based differential probe):
 * - a one-shot iterator (a generator) was read by the mesh's own checks and sent empty: the
 *   caller's `authorization` was dropped without an error;
 * - a `Map`'s values were re-serialised with `String()`: `null` was dropped (undici sends it
 *   empty), `['1', null]` sent `null`, and an object value was sent as `[object Object]` where
 *   undici refuses it.
 */
import type http from 'node:http';
import { createMesh, type Mesh } from 'proxyless';
import { Agent, type Dispatcher, request as undiciRequest } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

let server: TestServer;
let agent: Agent;
const meshes: Mesh[] = [];
let last: string[] = [];

beforeAll(async () => {
  server = await startServer('api', (req: http.IncomingMessage, res: http.ServerResponse) => {
    // The caller's headers as they arrived, without the connection's own.
    last = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i]!.toLowerCase();
      if (name !== 'host' && name !== 'connection') last.push(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
    }
    req.resume();
    res.end('ok');
  });
  agent = new Agent();
});
afterAll(async () => {
  for (const m of meshes) await m.close();
  await agent.close();
  await server.close();
});

function mesh(hostHeader: 'logical' | 'endpoint'): Mesh {
  const m = createMesh({
    env: {},
    passthrough: false,
    hostHeader,
    services: { api: { endpoints: server.address } },
  });
  meshes.push(m);
  return m;
}

type Seen = { sent: string[] } | { error: string };

async function send(call: () => Promise<Dispatcher.ResponseData>): Promise<Seen> {
  last = [];
  try {
    await (await call()).body.text();
    return { sent: last };
  } catch (error) {
    return { error: `${(error as Error).constructor.name}: ${(error as Error).message}` };
  }
}

const CASES: Array<[string, () => Iterable<unknown>]> = [
  [
    'a generator',
    function* () {
      yield ['x-a', '1'];
      yield ['Authorization', 'Bearer t'];
    },
  ],
  ['a Map with a null value', () => new Map<string, unknown>([['x-a', null]])],
  ['a Map with [value, null]', () => new Map<string, unknown>([['x-a', ['1', null]]])],
  ['a Map with an object value', () => new Map<string, unknown>([['x-a', { a: 1 }]])],
  ['a Map with a number value', () => new Map<string, unknown>([['x-n', 42]])],
];

describe('headers given as an iterable of pairs', () => {
  for (const hostHeader of ['logical', 'endpoint'] as const) {
    for (const [what, headers] of CASES) {
      it(`${what} (hostHeader: ${hostHeader}) is sent as undici sends it`, async () => {
        const plain = await send(() =>
          undiciRequest(`http://${server.address}/`, { dispatcher: agent, headers: headers() as never }),
        );
        const m = mesh(hostHeader);
        const viaMesh = await send(() => m.request('http://api/', { headers: headers() as never }));
        expect(viaMesh).toEqual(plain);
      });
    }
  }

  it('the generator case reaches the server with the authorization header', async () => {
    const m = mesh('logical');
    const seen = await send(() => m.request('http://api/', { headers: CASES[0]![1]() as never }));
    expect(seen).toEqual({ sent: ['x-a', '1', 'Authorization', 'Bearer t'] });
  });
});
