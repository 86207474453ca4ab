import { describe, expect, it } from 'vitest';
import { createMesh } from '../mesh.js';

/** The `config_warning` events a mesh started with `env` fires. */
async function warningsOf(
  env: Record<string, string>,
  defaults?: Record<string, string>,
): Promise<Array<{ field: string; expected: string }>> {
  const mesh = createMesh({
    env: { MESH_ENDPOINTS_PAY: '127.0.0.1:1', ...env },
    ...(defaults ? { defaults } : {}),
  });
  const seen: Array<{ field: string; expected: string }> = [];
  mesh.onEvent((e) => {
    if (e.type === 'config_warning') seen.push({ field: e.issue.field, expected: e.issue.expected });
  });
  // The start's warnings are fired on the next microtask, for listeners added right after createMesh.
  await Promise.resolve();
  await mesh.close();
  return seen;
}

describe('a warning about values set through the environment names the variables', () => {
  // An operator who configures through env alone has no `defaults` block to look for: the
  // warning said `defaults.perTryTimeout` and nothing of MESH_PER_TRY_TIMEOUT.
  it('perTryTimeout above timeout', async () => {
    const [w] = await warningsOf({ MESH_TIMEOUT: '100ms', MESH_PER_TRY_TIMEOUT: '1s' });
    expect(w?.field).toBe('defaults.perTryTimeout');
    expect(w?.expected).toContain('MESH_PER_TRY_TIMEOUT=1s');
  });

  it('concurrencyLimit.max above circuitBreaker.maxRequests', async () => {
    const w = (await warningsOf({ MESH_CONCURRENCY_LIMIT: '2000', MESH_MAX_REQUESTS: '1024' })).find((x) =>
      x.field.includes('concurrencyLimit'),
    );
    expect(w?.expected).toContain('MESH_CONCURRENCY_LIMIT=2000');
  });

  it('a warning of fields set in code names no variable', async () => {
    const [w] = await warningsOf({}, { timeout: '100ms', perTryTimeout: '1s' });
    expect(w?.field).toBe('defaults.perTryTimeout');
    expect(w?.expected).not.toContain('set through');
  });
});
