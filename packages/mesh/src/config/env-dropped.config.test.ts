import { MeshError } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import { checkConfigDocument } from '../index.js';
import { createMesh } from '../mesh.js';

/** The `config_warning` events a mesh built from `env` fires at start (each field named once). */
async function startWarnings(env: Record<string, string>, services = {}): Promise<Map<string, unknown>> {
  const mesh = createMesh({ env, services });
  const seen = new Map<string, unknown>();
  mesh.onEvent((e) => {
    if (e.type === 'config_warning') seen.set(e.issue.field, e.issue);
  });
  // The start's warnings are fired on the next microtask, for listeners added right after createMesh.
  await Promise.resolve();
  await mesh.close();
  return seen;
}

describe('env variables next to a section switched off', () => {
  it('warns, naming each ignored variable, its value and the variable that wins', async () => {
    const seen = await startWarnings(
      {
        MESH_CIRCUIT_BREAKER: 'false',
        MESH_MAX_REQUESTS: '7',
        MESH_RATE_LIMIT: 'off',
        MESH_RATE_LIMIT_BURST: '5',
        MESH_OUTLIER_ENABLED: 'false',
        MESH_OUTLIER_CONSECUTIVE_5XX: '3',
      },
      { api: { circuitBreaker: true } },
    );
    expect([...seen.keys()].sort()).toEqual(['MESH_MAX_REQUESTS', 'MESH_RATE_LIMIT_BURST']);
    expect(seen.get('MESH_MAX_REQUESTS')).toMatchObject({
      value: '7',
      expected: expect.stringContaining('MESH_CIRCUIT_BREAKER=false turns circuitBreaker off'),
    });
    expect(seen.get('MESH_RATE_LIMIT_BURST')).toMatchObject({
      value: '5',
      expected: expect.stringContaining('MESH_RATE_LIMIT=off turns rateLimit off'),
    });
  });

  it('warns about nothing when the section is on or the variables agree', async () => {
    expect((await startWarnings({ MESH_CIRCUIT_BREAKER: 'true', MESH_MAX_REQUESTS: '7' })).size).toBe(0);
    expect((await startWarnings({ MESH_RATE_LIMIT: '10', MESH_RATE_LIMIT_BURST: '5' })).size).toBe(0);
    expect((await startWarnings({ MESH_RATE_LIMIT: 'off' })).size).toBe(0);
  });

  it('names a variable once in a merged-rule message', () => {
    let error: unknown;
    try {
      checkConfigDocument(
        { services: { api: { rateLimit: { burst: 3 } } } },
        { env: { MESH_RATE_LIMIT: 'off' } },
      );
    } catch (e) {
      error = e;
    }
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    const message = (error as MeshError).message;
    expect(message).toContain('set through MESH_RATE_LIMIT=off)');
    expect(message).not.toContain('MESH_RATE_LIMIT=off, MESH_RATE_LIMIT=off');
  });
});
