/**
 * `mesh.dispatcher` emits its pools' connection events as undici's Agent does (`connect`,
 * `disconnect`, with the dispatcher first in `targets`), for mesh services and for pass-through
 * origins alike. The pass-through Agent is made at the first pass-through call (undici's
 * connection classes load at first use): its events must still reach the dispatcher.
 */
import type { EventEmitter } from 'node:events';
import { createMesh } from 'proxyless';
import { describe, expect, it } from 'vitest';
import { startServer } from '../../support/http-server.js';

describe('mesh.dispatcher connection events', () => {
  it('reports connect and disconnect for a mesh service and for a pass-through origin', async () => {
    const svc = await startServer('svc');
    const other = await startServer('other');
    const mesh = createMesh({ env: {}, services: { svc: { endpoints: svc.address } } });
    const seen: string[] = [];
    const dispatcher = mesh.dispatcher as unknown as EventEmitter;
    for (const event of ['connect', 'disconnect'] as const)
      dispatcher.on(event, (origin: URL, targets: unknown[]) => {
        expect(targets[0]).toBe(mesh.dispatcher);
        seen.push(`${event} ${String(origin)}`);
      });
    try {
      expect(await (await mesh.request('http://svc/')).body.text()).toBe('svc');
      expect(await (await mesh.request(`http://${other.address}/`)).body.text()).toBe('other');
      expect(seen).toEqual([`connect http://${svc.address}/`, `connect http://${other.address}/`]);
      await mesh.close();
      expect(seen.slice(2).sort()).toEqual(
        [`disconnect http://${svc.address}/`, `disconnect http://${other.address}/`].sort(),
      );
    } finally {
      await mesh.close();
      await svc.close();
      await other.close();
    }
  });
});
