import { createMesh, MeshError } from 'proxyless';
import { describe, expect, it } from 'vitest';

describe('resilience configuration through createMesh', () => {
  it('reports every bad resilience variable and service field at once, by name and value', () => {
    let error: unknown;
    try {
      createMesh({
        env: {
          MESH_TIMEOUT: 'soon',
          MESH_PER_TRY_TIMEOUT: '-5ms',
          MESH_RETRIES: 'three',
          MESH_RETRY_ON: '5xx,teapot',
        },
        services: {
          api: {
            endpoints: '127.0.0.1:1',
            // @ts-expect-error a misspelt key fails to compile, and JavaScript callers get the error below
            retry: { maxRetires: 2 },
            circuitBreaker: { resetTimeout: 'never' },
          },
        },
      });
    } catch (e) {
      error = e;
    }
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    const issues = (error as MeshError).details.issues ?? [];
    const fields = issues.map((i) => i.field);
    for (const name of ['MESH_TIMEOUT', 'MESH_PER_TRY_TIMEOUT', 'MESH_RETRIES', 'MESH_RETRY_ON']) {
      expect(fields).toContain(name);
    }
    expect(fields.some((f) => f.endsWith('api.retry.maxRetires'))).toBe(true);
    expect(fields.some((f) => f.endsWith('api.circuitBreaker.resetTimeout'))).toBe(true);
    const message = (error as MeshError).message;
    for (const v of ['"soon"', '"-5ms"', '"three"', '"5xx,teapot"', '"never"', 'did you mean "maxRetries"']) {
      expect(message).toContain(v);
    }
  });
});
