/**
 * A routed service with a resolver `Failover` waits for its primary target to resolve before
 * choosing (a probe of the routed path): the wait ignored the caller's abort (rejected only at the
 * resolve timeout), was not drained or cut by `close({ timeout })`, and a primary still unresolved
 * after it never failed over — the call waited a second resolve timeout and failed
 * `MESH_NO_ENDPOINTS` with the backup's endpoints at hand.
 */
import { createConfigSource, createMesh, type Mesh, MeshError, type Resolver } from 'proxyless';
import { flushPromises, VirtualClock } from 'proxyless/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

let backup: TestServer;
beforeAll(async () => {
  backup = await startServer('backup');
});
afterAll(async () => {
  await backup.close();
});

/** A registry that knows `api` but never answers for it. */
const silent: Resolver = {
  name: 'silent',
  match: (host) => (host === 'api' ? 'api' : undefined),
  watch: () => ({ dispose: () => undefined }),
  close: () => Promise.resolve(),
};

/** `api` (silent) fails over to `backup`; `extra`: a clock and an idle timeout. */
function mesh(
  resolveTimeoutMs: number,
  extra: { clock?: VirtualClock; destinationIdleTimeoutMs?: number } = {},
): Mesh {
  return createMesh({
    env: {},
    passthrough: false,
    resolvers: [silent],
    resolveTimeoutMs,
    ...extra,
    configSource: createConfigSource('kv', {
      services: { backup: { endpoints: backup.address } },
      configEntries: [
        { Kind: 'service-defaults', Name: 'api', Protocol: 'http' },
        { Kind: 'service-defaults', Name: 'backup', Protocol: 'http' },
        { Kind: 'service-resolver', Name: 'api', Failover: { '*': { Targets: [{ Service: 'backup' }] } } },
      ],
    }),
  });
}

describe('the wait for an unresolved primary target', () => {
  it("ends at the caller's abort, with its reason", async () => {
    const m = mesh(60_000);
    try {
      const ac = new AbortController();
      const reason = new Error('gave up');
      const call = m.request('http://api/', { signal: ac.signal });
      ac.abort(reason);
      await expect(call).rejects.toBe(reason);
    } finally {
      await m.close({ timeout: 0 });
    }
  });

  it("ends with undici's error for headers undici refuses, as a call sent at once would", async () => {
    const m = mesh(60_000);
    try {
      const ac = new AbortController();
      const call = m.request('http://api/', { signal: ac.signal, headers: { 'x-a': 'a\nb' } });
      ac.abort(new Error('gave up'));
      await expect(call).rejects.toMatchObject({
        name: 'InvalidArgumentError',
        code: 'UND_ERR_INVALID_ARG',
        message: 'invalid x-a header',
      });
    } finally {
      await m.close({ timeout: 0 });
    }
  });

  it('is drained by close({ timeout }), and cut at its deadline with MESH_CLOSED', async () => {
    const m = mesh(60_000);
    const call = m.request('http://api/').then(
      () => 'resolved',
      (e: unknown) => (MeshError.is(e) ? e.code : String(e)),
    );
    let closed = false;
    const closing = m.close({ timeout: 50 }).then(() => {
      closed = true;
    });
    expect(await call).toBe('MESH_CLOSED');
    await closing;
    expect(closed).toBe(true);
  });

  it('a primary still unresolved after the resolve timeout fails over', async () => {
    const m = mesh(100);
    try {
      const res = await m.request('http://api/');
      expect([res.statusCode, await res.body.text()]).toEqual([200, 'backup']);
    } finally {
      await m.close();
    }
  });
});

