import { createMesh } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

/**
 * What a closed mesh tells its callers: a new call after `close()` names the service it was for
 * (before: "the mesh is closed", no details), as the calls aborted in flight do; `destroy()` is
 * idempotent as `close()` is (the same promise); a `close({ timeout })` given a string quotes it.
 */
describe('mesh lifecycle details', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer('api');
  });
  afterAll(async () => {
    await s.close();
  });

  it('a call after close() fails MESH_CLOSED naming the service', async () => {
    const mesh = createMesh({ env: {}, services: { api: { endpoints: s.address } } });
    const closed = mesh.close();
    await expect(mesh.request('http://api/')).rejects.toMatchObject({
      code: 'MESH_CLOSED',
      message: expect.stringContaining('"api"'),
      details: { service: 'api' },
    });
    await closed;
    // Also a service never called before the close.
    const other = createMesh({ env: {}, services: { api: { endpoints: s.address } } });
    await other.close();
    await expect(other.request('http://API./')).rejects.toMatchObject({
      code: 'MESH_CLOSED',
      message: expect.stringContaining('"api"'),
      details: { service: 'api' },
    });
  });

  it('register() after close() fails MESH_CLOSED naming the service', async () => {
    const mesh = createMesh({ env: {} });
    await mesh.close();
    await expect(mesh.register({ service: 'api', address: '127.0.0.1', port: 8080 })).rejects.toMatchObject({
      code: 'MESH_CLOSED',
      message: 'the mesh is closed; it cannot register "api"',
      details: { service: 'api' },
    });
  });

  it('a pass-through call after close() fails MESH_CLOSED naming its host', async () => {
    const mesh = createMesh({ env: {} });
    await mesh.close();
    const error = await mesh.request(`http://${s.address}/`).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({
      code: 'MESH_CLOSED',
      message: expect.stringContaining(`"${s.host}"`),
      details: { host: s.host },
    });
  });

  it('destroy() returns the same promise each time', async () => {
    const mesh = createMesh({ env: {}, services: { api: { endpoints: s.address } } });
    const a = mesh.destroy();
    const b = mesh.destroy();
    const c = mesh.destroy(new Error('again'));
    expect(b).toBe(a);
    expect(c).toBe(a);
    await a;
    expect(mesh.destroy()).toBe(a);
  });

  it('destroy() during a graceful close returns the same promise each time', async () => {
    const mesh = createMesh({ env: {}, services: { api: { endpoints: s.address } } });
    const closing = mesh.close();
    const a = mesh.destroy();
    expect(mesh.destroy()).toBe(a);
    await Promise.all([closing, a]);
  });

  it('close({ timeout }) with a string quotes it in the error', async () => {
    const mesh = createMesh({ env: {} });
    try {
      const close = mesh.close as (options: { timeout: unknown }) => Promise<void>;
      await expect(close.call(mesh, { timeout: '100' })).rejects.toThrow(/got "100"$/);
      await expect(close.call(mesh, { timeout: Number.NaN })).rejects.toThrow(/got NaN$/);
      await expect(close.call(mesh, { timeout: -1 })).rejects.toThrow(/got -1$/);
    } finally {
      await mesh.close();
    }
  });
});
