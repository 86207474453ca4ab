/**
 * How `mesh.dispatcher` reads what a caller hands to undici's dispatch API, against real loopback
 * servers: the scheme of an origin (any case, as undici's URL parser reads it) for every name the
 * mesh owns, a `host` header whose value undici skips, and what an old-style handler is told.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { MeshError } from 'proxyless';
import { Agent, type Dispatcher, request as undiciRequest } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { Opened, rawServer, rejection, within } from './data-plane-support.js';

const opened = new Opened();
afterEach(() => opened.closeAll());

/** The TLS refusal: `MESH_CONFIG_INVALID` naming the origin as the caller wrote it. */
function expectTlsRefused(error: unknown, origin: string, service: string): void {
  expect(error).toBeInstanceOf(MeshError);
  expect((error as MeshError).code).toBe('MESH_CONFIG_INVALID');
  expect((error as MeshError).message).toContain(`"${origin}" asks for TLS to mesh service "${service}"`);
  expect((error as MeshError).details).toMatchObject({ field: 'origin', value: origin, service });
}

/** One request through `dispatch` with a controller-style handler: its status, or its error. */
function dispatchOnce(d: Dispatcher, opts: Dispatcher.DispatchOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    let status = 0;
    d.dispatch(opts, {
      onRequestStart() {},
      onResponseStart(_c, s) {
        status = s;
      },
      onResponseData() {},
      onResponseEnd() {
        resolve(status);
      },
      onResponseError(_c, e) {
        reject(e);
      },
    });
  });
}

/** Each face of undici's dispatcher API, for one origin: resolves with the status or rejects. */
function faces(d: Dispatcher, origin: string): [string, () => Promise<unknown>][] {
  const opts = {
    origin,
    path: '/secret',
    method: 'GET' as const,
    headers: { authorization: 'Bearer s3cr3t' },
  };
  return [
    ['dispatch', () => dispatchOnce(d, opts)],
    ['request', async () => (await d.request(opts)).body.text()],
    [
      'stream',
      () => d.stream(opts, () => new Writable({ write: (_chunk, _enc, cb) => cb() })).then((r) => r.opaque),
    ],
    [
      'pipeline',
      () =>
        new Promise((resolve, reject) => {
          const duplex = d.pipeline(opts, ({ body }) => body);
          duplex.on('error', reject);
          duplex.on('data', () => undefined);
          duplex.on('end', resolve);
          duplex.end();
        }),
    ],
  ];
}

describe('an https origin for a name the mesh owns is refused, whatever the scheme’s case', () => {
  it('never sends HTTPS://, Https://, hTTps://API or HTTPS://api:443 as plaintext, on every face of the dispatcher', async () => {
    const plain = await opened.server('plain');
    const m = opened.meshFor([plain]);
    const origins = [
      'https://api',
      'HTTPS://api',
      'Https://api',
      'hTTps://API',
      'HTTPS://api:443',
      ' HTTPS://api',
    ];
    for (const origin of origins) {
      for (const [face, call] of faces(m.dispatcher, origin)) {
        const error = await rejection(within(call(), 5000, `${face} ${origin}`));
        expectTlsRefused(error, origin, 'api');
      }
    }
    const viaUrl = await rejection(within(m.request('HTTPS://api/secret'), 5000, 'mesh.request HTTPS://'));
    expectTlsRefused(viaUrl, 'https://api', 'api');
    expect(plain.requests).toBe(0);
    // Plain http in any case is the mesh's as before.
    expect(
      await within(
        dispatchOnce(m.dispatcher, { origin: 'HTTP://api', path: '/', method: 'GET' }),
        5000,
        'HTTP://',
      ),
    ).toBe(200);
    expect(plain.requests).toBe(1);
  });

  it('refuses any scheme but http and https for a mesh name with undici’s own error, sending nothing', async () => {
    const plain = await opened.server('plain');
    const m = opened.meshFor([plain]);
    const agent = new Agent();
    opened.closers.push(() => agent.close());
    for (const origin of ['ftp://api', 'FTP://api', 'ws://api', 'file://api']) {
      const viaAgent = await rejection(
        within(dispatchOnce(agent, { origin, path: '/', method: 'GET' }), 5000, origin),
      );
      for (const [face, call] of faces(m.dispatcher, origin)) {
        const error = (await rejection(within(call(), 5000, `${face} ${origin}`))) as Error;
        expect(error.name, `${face} ${origin}`).toBe((viaAgent as Error).name);
        expect((error as { code?: string }).code, `${face} ${origin}`).toBe('UND_ERR_INVALID_ARG');
        expect(error.message, `${face} ${origin}`).toBe((viaAgent as Error).message);
      }
    }
    expect(plain.requests).toBe(0);
  });

  it('refuses https:// to a service known only as a routing chain instead of passing it through', async () => {
    const web = await opened.server('web');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mesh-tls-routed-'));
    opened.closers.push(async () => rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'mesh.json');
    writeFileSync(
      file,
      JSON.stringify({
        services: { web: { endpoints: web.address } },
        configEntries: [
          { Kind: 'service-defaults', Name: 'web', Protocol: 'http' },
          { Kind: 'service-defaults', Name: 'front', Protocol: 'http' },
          {
            Kind: 'service-router',
            Name: 'front',
            Routes: [{ Match: { HTTP: { PathPrefix: '/' } }, Destination: { Service: 'web' } }],
          },
        ],
      }),
    );
    const passedThrough: string[] = [];
    const agent = new Agent();
    opened.closers.push(() => agent.close());
    const passthroughDispatcher = agent.compose((dispatch) => (opts, handler) => {
      passedThrough.push(String(opts.origin));
      return dispatch(opts, handler);
    });
    const m = opened.mesh({ env: {}, configFile: file, passthroughDispatcher });
    expect(m.routes('front')).toBeDefined();

    const routed = await within(m.request('http://front/a'), 5000, 'http://front');
    expect(await routed.body.text()).toBe('web');
    expect(web.requests).toBe(1);

    for (const origin of ['https://front', 'HTTPS://front', 'Https://FRONT']) {
      for (const [face, call] of faces(m.dispatcher, origin)) {
        const error = await rejection(within(call(), 5000, `${face} ${origin}`));
        expectTlsRefused(error, origin, 'front');
      }
    }
    expectTlsRefused(
      await rejection(within(m.request('https://front/a'), 5000, 'mesh.request')),
      'https://front',
      'front',
    );
    // fetch wraps it, as every dispatch error: `TypeError('fetch failed')` with it as the cause.
    const fetched = await rejection(within(m.fetch('https://front/a'), 5000, 'mesh.fetch'));
    expectTlsRefused(fetched.cause, 'https://front', 'front');
    expect(passedThrough).toEqual([]);
    expect(web.requests).toBe(1);
  });
});

