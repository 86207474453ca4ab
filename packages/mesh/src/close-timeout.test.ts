/**
 * `close({ timeout })` takes a number of ms ≥ 0 (`Infinity`: no deadline). Any other value (NaN,
 * negative, a string) forced the shutdown at once; it is refused, and nothing is closed.
 */
import { describe, expect, it } from 'vitest';
import { createMesh } from './mesh.js';

const SERVICES = { api: { endpoints: '127.0.0.1:1' } };

describe('mesh.close({ timeout }) (#9 lifecycle)', () => {
  it.each([Number.NaN, -1, '5s'])(
    'refuses timeout %s with a TypeError and closes nothing',
    async (timeout) => {
      const mesh = createMesh({ env: {}, services: SERVICES });
      try {
        await expect(mesh.close({ timeout: timeout as number })).rejects.toThrow(TypeError);
        // Still open: a call goes out (and finds nothing listening); it is not refused as closed.
        const code = await mesh.request('http://api/').then(
          () => 'answered',
          (e: { code?: string }) => e.code,
        );
        expect(code).toBe('MESH_CONNECT_FAILED');
      } finally {
        await mesh.close();
      }
      await expect(mesh.request('http://api/')).rejects.toMatchObject({ code: 'MESH_CLOSED' });
    },
  );

  it('takes 0 and Infinity', async () => {
    for (const timeout of [0, Number.POSITIVE_INFINITY]) {
      const mesh = createMesh({ env: {}, services: SERVICES });
      await mesh.close({ timeout });
      await expect(mesh.request('http://api/')).rejects.toMatchObject({ code: 'MESH_CLOSED' });
    }
  });
});
