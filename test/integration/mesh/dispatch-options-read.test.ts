/**
 * The mesh reads dispatch and request options as undici does (probe9 defects 1–3): with property
 * gets, so inherited values and getters count (the mesh copied own keys only: a path it had
 * checked was gone, and an inherited PUT body was sent empty with a 200); `mesh.request(url,
 * null)` and a non-object `opts` answer as undici's `request` does.
 */
import type http from 'node:http';
import { createMesh, type Mesh } from 'proxyless';
import { errors } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

let server: TestServer;
let mesh: Mesh;

beforeAll(async () => {
  server = await startServer('api', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ line: `${req.method} ${req.url}`, body: Buffer.concat(chunks).toString() }));
    });
  });
  mesh = createMesh({ env: {}, passthrough: false, services: { api: { endpoints: server.address } } });
});
afterAll(async () => {
  await mesh.close();
  await server.close();
});

async function seen(r: { statusCode: number; body: { json(): Promise<unknown> } }): Promise<unknown> {
  expect(r.statusCode).toBe(200);
  return r.body.json();
}

describe('mesh.dispatcher reads options with gets, as undici does', () => {
  it('options inherited from a prototype: path, method and body go out', async () => {
    const opts = Object.create({ origin: 'http://api', path: '/inh?x=1', method: 'POST', body: 'ib' });
    expect(await seen(await mesh.dispatcher.request(opts))).toEqual({ line: 'POST /inh?x=1', body: 'ib' });
  });

  it('an inherited body of a PUT is sent, not dropped', async () => {
    const opts = Object.create({ body: 'inh-body' });
    Object.assign(opts, { origin: 'http://api', path: '/put', method: 'PUT' });
    expect(await seen(await mesh.dispatcher.request(opts))).toEqual({ line: 'PUT /put', body: 'inh-body' });
  });

  it('options that are getters of a class', async () => {
    class Options {
      readonly origin = 'http://api';
      get path(): string {
        return '/getter-path';
      }
      get method(): string {
        return 'PATCH';
      }
      get body(): string {
        return 'from-getter';
      }
    }
    expect(await seen(await mesh.dispatcher.request(new Options() as never))).toEqual({
      line: 'PATCH /getter-path',
      body: 'from-getter',
    });
  });
});

describe('mesh.request reads its arguments as undici.request does', () => {
  it('an inherited path is the request target', async () => {
    const r = await mesh.request('http://api', Object.create({ path: '/from-proto?q=1' }));
    expect(await seen(r)).toEqual({ line: 'GET /from-proto?q=1', body: '' });
  });

  it('null options are no options', async () => {
    expect(await seen(await mesh.request('http://api/n', null as never))).toEqual({
      line: 'GET /n',
      body: '',
    });
  });

  it("options that are not an object, or an inherited agent, are undici's InvalidArgumentError", async () => {
    await expect(mesh.request('http://api/x', 'abc' as never)).rejects.toBeInstanceOf(
      errors.InvalidArgumentError,
    );
    await expect(mesh.request('http://api/x', Object.create({ agent: {} }))).rejects.toThrow(
      /unsupported opts\.agent/,
    );
  });
});
