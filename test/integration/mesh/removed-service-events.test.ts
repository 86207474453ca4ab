/**
 * After a service's `service_removed`, no event of it follows until it is named again (issue #10,
 * probe of reloads): the `config_applied` of the version that removed it listed it in `changed`.
 */
import { createConfigSource, createMesh, type MeshEvent } from 'proxyless';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';
import { versionResolver } from '../routing/scenario.js';

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

it('a routed service removed: one service_removed, and config_applied names none of its routing targets', async () => {
  const other = await startServer('api-v2');
  const v = (version: string) => {
    const s = version === 'v1' ? server : other;
    return { address: s.host, port: s.port, metadata: { version } };
  };
  const entries = [
    { Kind: 'service-defaults', Name: 'web', Protocol: 'http' },
    versionResolver(),
    {
      Kind: 'service-splitter',
      Name: 'web',
      Splits: [
        { Weight: 50, ServiceSubset: 'v1' },
        { Weight: 50, ServiceSubset: 'v2' },
      ],
    },
  ] as const;
  const source = createConfigSource('kv', {
    services: {
      web: { endpoints: [v('v1'), v('v2')], retry: { maxRetries: 1 } },
      keep: { endpoints: server.address },
    },
    configEntries: entries,
  });
  const mesh = createMesh({ env: {}, configSource: source, passthrough: false });
  try {
    // Routing targets built (which of the two a 50/50 split built does not matter below).
    for (let i = 0; i < 4; i++) await (await mesh.request('http://web/')).body.text();
    const events: MeshEvent[] = [];
    mesh.onEvent((e) => events.push(e));
    source.update({ services: { keep: { endpoints: server.address } } });
    const removed = events.filter((e) => e.type === 'service_removed').map((e) => e.service);
    expect(removed).toEqual(['web']);
    const applied = events.find((e) => e.type === 'config_applied');
    expect(applied?.type === 'config_applied' && [...applied.rebuilt.keys()]).toEqual([]);
  } finally {
    await mesh.close();
    await other.close();
  }
});
