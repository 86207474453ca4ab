import type { ServerResponse } from 'node:http';
import { Registry } from 'prom-client';
import { createConfigSource, createMesh, type Mesh, type MeshEvent } from 'proxyless';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';
import { nextEvent } from '../../support/mesh-events.js';

/** Every series of `service` (by `service` or `server_address`), as `name{label=value,…}` → value. */
async function seriesOf(registry: Registry, service: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const m of await registry.getMetricsAsJSON()) {
    for (const v of m.values) {
      const labels = v.labels as Record<string, string | number | undefined>;
      if (labels.service !== service && labels.server_address !== service) continue;
      if ('metricName' in v && v.metricName !== `${m.name}_count`) continue; // histograms: the count
      const shown = Object.entries(labels)
        .filter(([k]) => k !== 'service' && k !== 'server_address' && k !== 'le')
        .map(([k, x]) => `${k}=${x}`)
        .join(',');
      out[`${m.name}{${shown}}`] = v.value;
    }
  }
  return out;
}

const names = (series: Record<string, number>): string[] => [
  ...new Set(Object.keys(series).map((k) => k.slice(0, k.indexOf('{')))),
];

/**
 * A service removed from the config document while a call to it is in flight: the destination's
 * series (endpoint states, staleness) go at once, its call series count that call and go when it
 * ends, and nothing of the removed destination brings any back. A service added again gets series
 * as any new one.
 */
describe('series of a service removed with a call in flight', () => {
  let server: TestServer;
  /** Responses of `/stream` calls: the head and `start ` are sent, the end waits for `finish()`. */
  const streams: ServerResponse[] = [];
  const finish = (): void => {
    for (const res of streams.splice(0)) res.end('end');
  };
  let mesh: Mesh | undefined;
  beforeAll(async () => {
    server = await startServer('api', (req, res) => {
      req.resume();
      if (req.url !== '/stream') return void res.end('ok');
      res.write('start ');
      streams.push(res);
    });
  });
  afterEach(async () => {
    finish();
    await mesh?.close();
    mesh = undefined;
  });
  afterAll(async () => {
    await server.close();
  });

  const start = (): {
    mesh: Mesh;
    registry: Registry;
    events: MeshEvent[];
    source: ReturnType<typeof createConfigSource>;
  } => {
    const registry = new Registry();
    const source = createConfigSource('kv', {
      services: { api: { endpoints: server.address }, keep: { endpoints: server.address } },
    });
    const m = createMesh({ env: { MESH_PASSTHROUGH: 'false' }, configSource: source, metrics: { registry } });
    mesh = m;
    const events: MeshEvent[] = [];
    m.onEvent((e) => {
      if (e.type !== 'balancer') events.push(e);
    });
    return { mesh: m, registry, events, source };
  };

  const remove = async (m: Mesh, source: ReturnType<typeof createConfigSource>): Promise<void> => {
    const removed = nextEvent(m, (e) => e.type === 'service_removed');
    const applied = nextEvent(m, (e) => e.type === 'config_applied');
    source.update({ services: { keep: { endpoints: server.address } } });
    await applied;
    expect(await removed).toMatchObject({ service: 'api' });
  };

  it('keeps counting the call in flight, then drops every series of the service for good', async () => {
    const { mesh: m, registry, events, source } = start();
    expect(await (await m.request('http://api/')).body.text()).toBe('ok');
    const streaming = await m.request('http://api/stream');
    expect(names(await seriesOf(registry, 'api'))).toEqual(
      expect.arrayContaining(['mesh_endpoints', 'mesh_resolver_stale', 'mesh_attempts_total']),
    );

    await remove(m, source);
    // The destination is gone: its state gauges with it. Its call series stay while its call runs.
    const draining = await seriesOf(registry, 'api');
    expect(names(draining).sort()).toEqual(['http_client_request_duration_seconds', 'mesh_attempts_total']);
    expect(
      draining[
        'http_client_request_duration_seconds{http_request_method=GET,http_response_status_code=200,error_type=}'
      ],
    ).toBe(1);

    finish();
    expect(await streaming.body.text()).toBe('start end');
    // The last call ended: nothing of the service is left, and nothing came back (before: the
    // removed destination's empty endpoint set and the call's own counters made them again).
    expect(await seriesOf(registry, 'api')).toEqual({});
    const after = events.slice(events.findIndex((e) => e.type === 'service_removed'));
    expect(after.filter((e) => 'service' in e && e.service === 'api').map((e) => e.type)).toEqual([
      'service_removed',
    ]);

    // In the document again: a new destination, with series of its own from zero.
    const back = nextEvent(m, (e) => e.type === 'config_applied');
    source.update({ services: { api: { endpoints: server.address }, keep: { endpoints: server.address } } });
    await back;
    expect(await (await m.request('http://api/')).body.text()).toBe('ok');
    const again = await seriesOf(registry, 'api');
    expect(again).toMatchObject({
      'mesh_endpoints{state=healthy}': 1,
      'mesh_resolver_stale{}': 0,
      [`mesh_attempts_total{endpoint=${server.address},outcome=success}`]: 1,
      'http_client_request_duration_seconds{http_request_method=GET,http_response_status_code=200,error_type=}': 1,
    });
  });

  it('a service added again before the call in flight ends keeps its series when that call ends', async () => {
    const { mesh: m, registry, source } = start();
    const streaming = await m.request('http://api/stream');
    await remove(m, source);

    const back = nextEvent(m, (e) => e.type === 'config_applied');
    source.update({ services: { api: { endpoints: server.address }, keep: { endpoints: server.address } } });
    await back;
    expect(await (await m.request('http://api/')).body.text()).toBe('ok');

    finish();
    expect(await streaming.body.text()).toBe('start end');
    // The old destination's last call counted in the series of the service, which is live again.
    expect(await seriesOf(registry, 'api')).toMatchObject({
      'mesh_endpoints{state=healthy}': 1,
      [`mesh_attempts_total{endpoint=${server.address},outcome=success}`]: 2,
      'http_client_request_duration_seconds{http_request_method=GET,http_response_status_code=200,error_type=}': 2,
    });
  });
});