describe('when no failover target has endpoints either', () => {
  it('the call fails MESH_NO_ENDPOINTS after one resolve timeout, not a second wait on the primary', async () => {
    const clock = new VirtualClock();
    // `api` never answers; `backup` answers at once with no endpoints.
    const registry: Resolver = {
      name: 'registry',
      match: (host) => (host === 'api' || host === 'backup' ? host : undefined),
      watch: (service, listener) => {
        if (service === 'backup') {
          queueMicrotask(() =>
            listener({
              kind: 'endpoints',
              set: { service, version: 1, endpoints: [], source: 'registry', updatedAt: 0, stale: false },
            } as never),
          );
        }
        return { dispose: () => undefined };
      },
      close: () => Promise.resolve(),
    };
    const m = createMesh({
      env: {},
      passthrough: false,
      clock,
      resolvers: [registry],
      resolveTimeoutMs: 100,
      configSource: createConfigSource('kv', {
        configEntries: [
          { Kind: 'service-defaults', Name: 'api', Protocol: 'http' },
          { Kind: 'service-defaults', Name: 'backup', Protocol: 'http' },
          { Kind: 'service-resolver', Name: 'api', Failover: { '*': { Targets: [{ Service: 'backup' }] } } },
        ],
      }),
    });
    const call = (): { outcome: unknown } => {
      const seen: { outcome: unknown } = { outcome: 'pending' };
      void m.request('http://api/').then(
        () => {
          seen.outcome = 'resolved';
        },
        (e: unknown) => {
          seen.outcome = MeshError.is(e) ? e.code : e;
        },
      );
      return seen;
    };
    try {
      // The first call builds the backup target (it answers: no endpoints) after the primary's wait.
      const first = call();
      await flushPromises();
      await clock.advance(100);
      await flushPromises();
      expect(first.outcome).toBe('MESH_NO_ENDPOINTS');
      // The next one waits for the primary once, finds no target with endpoints, and fails then.
      const second = call();
      await flushPromises();
      await clock.advance(100);
      await flushPromises();
      expect(second.outcome).toBe('MESH_NO_ENDPOINTS');
    } finally {
      await m.close({ timeout: 0 });
    }
  });
});

describe("a route's ResponseHeaders on a call that waited for its primary (probe26 docs defect 6)", () => {
  it('edit the response of the first call as of every later one, through request and fetch', async () => {
    const primary = await startServer('primary');
    const doc = {
      services: { api: { endpoints: primary.address }, backup: { endpoints: backup.address } },
      configEntries: [
        { Kind: 'service-defaults', Name: 'api', Protocol: 'http' },
        { Kind: 'service-defaults', Name: 'backup', Protocol: 'http' },
        { Kind: 'service-resolver', Name: 'api', Failover: { '*': { Targets: [{ Service: 'backup' }] } } },
        {
          Kind: 'service-router',
          Name: 'api',
          Routes: [
            {
              Match: { HTTP: { PathPrefix: '/' } },
              Destination: { ResponseHeaders: { Set: { 'x-served-by': 'router' } } },
            },
          ],
        },
      ],
    };
    try {
      for (const face of ['request', 'fetch'] as const) {
        const m = createMesh({
          env: {},
          passthrough: false,
          configSource: createConfigSource('kv', doc as never),
        });
        try {
          const seen: (string | null | undefined)[] = [];
          for (let i = 0; i < 2; i++) {
            if (face === 'request') {
              const r = await m.request('http://api/');
              await r.body.dump();
              seen.push(r.headers['x-served-by'] as string | undefined);
            } else {
              const r = await m.fetch('http://api/');
              await r.arrayBuffer();
              seen.push(r.headers.get('x-served-by'));
            }
          }
          expect({ face, seen }).toEqual({ face, seen: ['router', 'router'] });
        } finally {
          await m.close();
        }
      }
    } finally {
      await primary.close();
    }
  });
});

/**
 * A call waiting for its primary was counted nowhere: past the idle timeout its service was
 * released under it (reported removed, unlisted), and the call was left to a closing destination.
 */
describe('a call waiting for its primary', () => {
  it('keeps its service built and listed for as long as it waits, past the idle timeout', async () => {
    const clock = new VirtualClock();
    const m = mesh(10_000, { clock, destinationIdleTimeoutMs: 300 });
    const removed: string[] = [];
    m.onEvent((e) => {
      if (e.type === 'service_removed') removed.push(e.service);
    });
    try {
      const call = m.request('http://api/');
      await flushPromises();
      // Five seconds of waiting: the idle timeout passes many times over, the call is in flight.
      for (let i = 0; i < 5; i++) await clock.advance(1000);
      expect(removed).toEqual([]);
      expect(m.services()).toContain('api');
      expect(m.stats('api')?.inFlight).toBe(1);
      // A second call aborted while it waits is no longer counted.
      const ac = new AbortController();
      const aborted = m.request('http://api/', { signal: ac.signal }).catch((e: unknown) => e);
      await flushPromises();
      expect(m.stats('api')?.inFlight).toBe(2);
      ac.abort();
      expect(((await aborted) as Error).name).toBe('AbortError');
      expect(m.stats('api')?.inFlight).toBe(1);
      // At the resolve timeout the primary counts as empty: the call fails over to the backup.
      await clock.advance(5000);
      const res = await call;
      expect([res.statusCode, await res.body.text()]).toEqual([200, 'backup']);
      expect(m.stats('api')?.inFlight).toBe(0);
    } finally {
      await m.destroy();
    }
  });
});
