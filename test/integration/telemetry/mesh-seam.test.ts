/**
 * The seam to the mesh: its events feed `telemetry.onMeshEvent` as they are (the structural
 * `TelemetryEvent` accepts `MeshEvent`), and its stats build the admin views.
 */
import { systemClock } from '@proxyless/core';
import { createTelemetry, serviceView, type TelemetryEvent } from '@proxyless/telemetry';
import { Registry } from 'prom-client';
import { createMesh, type MeshEvent } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

let backend: TestServer;

beforeAll(async () => {
  backend = await startServer('backend');
});

afterAll(() => backend.close());

describe('mesh events into telemetry', () => {
  it('records endpoints from the mesh’s own events and builds the admin view from its stats', async () => {
    const registry = new Registry();
    const telemetry = createTelemetry({ registry });
    const mesh = createMesh({ env: {}, services: { payments: { endpoints: backend.address } } });
    const forward = (e: MeshEvent): void => telemetry.onMeshEvent(e satisfies TelemetryEvent);
    const sub = mesh.onEvent(forward);
    try {
      const res = await mesh.request('http://payments/');
      await res.body.text();
      const endpoints = (await registry.getSingleMetric('mesh_endpoints')!.get()).values;
      expect(endpoints.find((v) => v.labels.state === 'healthy')).toMatchObject({
        labels: { service: 'payments' },
        value: 1,
      });
      expect(
        telemetry.events.list().some((e) => e.type === 'endpoints_changed' && e.service === 'payments'),
      ).toBe(true);
      const view = serviceView('payments', {
        set: mesh.endpoints('payments'),
        stats: mesh.stats('payments'),
        now: systemClock.now(),
      });
      expect(view).toMatchObject({ name: 'payments', resolved: true, stale: false });
      expect(view.endpoints).toEqual([
        expect.objectContaining({ id: backend.address, ejected: false, requests: 1 }),
      ]);
    } finally {
      sub.dispose();
      await mesh.close();
      await telemetry.close();
    }
  });
});
