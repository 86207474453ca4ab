/**
 * `mesh.fetch` reads its arguments as fetch does (probe6 fetch defects 1, 2, 4, 5, 6): every member
 * of `init` with a property get (inherited ones, getters, a `Request` as `init`), an error while
 * reading them as a rejection, a `FormData` of Node's global fetch as a form, and it works without
 * its object and when it is the global `fetch` itself.
 */
import type http from 'node:http';
import { createMesh, type Mesh } from 'proxyless';
import { fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

let server: TestServer;
/** One mesh for the file: each test's calls are independent of the others'. */
let shared: Mesh | undefined;
const mesh = (): Mesh => {
  shared ??= createMesh({ env: {}, services: { api: { endpoints: server.address } } });
  return shared;
};

interface Echo {
  method: string;
  url: string;
  body: string;
  x: string | null;
  type: string | null;
}

/** The echo of entry-points.test.ts, with the request's content type. */
function echoRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const echo: Echo = {
      method: String(req.method),
      url: String(req.url),
      body: Buffer.concat(chunks).toString(),
      x: (req.headers['x-test'] as string | undefined) ?? null,
      type: req.headers['content-type'] ?? null,
    };
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(echo));
  });
}

beforeAll(async () => {
  server = await startServer('api', echoRequest);
});
afterAll(async () => {
  await shared?.close();
  await server.close();
});

async function echo(res: Response): Promise<Echo> {
  expect(res.status).toBe(200);
  return (await res.json()) as Echo;
}

describe('mesh.fetch reads init as fetch does', () => {
  it('inherited members of init are sent, as undici.fetch sends them', async () => {
    const init = Object.create({ method: 'DELETE', headers: { 'x-test': 'inherited' } }) as RequestInit;
    const direct = await echo(await undiciFetch(`http://${server.address}/x`, init as never));
    const meshed = await echo(await mesh().fetch('http://api/x', init));
    expect(direct).toMatchObject({ method: 'DELETE', x: 'inherited' });
    expect(meshed).toMatchObject({ method: 'DELETE', x: 'inherited' });
  });

  it('an init whose members are getters of its class (a Request as init) is read through them', async () => {
    class Init {
      get method(): string {
        return 'POST';
      }
      get body(): string {
        return 'from-getter';
      }
    }
    const meshed = await echo(await mesh().fetch('http://api/x', new Init() as RequestInit));
    expect(meshed).toMatchObject({ method: 'POST', body: 'from-getter' });
    const request = new Request('http://elsewhere/', { method: 'PUT', body: 'request-body' });
    const viaRequest = await echo(await mesh().fetch('http://api/y', request as RequestInit));
    expect(viaRequest).toMatchObject({ method: 'PUT', url: '/y' });
  });

  it('an init that is not an object is rejected with the TypeError undici gives', async () => {
    const m = mesh();
    const direct = await undiciFetch(`http://${server.address}/x`, 'abc' as never).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    const meshed = await m.fetch('http://api/x', 'abc' as never).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(direct).toBeInstanceOf(TypeError);
    expect(meshed).toBeInstanceOf(TypeError);
    expect(meshed?.message).toBe(direct?.message);
  });

  it('an error thrown while init is read rejects the returned promise; nothing is thrown', () => {
    const init = {
      get method(): string {
        throw new Error('boom-getter');
      },
    };
    let result: Promise<Response> | undefined;
    expect(() => {
      result = mesh().fetch('http://api/x', init as RequestInit);
    }).not.toThrow();
    return expect(result).rejects.toThrow('boom-getter');
  });
});

describe("mesh.fetch takes a FormData of Node's global fetch", () => {
  it('sends it as multipart/form-data with its parts, as the global fetch does', async () => {
    const form = new FormData();
    form.append('name', 'value-1');
    const meshed = await echo(await mesh().fetch('http://api/form', { method: 'POST', body: form }));
    expect(meshed.type).toMatch(/^multipart\/form-data; boundary=/);
    expect(meshed.body).toContain('name="name"');
    expect(meshed.body).toContain('value-1');
    expect(meshed.body).not.toContain('[object FormData]');
  });
});

describe('mesh.fetch and mesh.request without their object', () => {
  it('work when called as plain functions, as undici.fetch and undici.request do', async () => {
    const m = mesh();
    const { fetch, request } = m;
    expect((await echo(await fetch('http://api/unbound'))).url).toBe('/unbound');
    const r = await request('http://api/unbound-request');
    expect(r.statusCode).toBe(200);
    expect(((await r.body.json()) as Echo).url).toBe('/unbound-request');
  });

  it("as the global fetch, a Request of Node's fetch goes out once (no recursion)", async () => {
    const m = mesh();
    const saved = globalThis.fetch;
    globalThis.fetch = (input, init) => m.fetch(input as Request, init);
    try {
      const res = await fetch(new Request('http://api/global', { method: 'POST', body: 'once' }));
      expect(await echo(res)).toMatchObject({ method: 'POST', url: '/global', body: 'once' });
    } finally {
      globalThis.fetch = saved;
    }
  });
});
