/**
 * `close({ timeout })` takes a number of ms ≥ 0 (`Infinity`: no deadline). Any other value (NaN,
 * negative, a string) forced the shutdown at once; it is refused, and nothing is closed.
 */
import { describe, expect, it } from 'vitest';
import { createMesh } from './mesh.js';

describe('mesh.close({ timeout }) (#9 lifecycle)', () => {
  it.each([Number.NaN, -1, '5s'])(
    'refuses timeout %s with a TypeError and closes nothing',
    async (timeout) => {
      const mesh = createMesh({ env: {}, services: { api: { endpoints: '127.0.0.1:1' } } });
      try {
        await expect(mesh.close({ timeout: timeout as number })).rejects.toThrow(TypeError);
        expect(mesh.closed).toBe(false);
      } finally {
        await mesh.close();
      }
      expect(mesh.closed).toBe(true);
    },
  );

  it('takes 0 and Infinity', async () => {
    for (const timeout of [0, Number.POSITIVE_INFINITY]) {
      const mesh = createMesh({ env: {}, services: { api: { endpoints: '127.0.0.1:1' } } });
      await mesh.close({ timeout });
      expect(mesh.closed).toBe(true);
    }
  });
});
