/** Every admin endpoint, over real HTTP on 127.0.0.1. */

import { MeshError } from '@proxyless/core';
import {
  type AdminServer,
  createAdminServer,
  createMeshMetrics,
  createTelemetry,
} from '@proxyless/telemetry';
import { Registry } from 'prom-client';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eject, type Fixture, fixture } from './admin-fixture.js';

let admin: AdminServer;
let f: Fixture;
const registry = new Registry();

beforeAll(async () => {
  f = fixture();
  const metrics = createMeshMetrics({ registry });
  metrics.recordClientRequest('payments', 'GET', 200, '', 0.01);
  admin = await createAdminServer({
    registry,
    services: () => f.services,
    configDump: () => f.config,
    ready: () => f.ready,
    events: () => f.events,
  });
});

afterAll(() => admin.close());

async function get(path: string, method: 'GET' | 'POST' = 'GET') {
  const r = await request(`${admin.url}${path}`, { method });
  return { status: r.statusCode, type: String(r.headers['content-type']), body: await r.body.text() };
}

describe('admin server', () => {
  it('binds 127.0.0.1 by default', () => {
    expect(admin.url).toBe(`http://127.0.0.1:${admin.port}`);
  });

  it('serves /metrics (and /stats/prometheus) in the Prometheus text format', async () => {
    for (const path of ['/metrics', '/stats/prometheus']) {
      const r = await get(path);
      expect(r.status).toBe(200);
      expect(r.type).toContain('text/plain');
      expect(r.body).toContain(
        'http_client_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",server_address="payments",error_type=""} 1',
      );
    }
  });

  it('answers /healthz', async () => {
    expect(await get('/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
  });

  it('answers /readyz 503 until ready, then 200', async () => {
    expect(await get('/readyz')).toMatchObject({ status: 503, body: '{"ready":false}' });
    f.ready = true;
    expect(await get('/readyz')).toMatchObject({ status: 200, body: '{"ready":true}' });
  });

  it('serves /config_dump, /clusters and /events as JSON', async () => {
    const config = await get('/config_dump');
    expect(config.type).toContain('application/json');
    expect(JSON.parse(config.body)).toEqual(f.config);
    const clusters = JSON.parse((await get('/clusters')).body);
    expect(clusters.services.map((s: { name: string }) => s.name)).toEqual(['payments', 'inventory', 'web']);
    expect(clusters.services[0].endpoints[0]).toMatchObject({
      id: '10.0.0.1:8080',
      inFlight: 3,
      ewmaMs: 12.4,
      connections: 4,
    });
    eject(f, 'payments', '10.0.0.3:8080');
    const events = JSON.parse((await get('/events')).body);
    expect(events.events.at(-1)).toMatchObject({ type: 'eject', service: 'payments' });
  });

  it('serves the HTML page with no external resources', async () => {
    const r = await get('/');
    expect(r.status).toBe(200);
    expect(r.type).toContain('text/html');
    expect(r.body).toContain('<title>proxyless admin</title>');
    expect(r.body).not.toMatch(/(src|href)="(https?:)?\/\//);
  });

  it('answers 404 for unknown paths and 405 for other methods', async () => {
    expect((await get('/nope')).status).toBe(404);
    expect((await get('/metrics', 'POST')).status).toBe(405);
  });

  /** The error `createAdminServer` fails with on `host:port`, with no data behind it. */
  const listenError = (host: string, port: number): Promise<MeshError> =>
    createAdminServer({
      host,
      port,
      services: () => [],
      configDump: () => ({}),
      ready: () => true,
      events: () => [],
    }).then(
      () => {
        throw new Error(`listened on ${host}:${port}`);
      },
      (e: unknown) => e as MeshError,
    );

  it('fails with MESH_CONFIG_INVALID naming MESH_ADMIN_PORT when the port is taken', async () => {
    const err = await listenError('127.0.0.1', admin.port);
    expect(MeshError.is(err, 'MESH_CONFIG_INVALID')).toBe(true);
    expect(err.details.field).toBe('MESH_ADMIN_PORT');
    expect(err.message).toBe(
      `cannot listen on 127.0.0.1:${admin.port} (MESH_ADMIN_HOST / MESH_ADMIN_PORT): EADDRINUSE`,
    );
  });

  it('names MESH_ADMIN_HOST, not the port, when the address is not this machine’s', async () => {
    // 192.0.2.1 is TEST-NET-1 (RFC 5737): never a local address, so bind fails EADDRNOTAVAIL.
    const err = await listenError('192.0.2.1', 0);
    expect(MeshError.is(err, 'MESH_CONFIG_INVALID')).toBe(true);
    expect(err.details).toMatchObject({ field: 'MESH_ADMIN_HOST', value: '192.0.2.1' });
    expect(err.message).toBe(
      'cannot listen on 192.0.2.1:0 (MESH_ADMIN_HOST / MESH_ADMIN_PORT): EADDRNOTAVAIL',
    );
  });
});

describe('telemetry.startAdmin', () => {
  it('stays off unless MESH_ADMIN_PORT is set, and starts once when it is', async () => {
    const off = createTelemetry({ registry: new Registry() });
    expect(
      await off.startAdmin({ services: () => [], configDump: () => ({}), ready: () => true }),
    ).toBeUndefined();
    const on = createTelemetry({ registry: new Registry(), env: { MESH_ADMIN_PORT: '0' } });
    on.onMeshEvent({ type: 'config_applied', version: 9 });
    const providers = { services: () => [], configDump: () => ({}), ready: () => true };
    const server = await on.startAdmin(providers);
    expect(await on.startAdmin(providers)).toBe(server);
    const events = await (await request(`${server!.url}/events`)).body.json();
    expect(events).toMatchObject({ events: [{ type: 'config_applied', detail: 'config version 9' }] });
    const metrics = await (await request(`${server!.url}/metrics`)).body.text();
    expect(metrics).toContain('mesh_config_version{source="file"} 9');
    await on.close();
    await expect(request(`${server!.url}/healthz`)).rejects.toThrow();
  });
});
