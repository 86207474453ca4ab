import { describe, expect, it } from 'vitest';
import { createMesh } from '../index.js';

describe('suggestions for an unknown MESH_* variable', () => {
  it.each([
    ['MESH_RETRY', '3', 'MESH_RETRIES'],
    ['MESH_HEDGE', 'p95', 'MESH_HEDGE_DELAY'],
    ['MESH_CONFIG', '/etc/mesh.json', 'MESH_CONFIG_FILE'],
  ])('%s=%s suggests %s, naming the variable and the value', (name, value, suggested) => {
    expect(() => createMesh({ env: { [name]: value } })).toThrow(
      new RegExp(`${name}: [^\\n]*did you mean "${suggested}"[^\\n]*got ${JSON.stringify(value)}`),
    );
  });
});
