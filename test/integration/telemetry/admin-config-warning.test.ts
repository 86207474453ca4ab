/**
 * `/events` lists the most recent events, config warnings included: a setting accepted but unable
 * to work as written is what an operator looks for there.
 */
import { Registry } from 'prom-client';
import { createMesh } from 'proxyless';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';

describe('/events', () => {
  it('shows a config warning with its service and field', async () => {
    const mesh = createMesh({
      env: { MESH_ADMIN_PORT: '0' },
      metrics: { registry: new Registry() },
      services: { orders: { endpoints: '127.0.0.1:9', timeout: '100ms', perTryTimeout: '1s' } },
    });
    try {
      const warned = new Promise<void>((resolve) => {
        mesh.onEvent((e) => {
          if (e.type === 'config_warning') resolve();
        });
      });
      const url = await mesh.admin();
      await warned;
      const body = (await (await request(`${url}/events`)).body.json()) as {
        events: Array<{ type: string; service?: string; detail: string }>;
      };
      const warning = body.events.find((e) => e.type === 'config_warning');
      expect(warning).toMatchObject({ service: 'orders' });
      expect(warning?.detail).toContain('perTryTimeout');
    } finally {
      await mesh.close();
    }
  });
});
