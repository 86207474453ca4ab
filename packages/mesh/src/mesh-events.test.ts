import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { describe, expect, it } from 'vitest';
import { createMesh, type MeshEvent } from './mesh.js';

describe('mesh events', () => {
  it('reach onEvent listeners and the proxyless:mesh:event diagnostics channel', async () => {
    const published: unknown[] = [];
    const onMessage = (m: unknown): void => {
      published.push(m);
    };
    subscribe('proxyless:mesh:event', onMessage);
    const mesh = createMesh({
      env: {},
      serviceName: 'caller',
      services: { api: { endpoints: '127.0.0.1:9' } },
    });
    const events: MeshEvent[] = [];
    mesh.onEvent((e) => events.push(e));
    try {
      // Nothing listens on port 9: the call fails, but the destination resolves first.
      await mesh.request('http://api/').catch(() => undefined);
      expect(events.map((e) => e.type)).toContain('endpoints_changed');
      expect(published).toContainEqual(
        expect.objectContaining({ type: 'endpoints_changed', service: 'api' }),
      );
    } finally {
      unsubscribe('proxyless:mesh:event', onMessage);
      await mesh.close();
    }
  });

  it('a subscription is a standard disposable: `using` stops listening at the end of the scope', async () => {
    const mesh = createMesh({ env: {}, services: { api: { endpoints: '127.0.0.1:9' } } });
    const events: MeshEvent[] = [];
    try {
      {
        using sub = mesh.onEvent((e) => events.push(e));
        expect(typeof sub[Symbol.dispose]).toBe('function');
      }
      await mesh.request('http://api/').catch(() => undefined);
      expect(events).toEqual([]);
      // dispose() and [Symbol.dispose]() are one: either, then the other, is a no-op.
      const sub = mesh.onEvent((e) => events.push(e));
      sub.dispose();
      sub[Symbol.dispose]();
      await mesh.request('http://api/').catch(() => undefined);
      expect(events).toEqual([]);
    } finally {
      await mesh.close();
    }
  });
});
