/**
 * After a service's `service_removed`, no event of it follows until it is named again (issue #10,
 * probe of reloads): the `config_applied` of the version that removed it listed it in `changed`.
 */
import { createConfigSource, createMesh, type MeshEvent } from 'proxyless';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startServer('api');
});
afterAll(async () => {
  await server.close();
});

it('config_applied of the version that removes a service does not name it', async () => {
  const ep = server.address;
  const source = createConfigSource('kv', {
    services: { rm: { endpoints: ep, retry: { maxRetries: 3 }, timeout: '4s' }, keep: { endpoints: ep } },
  });
  const mesh = createMesh({ env: {}, configSource: source });
  try {
    for (const s of ['rm', 'keep']) await (await mesh.request(`http://${s}/`)).body.text();
    const events: MeshEvent[] = [];
    mesh.onEvent((e) => events.push(e));
    source.update({ services: { keep: { endpoints: ep, timeout: '2s' } } });
    const seen = events.map((e) =>
      e.type === 'config_applied'
        ? ['config_applied', [...e.changed.keys()], [...e.rebuilt.keys()]]
        : [e.type, 'service' in e ? e.service : undefined],
    );
    expect(seen).toContainEqual(['service_removed', 'rm']);
    expect(seen).toContainEqual(['config_applied', ['keep'], ['keep']]);
    expect(mesh.services()).toEqual(['keep']);
  } finally {
    await mesh.close();
  }
});
