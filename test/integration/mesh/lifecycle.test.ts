import { fileURLToPath } from 'node:url';
import { createMesh } from 'proxyless';
import { describe, expect, it } from 'vitest';
import { startServer, until } from '../../support/http-server.js';
import { runFixture as runFixtureScript } from '../../support/run-fixture.js';

describe('mesh lifecycle', () => {
  it('leaves nothing that keeps the process alive after close() (#3)', async () => {
    const { code, out, err } = await runFixture('close-exits.ts');
    expect({ code, err: err.slice(0, 2000) }).toEqual({ code: 0, err: '' });
    expect(out).toContain('closed');
  });

  it("gives Node's global fetch a working dispatcher back when none was set before install()", async () => {
    // Before, undo() deleted the global dispatcher; Node's bundled undici, first loaded while the
    // mesh was installed, then failed every global fetch with an AssertionError.
    const { code, out, err } = await runFixture('install-undo-fresh.ts');
    expect({ code, err: err.slice(0, 2000) }).toEqual({ code: 0, err: '' });
    expect(JSON.parse(out)).toEqual(['before: undefined', '200 ok', '200 ok', '200 ok', '200 ok']);
  });

  it.each([
    // After the backoff the retry finds the one endpoint in TRANSIENT_FAILURE: the pick refuses it,
    // and the caller gets the last real error (the connect failure), not the pick's.
    ['retry-backoff', 'MESH_CONNECT_FAILED'],
    ['fault-delay', '200 ok'],
  ])("a script awaiting a call is kept alive by the call's own timers (%s)", async (scenario, expected) => {
    // Background timers are unref'd; a timer the caller waits on (backoff, injected delay) is not.
    const { code, out, err } = await runFixture('await-call.ts', scenario);
    expect({ code, out: out.trim(), err: err.slice(0, 2000) }).toEqual({ code: 0, out: expected, err: '' });
  });

  it("loads undici's request API, connection classes and opossum at the first call, undici's fetch at the first mesh.fetch", async () => {
    const { code, out, err } = await runFixture('undici-parts.ts');
    expect({ code, err: err.slice(0, 2000) }).toEqual({ code: 0, err: '' });
    const none = {
      index: false,
      fetch: false,
      pool: false,
      client: false,
      agent: false,
      util: false,
      api: false,
      opossum: false,
    };
    expect(JSON.parse(out)).toEqual({
      created: none,
      viaRequest: 'ok',
      // A mesh service's pool (no pass-through call yet: no Agent).
      afterRequest: { ...none, pool: true, client: true, util: true, api: true, opossum: true },
      viaFetch: 'ok',
      afterFetch: {
        index: true,
        fetch: true,
        pool: true,
        client: true,
        agent: true,
        util: true,
        api: true,
        opossum: true,
      },
    });
  });

  it('close() is idempotent, and requests after it fail with MESH_CLOSED', async () => {
    const s = await startServer('x');
    try {
      const mesh = createMesh({ env: { MESH_ENDPOINTS_X: s.address } });
      expect(await (await mesh.request('http://x/')).body.text()).toBe('x');
      const a = mesh.close();
      const b = mesh.close();
      expect(a).toBe(b);
      await a;
      await expect(mesh.request('http://x/')).rejects.toMatchObject({ code: 'MESH_CLOSED' });
      // The client closed its sockets; the server sees each FIN a moment later.
      await until(() => s.connections.open === 0, 'server sees every connection closed');
    } finally {
      await s.close();
    }
  });

  it('supports await using', async () => {
    const s = await startServer('y');
    try {
      let closedWith = -1;
      {
        await using mesh = createMesh({ env: { MESH_ENDPOINTS_Y: s.address } });
        expect(await (await mesh.request('http://y/')).body.text()).toBe('y');
        closedWith = s.connections.open;
      }
      expect(closedWith).toBe(1);
      // The client closed its sockets; the server sees each FIN a moment later.
      await until(() => s.connections.open === 0, 'server sees every connection closed');
    } finally {
      await s.close();
    }
  });
});

/** Run `fixtures/<name>` in its own Node process ({@link runFixtureScript}). */
function runFixture(name: string, ...args: string[]) {
  return runFixtureScript(fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url)), args);
}
