/**
 * A call made before the service's registry has answered waits for the first answer. The wait is
 * part of the call for its telemetry: a call that fails there (`MESH_NO_ENDPOINTS` at
 * `resolveTimeoutMs`) or is aborted there is recorded like any other, and one served after it
 * reports a duration that counts the wait (before, the first two left no record at all and the
 * third reported only the exchange).
 */
import {
  createEndpoint,
  createEndpointSet,
  type Disposable,
  type Resolver,
  type ResolverListener,
} from '@proxyless/core';
import { Registry } from 'prom-client';
import { createMesh, type Mesh } from 'proxyless';
import { VirtualClock } from 'proxyless/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

let server: TestServer;
const meshes: Mesh[] = [];
beforeAll(async () => {
  server = await startServer('api');
});
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
});
afterAll(async () => {
  await server.close();
});

/** A resolver for `api` that answers when the test says so. */
function lateResolver(): Resolver & { answer(): void } {
  const listeners = new Set<ResolverListener>();
  return {
    name: 'late',
    match: (host) => (host === 'api' ? 'api' : undefined),
    watch(_service, listener): Disposable {
      listeners.add(listener);
      return { dispose: () => listeners.delete(listener) };
    },
    close: async () => undefined,
    answer() {
      const set = createEndpointSet({
        service: 'api',
        version: 1,
        source: 'late',
        updatedAt: 0,
        endpoints: [createEndpoint({ address: server.host, port: server.port })],
      });
      for (const l of listeners) l({ kind: 'endpoints', set });
    },
  };
}

const series = async (
  registry: Registry,
): Promise<Array<{ labels: Record<string, string | number>; value: number }>> => {
  const metric = (await registry.getMetricsAsJSON()).find(
    (m) => m.name === 'http_client_request_duration_seconds',
  );
  return (
    (metric?.values ?? []) as Array<{
      metricName?: string;
      labels: Record<string, string | number>;
      value: number;
    }>
  )
    .filter(
      (v) =>
        v.metricName === 'http_client_request_duration_seconds_count' ||
        v.metricName === 'http_client_request_duration_seconds_sum',
    )
    .map((v) => ({ labels: { ...v.labels, metric: v.metricName ?? '' }, value: v.value }));
};

describe('the wait for the first endpoints is part of the call it delays', () => {
  const setup = (resolveTimeoutMs: number) => {
    const clock = new VirtualClock(0);
    const registry = new Registry();
    const resolver = lateResolver();
    const mesh = createMesh({
      env: {},
      clock,
      resolvers: [resolver],
      resolveTimeoutMs,
      metrics: { registry },
    });
    meshes.push(mesh);
    return { clock, registry, resolver, mesh };
  };

  it('a call that fails at the resolve timeout is recorded with MESH_NO_ENDPOINTS', async () => {
    const { clock, registry, mesh } = setup(150);
    const call = mesh.request('http://api/').catch((e: unknown) => e);
    await clock.advance(150);
    expect(await call).toMatchObject({ code: 'MESH_NO_ENDPOINTS' });
    const count = (await series(registry)).find((s) => String(s.labels.metric).endsWith('_count'));
    expect(count).toMatchObject({ labels: { error_type: 'MESH_NO_ENDPOINTS' }, value: 1 });
    const sum = (await series(registry)).find((s) => String(s.labels.metric).endsWith('_sum'));
    expect(sum?.value).toBeCloseTo(0.15, 3);
  });

  it('a call aborted while it waits is recorded as the caller aborted it', async () => {
    const { clock, registry, mesh } = setup(10_000);
    const controller = new AbortController();
    const call = mesh.request('http://api/', { signal: controller.signal }).catch((e: unknown) => e);
    await clock.advance(40);
    controller.abort();
    expect(await call).toMatchObject({ name: 'AbortError' });
    const count = (await series(registry)).find((s) => String(s.labels.metric).endsWith('_count'));
    expect(count?.value).toBe(1);
    expect(count?.labels.error_type).not.toBe('');
  });

  it('a call served after the wait reports a duration that counts it', async () => {
    const { clock, registry, resolver, mesh } = setup(10_000);
    const call = mesh.request('http://api/');
    await clock.advance(300);
    resolver.answer();
    const res = await call;
    expect(await res.body.text()).toBe('api');
    const sum = (await series(registry)).find((s) => String(s.labels.metric).endsWith('_sum'));
    expect(sum?.value).toBeGreaterThanOrEqual(0.3);
  });
});
