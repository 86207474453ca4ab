import { createMesh, type Mesh } from 'proxyless';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

/**
 * `MESH_ENDPOINTS_PAYMENTS_V2` serves the hosts `payments-v2`, `payments_v2` and `payments.v2`:
 * they are one service, with one destination and one policy, whichever spelling a call uses.
 */
describe('the spellings of a service from MESH_ENDPOINTS_*', () => {
  let server: TestServer;
  let mesh: Mesh | undefined;
  beforeAll(async () => {
    server = await startServer('failing', (req, res) => {
      req.resume();
      res.writeHead(503).end();
    });
  });
  afterEach(async () => {
    await mesh?.close();
    mesh = undefined;
  });
  afterAll(() => server.close());

  /** Requests the server saw for one call to `host`. */
  async function attempts(m: Mesh, host: string): Promise<number> {
    const before = server.requests;
    const res = await m.request(`http://${host}/`);
    await res.body.dump();
    expect(res.statusCode).toBe(503);
    return server.requests - before;
  }

  it.each(['payments-v2', 'payments_v2'])(
    'applies the policy declared as %s to every spelling, through one destination',
    async (declared) => {
      mesh = createMesh({
        env: { MESH_ENDPOINTS_PAYMENTS_V2: server.address, MESH_PASSTHROUGH: 'false' },
        services: {
          [declared]: {
            retry: { maxRetries: 3, retryOn: ['5xx'], backoff: { base: '1ms' } },
            circuitBreaker: false,
          },
        },
      });
      const m = mesh;
      // Before: only the declared spelling got 4 attempts; the others the default policy's 3.
      for (const host of ['payments-v2', 'payments_v2', 'payments.v2', 'PAYMENTS-V2'])
        expect(await attempts(m, host)).toBe(4);
      expect(m.services()).toEqual([declared]);
    },
  );

  it('without a declared policy the first spelling used names the service', async () => {
    mesh = createMesh({ env: { MESH_ENDPOINTS_PAYMENTS_V2: server.address, MESH_PASSTHROUGH: 'false' } });
    await (await mesh.request('http://payments_v2/')).body.dump();
    await (await mesh.request('http://payments.v2/')).body.dump();
    expect(mesh.services()).toEqual(['payments_v2']);
  });
});
