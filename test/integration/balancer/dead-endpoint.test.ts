import { createMesh, type Mesh, type MeshEvent } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';
import { refusingPort } from '../../support/ports.js';

/** `total` GETs from `callers` concurrent callers; returns the errors (bounded: each caller stops at total). */
async function load(mesh: Mesh, total: number, callers: number): Promise<{ ok: number; errors: unknown[] }> {
  let next = 0;
  let ok = 0;
  const errors: unknown[] = [];
  const caller = async (): Promise<void> => {
    while (next < total) {
      next++;
      try {
        const res = await mesh.fetch('http://pay/');
        await res.text();
        if (res.status === 200) ok++;
        else errors.push(new Error(`status ${res.status}`));
      } catch (error) {
        errors.push(error);
      }
    }
  };
  await Promise.all(Array.from({ length: callers }, caller));
  return { ok, errors };
}

/**
 * The dead-endpoint case of #11: three endpoints in `MESH_ENDPOINTS_PAY`, one refusing
 * connections from the start, defaults only. A refused connect takes the endpoint out of picking
 * at once, so no caller sees an error at any concurrency.
 */
describe('a dead endpoint among three, defaults only (#11)', () => {
  let servers: TestServer[];
  let dead: number;
  beforeAll(async () => {
    servers = await Promise.all(['a', 'b'].map((n) => startServer(n)));
    dead = await refusingPort();
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()));
  });

  it.each([8, 32, 64])('300 GETs from %i concurrent callers: 0 errors', async (callers) => {
    const endpoints = [servers[0]!.address, `127.0.0.1:${dead}`, servers[1]!.address].join(',');
    const mesh = createMesh({ env: { MESH_ENDPOINTS_PAY: endpoints } });
    const events: MeshEvent[] = [];
    const sub = mesh.onEvent((e) => events.push(e));
    try {
      const { ok, errors } = await load(mesh, 300, callers);
      expect(errors.map(describeError)).toEqual([]);
      expect(ok).toBe(300);
      const stats = mesh.stats('pay');
      const deadStats = stats?.endpoints.find((e) => e.port === dead);
      // Out of picking since its first refused connect: failing, or being probed (a run can outlast
      // the first 1 s backoff). Only attempts already in flight at that moment reached it.
      expect(['TRANSIENT_FAILURE', 'CONNECTING']).toContain(deadStats?.connectivity);
      expect(deadStats?.requests).toBeLessThanOrEqual(callers);
      expect(
        events.some(
          (e) =>
            e.type === 'balancer' &&
            e.event.type === 'connectivity' &&
            e.event.endpoint === `127.0.0.1:${dead}` &&
            e.event.to === 'TRANSIENT_FAILURE',
        ),
      ).toBe(true);
    } finally {
      sub.dispose();
      await mesh.close();
    }
  });
});

/** The mesh code of a failure (fetch wraps it in `TypeError: fetch failed` with the cause). */
function describeError(error: unknown): string {
  const cause = (error as { cause?: unknown }).cause;
  const code = (error as { code?: unknown }).code ?? (cause as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : String(error);
}
