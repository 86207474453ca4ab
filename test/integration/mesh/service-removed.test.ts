import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createConfigSource, createMesh, type Mesh } from 'proxyless';
import { VirtualClock } from 'proxyless/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';
import { nextEvent } from '../../support/mesh-events.js';

/**
 * A service removed from the config document is no service any more (Envoy: a removed cluster is
 * "cluster not found", not an empty one): its calls in flight finish, and a new call is treated
 * like any name the mesh does not know.
 */
describe('a service removed from the config file', () => {
  let server: TestServer;
  let dir: string;
  let mesh: Mesh | undefined;
  const release: Array<() => void> = [];
  beforeAll(async () => {
    server = await startServer('api', (req, res) => {
      req.resume();
      if (req.url !== '/stream') {
        res.end('ok');
        return;
      }
      res.write('start ');
      release.push(() => res.end('end'));
    });
    dir = mkdtempSync(path.join(os.tmpdir(), 'mesh-removed-'));
  });
  afterAll(async () => {
    await mesh?.destroy();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('finishes its calls in flight, then answers like an unknown name', async () => {
    const file = path.join(dir, 'mesh.json');
    const write = (services: Record<string, unknown>) => writeFileSync(file, JSON.stringify({ services }));
    write({ api: { endpoints: server.address }, other: { endpoints: server.address } });
    mesh = createMesh({ env: { MESH_CONFIG_FILE: file, MESH_PASSTHROUGH: 'false' } });
    const m = mesh;
    const streaming = await m.request('http://api/stream');
    expect(m.services()).toContain('api');

    const removed = nextEvent(m, (e) => e.type === 'service_removed');
    const applied = nextEvent(m, (e) => e.type === 'config_applied');
    write({ other: { endpoints: server.address } });
    await applied;
    expect(await removed).toMatchObject({ service: 'api' });

    // Before: MESH_NO_ENDPOINTS until idle eviction (5 minutes), and mesh.services() still listed it.
    await expect(m.request('http://api/')).rejects.toMatchObject({ code: 'MESH_UNKNOWN_SERVICE' });
    expect(m.services()).not.toContain('api');
    expect(await (await m.request('http://other/')).body.text()).toBe('ok');
    // The call that was streaming when the service went away finishes.
    for (const end of release.splice(0)) end();
    expect(await streaming.body.text()).toBe('start end');

    // Back in the document: a mesh service again.
    const back = nextEvent(m, (e) => e.type === 'config_applied');
    write({ api: { endpoints: server.address }, other: { endpoints: server.address } });
    await back;
    expect(await (await m.request('http://api/')).body.text()).toBe('ok');
  });
});

/**
 * Calls a removed service's destination accepted that have not reached an endpoint yet — waiting
 * in its concurrency-limit queue, or in an injected delay — finish too, on the endpoints it had
 * (probe25 reload defect 1: they failed MESH_NO_ENDPOINTS, the source's empty set applied to them).
 */
describe('calls not yet sent when their service is removed', () => {
  let server: TestServer;
  const release: Array<() => void> = [];
  beforeAll(async () => {
    server = await startServer('slow', (req, res) => {
      req.resume();
      if (req.url === '/hold') release.push(() => res.end('held'));
      else res.end('ok');
    });
  });
  afterAll(async () => {
    await server.close();
  });

  it('a call queued in the concurrency limit is served', async () => {
    const source = createConfigSource('kv', {
      services: { extra: { endpoints: server.address, concurrencyLimit: { max: 1, queue: 10 } } },
    });
    const m = createMesh({ env: {}, configSource: source, passthrough: false });
    try {
      const holding = m.request('http://extra/hold');
      await until(() => release.length === 1);
      const queued = m.request('http://extra/queued');
      const removed = nextEvent(m, (e) => e.type === 'service_removed');
      source.update({ services: {} });
      await removed;
      for (const end of release.splice(0)) end();
      expect(await (await holding).body.text()).toBe('held');
      expect(await (await queued).body.text()).toBe('ok');
    } finally {
      await m.close();
      await source.close();
    }
  });

  it('a call in an injected delay is served', async () => {
    const clock = new VirtualClock();
    const source = createConfigSource('kv', {
      services: {
        extra: { endpoints: server.address, faultInjection: { delay: { percent: 100, duration: '300ms' } } },
      },
    });
    const m = createMesh({ env: {}, configSource: source, passthrough: false, clock });
    try {
      const delayed = m.request('http://extra/delayed');
      await until(() => clock.pendingTimers > 0);
      const removed = nextEvent(m, (e) => e.type === 'service_removed');
      source.update({ services: {} });
      await removed;
      await clock.advance(300);
      expect(await (await delayed).body.text()).toBe('ok');
    } finally {
      await m.close();
      await source.close();
    }
  });
});

/** Wait for a condition the test cannot await directly (a server saw the request, a timer is armed). */
async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((r) => setImmediate(r));
  expect(condition()).toBe(true);
}
