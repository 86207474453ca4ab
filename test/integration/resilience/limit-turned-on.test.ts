/**
 * A concurrency limit or a breaker's `maxRequests` that a config reload turns on counts the calls
 * already in flight, as a limit changed in place does (docs/configuration.md: limits are checked
 * against live counters). Before, a limit built anew started at 0: under `max: 1`, a fourth call
 * was let through next to three in flight.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createConfigSource, createMesh, type Mesh, type MeshEvent } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer, until } from '../../support/http-server.js';

let server: TestServer;
const held: ServerResponse[] = [];
/** For each request, how many others the server still held when it arrived. */
const alongside: number[] = [];
beforeAll(async () => {
  server = await startServer('api', (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    alongside.push(held.length);
    held.push(res);
  });
});
afterAll(async () => {
  await server.close();
});

/** Answer every request the server holds. */
const releaseAll = (): void => {
  for (const res of held.splice(0)) res.end('ok');
};

const applied = (mesh: Mesh): Promise<void> =>
  new Promise((resolve) => {
    const sub = mesh.onEvent((e: MeshEvent) => {
      if (e.type === 'config_applied') {
        sub.dispose();
        resolve();
      }
    });
  });

describe('a limit turned on by a reload counts the calls in flight', () => {
  const cases = [
    ['concurrencyLimit', { concurrencyLimit: { max: 1 } }, 'MESH_CONCURRENCY_LIMIT'],
    ['circuitBreaker.maxRequests', { circuitBreaker: { maxRequests: 1 } }, 'MESH_CIRCUIT_OPEN'],
  ] as const;

  it.each(cases)('%s: a fourth call next to three in flight is refused', async (_name, limit, code) => {
    const source = createConfigSource('kv', {
      services: { api: { endpoints: server.address, circuitBreaker: false, retry: false } },
    });
    const mesh = createMesh({ env: {}, configSource: source });
    try {
      const calls = [1, 2, 3].map(() => mesh.request('http://api/'));
      await until(() => held.length === 3, 'three requests at the server');
      const done = applied(mesh);
      source.update({
        services: { api: { endpoints: server.address, retry: false, circuitBreaker: false, ...limit } },
      });
      await done;
      await expect(mesh.request('http://api/')).rejects.toMatchObject({ code });
      expect(held.length).toBe(3);
      releaseAll();
      for (const c of calls) expect(await (await c).body.text()).toBe('ok');
      // Once they ended, the limit has its room back.
      const next = mesh.request('http://api/');
      await until(() => held.length === 1, 'the next request at the server');
      releaseAll();
      expect(await (await next).body.text()).toBe('ok');
    } finally {
      releaseAll();
      await mesh.close();
    }
  });

  it('a call queued behind the calls in flight is served when they end', async () => {
    const source = createConfigSource('kv', {
      services: { api: { endpoints: server.address, retry: false } },
    });
    const mesh = createMesh({ env: {}, configSource: source });
    try {
      // Three connections open and idle: a call let through would be sent at once.
      const warm = [1, 2, 3].map(() => mesh.request('http://api/'));
      await until(() => held.length === 3, 'three requests at the server');
      releaseAll();
      for (const c of warm) await (await c).body.text();
      const calls = [1, 2].map(() => mesh.request('http://api/'));
      await until(() => held.length === 2, 'two requests at the server');
      const done = applied(mesh);
      source.update({
        services: {
          api: { endpoints: server.address, retry: false, concurrencyLimit: { max: 1, queue: 5 } },
        },
      });
      await done;
      alongside.length = 0;
      const queued = mesh.request('http://api/');
      // Both earlier calls hold the one slot: the queued call is sent once they have ended.
      held.shift()?.end('ok');
      expect(await (await calls[0]!).body.text()).toBe('ok');
      held.shift()?.end('ok');
      expect(await (await calls[1]!).body.text()).toBe('ok');
      await until(() => alongside.length === 1, 'the queued request at the server');
      expect(alongside).toEqual([0]);
      releaseAll();
      expect(await (await queued).body.text()).toBe('ok');
    } finally {
      releaseAll();
      await mesh.close();
    }
  });
});
