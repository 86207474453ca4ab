/**
 * An application logger that throws never reaches the mesh's calls or config swaps (probe45): the
 * mesh logs from inside a call's end (a connect failure) and from a config swap, where the throw
 * left the call unsettled forever and a rejected version neither reported nor a good one applied.
 */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMesh, type Logger, type MeshEvent } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';
import { refusingPort } from '../../support/ports.js';

const boom: Logger = {
  debug: () => {
    throw new Error('logger boom');
  },
  info: () => {
    throw new Error('logger boom');
  },
  warn: () => {
    throw new Error('logger boom');
  },
  error: () => {
    throw new Error('logger boom');
  },
};

describe('a logger that throws', () => {
  let a: TestServer;
  let b: TestServer;
  let dir: string;
  const warnings: Error[] = [];
  const onWarning = (w: Error): void => {
    warnings.push(w);
  };
  beforeAll(async () => {
    [a, b] = await Promise.all([startServer('a'), startServer('b')]);
    dir = mkdtempSync(path.join(os.tmpdir(), 'proxyless-throwing-logger-'));
    process.on('warning', onWarning);
  });
  afterAll(async () => {
    process.off('warning', onWarning);
    await Promise.all([a.close(), b.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('does not keep a call from settling (a connect failure is logged as it ends)', async () => {
    const port = await refusingPort();
    const mesh = createMesh({
      env: {},
      logger: boom,
      services: { d: { endpoints: `127.0.0.1:${port}`, retry: false } },
    });
    try {
      // Before: never settled, and the logger's error became an uncaught exception.
      await expect(mesh.request('http://d/')).rejects.toMatchObject({ code: 'MESH_CONNECT_FAILED' });
    } finally {
      await mesh.close();
    }
    expect(warnings.map((w) => (w as { code?: string }).code)).toContain('PROXYLESS_LOGGER_FAILED');
  });

  it('does not freeze config reloads: a bad version is rejected, a good one applied', async () => {
    const file = path.join(dir, 'mesh.json');
    const write = (doc: unknown): void => {
      writeFileSync(`${file}.tmp`, typeof doc === 'string' ? doc : JSON.stringify(doc));
      renameSync(`${file}.tmp`, file);
    };
    write({ services: { api: { endpoints: a.address } } });
    const mesh = createMesh({ env: { MESH_CONFIG_FILE: file }, logger: boom });
    const events: MeshEvent['type'][] = [];
    mesh.onEvent((e) => events.push(e.type));
    try {
      expect(await (await mesh.request('http://api/')).body.text()).toBe('a');
      write({ services: { api: { endpoints: a.address, retry: { maxRetries: 99 } } } });
      // Before: resolved, with no config_rejected event.
      await expect(mesh.reloadConfig()).rejects.toMatchObject({ code: 'MESH_CONFIG_INVALID' });
      expect(events).toContain('config_rejected');
      write({ services: { api: { endpoints: b.address } } });
      await mesh.reloadConfig();
      // Before: still `a`.
      expect(await (await mesh.request('http://api/')).body.text()).toBe('b');
    } finally {
      await mesh.close();
    }
  });
});