describe('a host header undici skips is no host header', () => {
  const hostLine = (head: string | undefined): string | undefined =>
    head
      ?.split('\r\n')
      .filter((l) => /^host:/i.test(l))
      .join(' | ');

  it('adds the logical Host when the caller’s host is undefined, in every header form', async () => {
    const raw = await rawServer();
    opened.closers.push(() => raw.close());
    const m = opened.meshFor([raw], { retry: false });
    const forms: [string, () => unknown][] = [
      ['{ host: undefined }', () => ({ host: undefined, 'x-a': '1' })],
      ['{ Host: undefined }', () => ({ Host: undefined, 'x-a': '1' })],
      ['Map', () => new Map([['host', undefined]])],
      ['flat array', () => ['x-a', '1', 'HOST', undefined]],
      ['pairs', () => [['Host', undefined]][Symbol.iterator]()],
    ];
    for (const [name, headers] of forms) {
      const r = await within(m.request('http://api/x', { headers: headers() as never }), 5000, name);
      await r.body.text();
      expect(hostLine(raw.heads.at(-1)), name).toBe('host: api');
    }
  });

  it('keeps a null host as undici sends it (empty), and an explicit host as written', async () => {
    const raw = await rawServer();
    opened.closers.push(() => raw.close());
    const m = opened.meshFor([raw], { retry: false });
    for (const headers of [{ host: null }, { Host: 'custom' }]) {
      const direct = await undiciRequest(`http://${raw.address}/x`, { headers: headers as never });
      await direct.body.text();
      const expected = hostLine(raw.heads.at(-1));
      const r = await within(m.request('http://api/x', { headers: headers as never }), 5000, 'mesh');
      await r.body.text();
      expect(hostLine(raw.heads.at(-1))).toBe(expected);
    }
  });
});

describe('an old-style dispatch handler (onConnect/onHeaders/onData/onComplete)', () => {
  function run(d: Dispatcher, origin: string): Promise<string[]> {
    return new Promise((resolve) => {
      const log: string[] = [];
      d.dispatch({ origin, path: '/', method: 'POST', body: 'abcdef' }, {
        onConnect() {
          log.push('connect');
        },
        onBodySent(chunk: unknown) {
          log.push(`bodySent ${String(chunk)}`);
        },
        onRequestSent() {
          log.push('requestSent');
        },
        onHeaders(status: number) {
          log.push(`headers ${status}`);
          return true;
        },
        onData(chunk: Buffer) {
          log.push(`data ${chunk}`);
          return true;
        },
        onComplete() {
          log.push('complete');
          resolve(log);
        },
        onError(e: Error) {
          log.push(`error ${e.message}`);
          resolve(log);
        },
      } as unknown as Dispatcher.DispatchHandler);
    });
  }

  it('gets every callback but onBodySent/onRequestSent, as through any interceptor undici composes (docs/architecture.md)', async () => {
    const s = await opened.server('api');
    const m = opened.meshFor([s], { retry: false });
    const agent = new Agent();
    opened.closers.push(() => agent.close());
    const composed = agent.compose((dispatch) => (opts, handler) => dispatch(opts, handler));

    const direct = await within(run(agent, `http://${s.address}`), 5000, 'Agent');
    expect(direct).toEqual([
      'connect',
      'bodySent abcdef',
      'requestSent',
      'headers 200',
      'data api',
      'complete',
    ]);
    const viaInterceptor = await within(run(composed, `http://${s.address}`), 5000, 'Agent.compose');
    const viaMesh = await within(run(m.dispatcher, 'http://api'), 5000, 'mesh.dispatcher');
    expect(viaMesh).toEqual(['connect', 'headers 200', 'data api', 'complete']);
    expect(viaMesh).toEqual(viaInterceptor);
  });
});
