/**
 * Telemetry settings that can never work fail `createMesh` with `MESH_CONFIG_INVALID` naming the
 * variable and its value, instead of surfacing later under another name or not at all.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MeshError } from '@proxyless/core';
import { Registry } from 'prom-client';
import { createMesh } from 'proxyless';
import { describe, expect, it } from 'vitest';

function createMeshError(env: Record<string, string>): MeshError {
  try {
    const mesh = createMesh({ env, metrics: { registry: new Registry() } });
    void mesh.close();
  } catch (error) {
    if (MeshError.is(error)) return error;
    throw error;
  }
  throw new Error('createMesh succeeded');
}

describe('createMesh with bad telemetry settings', () => {
  it('rejects a MESH_ADMIN_HOST that is not an address, naming it and the value', () => {
    const error = createMeshError({ MESH_ADMIN_PORT: '0', MESH_ADMIN_HOST: 'not a host!' });
    expect(error.code).toBe('MESH_CONFIG_INVALID');
    expect(error.details).toMatchObject({ field: 'MESH_ADMIN_HOST', value: 'not a host!' });
    expect(error.message).toContain('"not a host!"');
    expect(error.message).not.toContain('MESH_ADMIN_PORT');
  });

  it('rejects a MESH_ACCESS_LOG file whose directory does not exist', () => {
    const error = createMeshError({ MESH_ACCESS_LOG: '/nonexistent/dir/x.log' });
    expect(error.code).toBe('MESH_CONFIG_INVALID');
    expect(error.details).toMatchObject({ field: 'MESH_ACCESS_LOG', value: '/nonexistent/dir/x.log' });
    expect(error.message).toContain('"/nonexistent/dir/x.log"');
  });

  it('creates no access-log file when the start fails for another setting, and still checks the path', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'proxyless-access-log-'));
    try {
      const file = path.join(dir, 'access.log');
      const error = createMeshError({ MESH_ACCESS_LOG: file, MESH_TIMEOUT: 'soon' });
      expect(error.message).toContain('MESH_TIMEOUT');
      expect(existsSync(file)).toBe(false);
      // A path that could never be opened is still reported with the other problem, in one error.
      const both = createMeshError({ MESH_ACCESS_LOG: dir, MESH_TIMEOUT: 'soon' });
      expect(both.details.issues?.map((i) => i.field).sort()).toEqual(['MESH_ACCESS_LOG', 'MESH_TIMEOUT']);
      expect(both.message).toContain('it is a directory');
      const missing = createMeshError({
        MESH_ACCESS_LOG: path.join(dir, 'no/such.log'),
        MESH_TIMEOUT: 'soon',
      });
      expect(missing.message).toContain('its directory does not exist');
      // With nothing else wrong, the file is opened (created) as before.
      const mesh = createMesh({ env: { MESH_ACCESS_LOG: file }, metrics: { registry: new Registry() } });
      expect(existsSync(file)).toBe(true);
      void mesh.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
