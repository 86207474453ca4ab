/**
 * A `MESH_ENDPOINTS_*` service is one service in every spelling (`payments-v2`, `payments.v2`), and
 * the spelling the configuration declares is its name whichever host is called first (issue #10,
 * probe of reloads and provenance): the policy a config document gives `services.payments.v2` was
 * silently not applied when `http://payments-v2/` was called first.
 */
import { createConfigSource, createMesh } from 'proxyless';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startServer('payments');
});
afterAll(async () => {
  await server.close();
});

it.each(['payments-v2', 'payments_v2', 'PAYMENTS.V2'])(
  'the document policy of services.payments.v2 applies when http://%s/ is called first',
  async (first) => {
    const source = createConfigSource('kv', { services: { 'payments.v2': { timeout: '300ms' } } });
    const mesh = createMesh({ env: { MESH_ENDPOINTS_PAYMENTS_V2: server.address }, configSource: source });
    try {
      const res = await mesh.request(`http://${first}/`);
      expect([res.statusCode, await res.body.text()]).toEqual([200, 'payments']);
      // One destination, under the declared spelling, with the document's deadline in its stack.
      expect(mesh.services()).toEqual(['payments.v2']);
      expect(mesh.stats('payments.v2')?.roles).toContain('deadline');
      expect(mesh.config('payments.v2').resilience.timeoutMs).toBe(300);
    } finally {
      await mesh.close();
    }
  },
);

it('with no declared spelling, the first host spelling names the service (as before)', async () => {
  const mesh = createMesh({ env: { MESH_ENDPOINTS_PAYMENTS_V2: server.address } });
  try {
    await (await mesh.request('http://payments-v2/')).body.text();
    await (await mesh.request('http://payments.v2/')).body.text();
    expect(mesh.services()).toEqual(['payments-v2']);
  } finally {
    await mesh.close();
  }
});
