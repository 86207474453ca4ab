import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkConfigDocument, createMesh, type MeshEvent } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** A document of `n` services that inherit `defaults`, plus `own` with its own `perTryTimeout`. */
function document(n: number) {
  const services: Record<string, unknown> = Object.fromEntries(
    Array.from({ length: n }, (_, i) => [`s${i}`, { endpoints: `127.0.0.1:${i + 1}` }]),
  );
  services.own = { endpoints: '127.0.0.1:9', perTryTimeout: '3s' };
  return { defaults: { timeout: '1s', perTryTimeout: '2s' }, services };
}

// One warning in `defaults` is one warning, not one per service (probe2 warn.ts: 51 events for 50).
describe('a warning of the defaults is reported once, naming the defaults', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'proxyless-defaults-warning-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const expected = [
    expect.objectContaining({ service: undefined, field: 'defaults.perTryTimeout', value: 2000 }),
    expect.objectContaining({ service: 'own', field: 'perTryTimeout', value: 3000 }),
  ];

  it('checkConfigDocument gives one warning for the defaults and one for the service that overrides', () => {
    expect(checkConfigDocument(document(50))).toEqual(expected);
  });

  it('fires one config_warning for the defaults of a 200-service document, and none again on reload', async () => {
    const file = path.join(dir, 'mesh.json');
    writeFileSync(file, JSON.stringify(document(200)));
    const mesh = createMesh({ env: {}, configFile: file });
    const events: Extract<MeshEvent, { type: 'config_warning' }>[] = [];
    mesh.onEvent((e) => {
      if (e.type === 'config_warning') events.push(e);
    });
    try {
      await Promise.resolve();
      expect(events.map((e) => ({ service: e.service, ...e.issue }))).toEqual(expected);
      const applied = new Promise<void>((resolve) => {
        const sub = mesh.onEvent((e) => {
          if (e.type !== 'config_applied') return;
          sub.dispose();
          resolve();
        });
      });
      writeFileSync(file, JSON.stringify(document(201)));
      await mesh.reloadConfig();
      await applied;
      expect(events).toHaveLength(2);
    } finally {
      await mesh.close();
    }
  });
});
