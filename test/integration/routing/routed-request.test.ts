/**
 * The routed call path (a service with a routing chain) against the plain one and undici (a
 * differential probe of `routing-stage.ts`):
 * - request headers went out rebuilt: names lower-cased, repeats regrouped, `null` values dropped,
 *   values undici refuses turned into text;
 * - a header with a number or `null` value failed every routed request with a `TypeError`;
 * - the `query` option was not seen by routes matching a query parameter;
 * - `NumRetries: 0` and `RetryOnConnectFailure: false` replaced the service's retry policy where
 *   Consul treats both as unset;
 * - a route's `ResponseHeaders` edited a 1xx's headers too.
 */
import http from 'node:http';
import { createConfigSource, createMesh, type Mesh } from 'proxyless';
import { Agent, type Dispatcher, request as undiciRequest } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

type Served = { version: string; path: string; raw: string[] };

let servers: Record<'v1' | 'v2', http.Server>;
let ports: Record<'v1' | 'v2', number>;
let agent: Agent;
const meshes: Mesh[] = [];
/** Statuses a v1 endpoint answers with next (then 200). */
let v1Script: number[] = [];
let v1Hits = 0;
/** Ends the response held by `/hold`. */
let release: () => void = () => undefined;

function server(version: 'v1' | 'v2'): http.Server {
  return http.createServer((req, res) => {
    if (version === 'v1') v1Hits++;
    const raw: string[] = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i]!;
      if (name.toLowerCase() !== 'host' && name.toLowerCase() !== 'connection')
        raw.push(name, req.rawHeaders[i + 1]!);
    }
    req.resume();
    req.on('end', () => {
      if (req.url === '/hold') {
        // Head and a first chunk now; the rest when the test releases it.
        res.writeHead(200);
        res.write('part');
        release = () => res.end('-rest');
        return;
      }
      if (req.url === '/hints') res.writeEarlyHints({ link: '</a.css>; rel=preload' });
      const status = version === 'v1' ? (v1Script.shift() ?? 200) : 200;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ version, path: req.url ?? '', raw } satisfies Served));
    });
  });
}

beforeAll(async () => {
  servers = { v1: server('v1'), v2: server('v2') };
  for (const s of Object.values(servers)) await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  ports = {
    v1: (servers.v1.address() as { port: number }).port,
    v2: (servers.v2.address() as { port: number }).port,
  };
  agent = new Agent();
});
afterAll(async () => {
  for (const m of meshes) await m.close();
  await agent.close();
  for (const s of Object.values(servers)) await new Promise<void>((r) => s.close(() => r()));
});

const endpoints = () => [
  { address: '127.0.0.1', port: ports.v1, metadata: { version: 'v1' } },
  { address: '127.0.0.1', port: ports.v2, metadata: { version: 'v2' } },
];
const resolver = {
  Kind: 'service-resolver',
  Name: 'api',
  DefaultSubset: 'v1',
  Subsets: { v1: { Filter: 'Service.Meta.version == "v1"' }, v2: { Filter: 'Service.Meta.version == "v2"' } },
} as const;

function routedMesh(routes: unknown[]): Mesh {
  const source = createConfigSource('kv', {
    services: {
      api: { endpoints: endpoints(), retry: { maxRetries: 2, backoff: { base: '1ms', max: '2ms' } } },
    },
    configEntries: [
      { Kind: 'service-defaults', Name: 'api', Protocol: 'http' },
      resolver,
      { Kind: 'service-router', Name: 'api', Routes: routes },
    ] as never,
  });
  const m = createMesh({ env: {}, passthrough: false, configSource: source });
  meshes.push(m);
  return m;
}

async function json(p: Promise<Dispatcher.ResponseData>): Promise<Served & { status: number }> {
  const res = await p;
  return { status: res.statusCode, ...((await res.body.json()) as Served) };
}

describe('a routed request goes out as the caller wrote it', () => {
  const HEADERS: Array<[string, unknown]> = [
    ['a record in mixed case', { 'X-Upper': 'A', 'x-lower': 'b', 'X-Multi': ['1', '2'] }],
    ['a flat array with repeats', ['X-B', '1', 'x-a', '2', 'x-b', '3']],
    ['a null value', { 'X-Null': null, 'x-ok': '1' }],
    ['a number value', { 'X-N': 5 }],
  ];
  for (const [what, headers] of HEADERS) {
    it(`${what}: the same header lines as undici sends`, async () => {
      const m = routedMesh([{ Match: { HTTP: { PathPrefix: '/' } }, Destination: { ServiceSubset: 'v1' } }]);
      const plain = await json(
        undiciRequest(`http://127.0.0.1:${ports.v1}/`, { dispatcher: agent, headers: headers as never }),
      );
      const routed = await json(m.request('http://api/', { headers: headers as never }));
      expect(routed.version).toBe('v1');
      expect(routed.raw).toEqual(plain.raw);
    });
  }

  it('a header undici refuses is refused as undici refuses it', async () => {
    const m = routedMesh([{ Match: { HTTP: { PathPrefix: '/' } }, Destination: { ServiceSubset: 'v1' } }]);
    const plain = undiciRequest(`http://127.0.0.1:${ports.v1}/`, {
      dispatcher: agent,
      headers: { 'x-obj': {} } as never,
    });
    const routed = m.request('http://api/', { headers: { 'x-obj': {} } as never });
    const [a, b] = await Promise.allSettled([plain, routed]);
    expect(a.status).toBe('rejected');
    expect(b.status).toBe('rejected');
    const err = (r: PromiseSettledResult<unknown>) => {
      const e = (r as PromiseRejectedResult).reason as Error & { code?: string };
      return [e.constructor.name, e.code, e.message];
    };
    expect(err(b)).toEqual(err(a));
  });

  it('a route matching a header sees a number value as its text', async () => {
    const m = routedMesh([
      {
        Match: { HTTP: { Header: [{ Name: 'x-canary', Exact: '1' }] } },
        Destination: { ServiceSubset: 'v2' },
      },
    ]);
    expect((await json(m.request('http://api/', { headers: { 'X-Canary': 1 } as never }))).version).toBe(
      'v2',
    );
  });

  it('a route matching a query parameter sees the query option', async () => {
    const m = routedMesh([
      {
        Match: { HTTP: { QueryParam: [{ Name: 'beta', Present: true }] } },
        Destination: { ServiceSubset: 'v2' },
      },
    ]);
    const viaOption = await json(m.request('http://api/x', { query: { beta: 1 } }));
    expect([viaOption.version, viaOption.path]).toEqual(['v2', '/x?beta=1']);
    expect((await json(m.request('http://api/x'))).version).toBe('v1');
  });
});

