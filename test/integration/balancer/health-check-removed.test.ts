/**
 * A config change that turns active health checks off lets an endpoint the checks held out take
 * traffic again, and says so with a `health_check` event (healthy) as the checks' own verdicts do;
 * it used to come back silently. Real loopback servers, a config source fed by hand.
 */
import { createConfigSource, createMesh, type MeshEvent } from 'proxyless';
import { VirtualClock } from 'proxyless/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

let good: TestServer;
let bad: TestServer;
beforeAll(async () => {
  good = await startServer('good');
  bad = await startServer('bad', (req, res) => {
    req.resume();
    res.writeHead(req.url === '/healthz' ? 503 : 200);
    res.end('bad');
  });
});
afterAll(() => Promise.all([good.close(), bad.close()]));

describe('health checks turned off by a config change', () => {
  it('readmits the endpoint they held out, with a health_check event', async () => {
    const clock = new VirtualClock();
    const endpoints = `${good.address},${bad.address}`;
    const hc = { path: '/healthz', interval: '1s', timeout: '500ms', unhealthyThreshold: 1 };
    const source = createConfigSource('kv', { services: { api: { endpoints, healthCheck: hc } } });
    const mesh = createMesh({ env: {}, clock, configSource: source });
    try {
      const verdicts: { endpoint: string; healthy: boolean }[] = [];
      const failed = new Promise<void>((resolve) =>
        mesh.onEvent((e: MeshEvent) => {
          if (e.type !== 'balancer' || e.event.type !== 'health_check') return;
          const v = e.event as { endpoint: string; healthy: boolean };
          verdicts.push({ endpoint: v.endpoint, healthy: v.healthy });
          if (v.endpoint === bad.address && !v.healthy) resolve();
        }),
      );
      // The destination (and its checks) exists from the first call.
      await (await mesh.request('http://api/')).body.dump();
      await clock.advance(1000);
      await failed;
      for (let i = 0; i < 4; i++) expect(await (await mesh.request('http://api/')).body.text()).toBe('good');

      source.update({ services: { api: { endpoints } } });
      expect(verdicts.at(-1)).toEqual({ endpoint: bad.address, healthy: true });
      const bodies = new Set<string>();
      for (let i = 0; i < 6; i++) bodies.add(await (await mesh.request('http://api/')).body.text());
      expect(bodies).toEqual(new Set(['good', 'bad']));
    } finally {
      await mesh.close();
    }
  });
});
