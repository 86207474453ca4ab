/**
 * `/readyz` starts the watch of every configured service on one probe (probe8 admin defect 2): it
 * stopped at the first service with no endpoint set yet, so a document of N services was ready
 * only after N + 1 probes (34 minutes for 200 services at a kubelet period of 10 s).
 */

import { Registry } from 'prom-client';
import { createConfigSource, createMesh, type MeshEvent } from 'proxyless';
import { expect, it } from 'vitest';

it('one probe starts every configured service; once their sets are in, the next probe is ready', async () => {
  const N = 20;
  const services: Record<string, { endpoints: string }> = {};
  for (let i = 0; i < N; i++) services[`svc-${i}`] = { endpoints: `127.0.0.1:${20000 + i}` };
  const mesh = createMesh({
    env: { MESH_ADMIN_PORT: '0' },
    passthrough: false,
    configSource: createConfigSource('kv', { services }),
    metrics: { registry: new Registry() },
  });
  try {
    const url = await mesh.admin();
    expect(url).toBeDefined();
    const seen = new Set<string>();
    const allIn = new Promise<void>((resolve) => {
      mesh.onEvent((e: MeshEvent) => {
        if (e.type !== 'endpoints_changed') return;
        seen.add(e.service);
        if (seen.size === N) resolve();
      });
    });
    const first = await fetch(`${url}/readyz`);
    await first.text();
    expect(mesh.services()).toHaveLength(N);
    await allIn;
    const next = await fetch(`${url}/readyz`);
    expect(await next.json()).toEqual({ ready: true });
    expect(next.status).toBe(200);
  } finally {
    await mesh.close();
  }
});
