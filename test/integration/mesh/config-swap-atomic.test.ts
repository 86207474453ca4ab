/**
 * A config version's endpoints are swapped in with its policy (a probe of reloads under traffic):
 * a call made right after `source.update()` returns, or in a `config_applied` listener, went to
 * the old version's endpoint under the new version's policy — an outcome neither version gives
 * (the endpoints reached the destinations a microtask after the policy and the event).
 */
import { createConfigSource, createMesh, type Mesh, type MeshEvent } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

let a: TestServer;
let b: TestServer;

beforeAll(async () => {
  [a, b] = [await startServer('a'), await startServer('b')];
});
afterAll(async () => {
  await a.close();
  await b.close();
});

async function served(mesh: Mesh): Promise<string> {
  const res = await mesh.request('http://api/');
  return res.body.text();
}

describe('a version is swapped in whole', () => {
  it('a call made right after update() and one made in config_applied see its endpoints and policy', async () => {
    const source = createConfigSource('kv', { services: { api: { endpoints: a.address } } });
    const mesh = createMesh({ env: {}, passthrough: false, configSource: source });
    try {
      expect(await served(mesh)).toBe('a');
      const inListener: Array<Promise<string>> = [];
      const endpointsAtEvent: string[][] = [];
      const off = mesh.onEvent((e: MeshEvent) => {
        if (e.type !== 'config_applied') return;
        endpointsAtEvent.push((mesh.endpoints('api')?.endpoints ?? []).map((x) => x.id));
        inListener.push(served(mesh));
      });
      source.update({ services: { api: { endpoints: b.address, retry: { maxRetries: 0 } } } });
      const afterUpdate = served(mesh);
      off.dispose();
      expect(mesh.config('api').resilience.retry?.maxRetries).toBe(0);
      expect(endpointsAtEvent).toEqual([[b.address]]);
      expect(await Promise.all(inListener)).toEqual(['b']);
      expect(await afterUpdate).toBe('b');
    } finally {
      await mesh.close();
    }
  });
});
