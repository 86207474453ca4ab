/**
 * Connect failures whatever the errno: an error of the `connect` system call (here `EINVAL`, which
 * Linux gives for a link-local IPv6 address without a zone id, `[fe80::1]:80`) is a connect
 * failure like `ECONNREFUSED` — `MESH_CONNECT_FAILED`, retried on another endpoint, the endpoint
 * taken out of picking (probe30 t37) — and the balancer's `connectivity` event names the connect's
 * error code, its first one included (not the failure class `connect`).
 */
import net from 'node:net';
import { createMesh, MeshError, type MeshEvent } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';
import { refusingPort } from '../../support/ports.js';

const LINK_LOCAL = 'fe80::1';

/**
 * The code a plain connect to `host:port` fails with (`undefined`: it connected or, on a system
 * that sends it, got no answer within a few seconds — a guard, not a synchronisation).
 */
function connectCode(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, timeout: 3000 });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code));
  });
}

function connectivity(events: MeshEvent[], endpoint: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const e of events) {
    if (e.type === 'balancer' && e.event.type === 'connectivity' && e.event.endpoint === endpoint) {
      const { from, to, error } = e.event as { from: string; to: string; error?: string };
      out.push({ from, to, error });
    }
  }
  return out;
}

let live: TestServer;
let einval: boolean;
beforeAll(async () => {
  live = await startServer('live');
  einval = (await connectCode(LINK_LOCAL, 80)) === 'EINVAL';
});
afterAll(() => live.close());

describe('connect failures of any errno', () => {
  it('EINVAL while connecting: every call is retried to the live endpoint; the bad one leaves picking', async (t) => {
    if (!einval) t.skip(`a connect to [${LINK_LOCAL}]:80 does not fail with EINVAL here`);
    const bad = `[${LINK_LOCAL}]:80`;
    const mesh = createMesh({
      env: {},
      services: { q: { endpoints: `${bad},${live.address}`, loadBalancer: { policy: 'round_robin' } } },
    });
    const events: MeshEvent[] = [];
    const sub = mesh.onEvent((e) => events.push(e));
    try {
      const out: unknown[] = [];
      for (let i = 0; i < 6; i++) {
        try {
          const r = await mesh.request('http://q/');
          await r.body.text();
          out.push(r.statusCode);
        } catch (e) {
          out.push(`${(e as { code?: unknown }).code} isMeshError=${MeshError.is(e)}`);
        }
      }
      expect(out).toEqual([200, 200, 200, 200, 200, 200]);
      const stats = mesh.stats('q')?.endpoints.find((e) => e.id === bad);
      // Out of picking since its first failed connect (failing, or being probed again after 1 s).
      expect(['TRANSIENT_FAILURE', 'CONNECTING']).toContain(stats?.connectivity);
      expect(stats?.connectFailures).toBeGreaterThanOrEqual(1);
      expect(stats?.failures).toBeGreaterThanOrEqual(1);
      expect(connectivity(events, bad)).toContainEqual({
        from: 'CONNECTING',
        to: 'TRANSIENT_FAILURE',
        error: 'EINVAL',
      });
    } finally {
      sub.dispose();
      await mesh.close();
    }
  });

  it('EINVAL while connecting, no retries: MESH_CONNECT_FAILED with undici’s error as cause', async (t) => {
    if (!einval) t.skip(`a connect to [${LINK_LOCAL}]:80 does not fail with EINVAL here`);
    const mesh = createMesh({ env: {}, services: { q: { endpoints: `[${LINK_LOCAL}]:80`, retry: false } } });
    try {
      const error = await mesh.request('http://q/').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(MeshError.is(error, 'MESH_CONNECT_FAILED')).toBe(true);
      const e = error as MeshError;
      expect(e.details).toMatchObject({ phase: 'connect', bodySent: false, errorCode: 'EINVAL' });
      expect((e.cause as NodeJS.ErrnoException).code).toBe('EINVAL');
      // Taken out of picking: the next call is refused at once.
      const next = await mesh.request('http://q/').then(
        () => undefined,
        (x: unknown) => (x as { code?: unknown }).code,
      );
      expect(next).toBe('MESH_NO_HEALTHY_ENDPOINTS');
    } finally {
      await mesh.close();
    }
  });

  it('the first connectivity event of a refused endpoint names the error code, as later ones do', async () => {
    const port = await refusingPort();
    const id = `127.0.0.1:${port}`;
    const mesh = createMesh({ env: {}, services: { d: { endpoints: id, retry: false } } });
    const events: MeshEvent[] = [];
    const sub = mesh.onEvent((e) => events.push(e));
    try {
      const code = await mesh.request('http://d/').then(
        () => undefined,
        (e: unknown) => (e as { code?: unknown }).code,
      );
      expect(code).toBe('MESH_CONNECT_FAILED');
      // One event, as it leaves picking (the IDLE → CONNECTING before it changes no picking).
      expect(connectivity(events, id)).toEqual([
        { from: 'CONNECTING', to: 'TRANSIENT_FAILURE', error: 'ECONNREFUSED' },
      ]);
    } finally {
      sub.dispose();
      await mesh.close();
    }
  });
});