describe('route retry settings as Consul reads them (HasRetryFeatures)', () => {
  it('NumRetries 0 with RetryOn 5xx is one retry (0 is unset)', async () => {
    const m = routedMesh([
      {
        Match: { HTTP: { PathPrefix: '/' } },
        Destination: { ServiceSubset: 'v1', NumRetries: 0, RetryOn: ['5xx'] },
      },
    ]);
    v1Script = [500];
    v1Hits = 0;
    expect((await json(m.request('http://api/'))).status).toBe(200);
    expect(v1Hits).toBe(2);
  });

  it("RetryOnConnectFailure false alone keeps the service's retry policy", async () => {
    const m = routedMesh([
      {
        Match: { HTTP: { PathPrefix: '/' } },
        Destination: { ServiceSubset: 'v1', RetryOnConnectFailure: false },
      },
    ]);
    v1Script = [503, 503, 503];
    v1Hits = 0;
    const res = await m.request('http://api/');
    await res.body.dump();
    // The service's policy: two retries on a gateway error (a route layer made it one).
    expect(v1Hits).toBe(3);
    v1Script = [];
  });
});

describe("a route's ResponseHeaders", () => {
  it('edit the final response, not a 1xx', async () => {
    const m = routedMesh([
      {
        Match: { HTTP: { PathPrefix: '/' } },
        Destination: { ServiceSubset: 'v1', ResponseHeaders: { Add: { 'x-added': 'yes' } } },
      },
    ]);
    const infos: Array<Record<string, unknown>> = [];
    const res = await m.request('http://api/hints', {
      onInfo: ({ headers }: { headers: Record<string, unknown> }) => infos.push(headers),
    } as never);
    await res.body.dump();
    expect(res.headers['x-added']).toBe('yes');
    expect(infos).toEqual([{ link: '</a.css>; rel=preload' }]);
  });
});

describe('mesh.stats of a routed service', () => {
  it("counts a routed call in flight until its body ends, with its target's endpoint", async () => {
    const m = routedMesh([{ Match: { HTTP: { PathPrefix: '/' } }, Destination: { ServiceSubset: 'v1' } }]);
    const res = await m.request('http://api/hold');
    const during = m.stats('api');
    const id = 'v1.api.default.default.dc1';
    expect(during?.inFlight).toBe(1);
    expect(during?.targets?.[id]?.inFlight).toBe(1);
    expect(during?.targets?.[id]?.endpoints.map((e) => e.inflight)).toEqual([1]);
    release();
    expect(await res.body.text()).toBe('part-rest');
    const after = m.stats('api');
    expect(after?.inFlight).toBe(0);
    expect(after?.targets?.[id]?.endpoints.map((e) => [e.inflight, e.requests])).toEqual([[0, 1]]);
  });
});

describe('routing counts follow the chains in force (probe25 reload defect 2)', () => {
  const doc = (subset: 'v1' | 'v2' | undefined) => ({
    services: { api: { endpoints: endpoints() } },
    configEntries:
      subset === undefined
        ? []
        : [
            { Kind: 'service-defaults', Name: 'api', Protocol: 'http' },
            { ...resolver, DefaultSubset: subset },
          ],
  });

  it('a service no longer routed loses its counts; a target a chain no longer has goes', async () => {
    const source = createConfigSource('kv', doc('v1') as never);
    const m = createMesh({ env: {}, passthrough: false, configSource: source });
    meshes.push(m);
    const call = async () => (await m.request('http://api/x')).body.dump();
    await call();
    await call();
    expect(m.stats('api')?.routing?.targets).toEqual({ 'v1.api.default.default.dc1': 2 });
    // The chain now sends to v2: v1's count goes, v2's starts.
    source.update(doc('v2') as never);
    await call();
    expect(m.stats('api')?.routing?.targets).toEqual({ 'v2.api.default.default.dc1': 1 });
    // No routing any more: no counts; routed again: from zero.
    source.update(doc(undefined) as never);
    await call();
    expect(m.stats('api')?.routing).toBeUndefined();
    source.update(doc('v1') as never);
    await call();
    expect(m.stats('api')?.routing).toEqual({
      routes: { '-1': 1 },
      targets: { 'v1.api.default.default.dc1': 1 },
    });
    await source.close();
  });
});
