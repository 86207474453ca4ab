import { MeshError } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import { createMesh } from '../mesh.js';
import { checkConfigDocument } from './check.js';

const document = { services: { api: { endpoints: '127.0.0.1:1' } } };

/** The fields a check fails with, or [] when it passes. */
function failures(run: () => unknown): string[] {
  try {
    run();
  } catch (error) {
    if (!MeshError.is(error, 'MESH_CONFIG_INVALID')) throw error;
    return (error.details.issues ?? []).map((i) => i.field);
  }
  return [];
}

describe('checkConfigDocument checks the environment as createMesh does (probe7 config defect 1)', () => {
  // A CI step that vets a document with the service's environment approved variables the mesh
  // then refused at start: only the policy variables were read.
  for (const [name, value] of [
    ['MESH_RETRIS', '3'],
    ['MESH_REGISTRY', 'zk'],
    ['MESH_ADMIN_PORT', 'x'],
    ['MESH_PASSTHROUGH', 'x'],
    ['MESH_LOG_LEVEL', 'loud'],
    ['MESH_METRICS', 'maybe'],
    ['MESH_DNS_TIMEOUT', 'garbage'],
  ] as const) {
    it(`${name}=${value} fails both, naming the variable`, () => {
      const env = { [name]: value };
      const checked = failures(() => checkConfigDocument(document, { env }));
      expect(checked).toContain(name);
      const started = failures(() => {
        const mesh = createMesh({ env, services: document.services, passthrough: false });
        void mesh.close();
      });
      expect(started).toContain(name);
    });
  }

  it('a good environment passes', () => {
    expect(() =>
      checkConfigDocument(document, {
        env: { MESH_RETRIES: '3', MESH_REGISTRY: 'file', MESH_METRICS: 'false' },
      }),
    ).not.toThrow();
  });
});
