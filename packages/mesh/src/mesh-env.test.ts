import { MeshError } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import { createMesh } from './mesh.js';

/** Each bad variable is rejected at createMesh, with a message naming it and quoting its value. */
const BAD: Array<[string, string]> = [
  ['MESH_CONNECTIONS_PER_ENDPOINT', '0'],
  ['MESH_CONNECTIONS_PER_ENDPOINT', 'abc'],
  ['MESH_CONNECTIONS_PER_ENDPOINT', '1.5'],
  ['MESH_CONNECTIONS_PER_ENDPOINT', '99999'],
  ['MESH_PASSTHROUGH', 'maybe'],
  ['MESH_HOST_HEADER', 'upstream'],
  ['MESH_RESOLVE_TIMEOUT', '5 sec'],
  ['MESH_RESOLVE_TIMEOUT', '-1s'],
  ['MESH_LOG_LEVEL', 'verbose'],
  ['MESH_REGISTRY', 'zookeeper'],
  ['MESH_LB_POLICY', 'fastest'],
  ['MESH_ENDPOINTS_PAYMENTS', '10.0.0.1'],
  ['MESH_ENDPOINTS_PAYMENTS', '10.0.0.1:0'],
  ['MESH_ENDPOINTS_PAYMENTS', '::1:8080'],
  ['MESH_ENDPOINTS_PAYMENTS', '10.0.0.1:80,,10.0.0.2:80'],
  ['MESH_ENDPOINTS_PAYMENTS', '10.0.0.1:80,10.0.0.2:80,10.0.0.1:80=3'],
  ['MESH_ENDPOINTS_PAYMENTS', '10.0.0.1:8080=-1'],
  ['MESH_ENDPOINTS_PAYMENTS', 'bad host:80'],
  ['MESH_TIMEOUT', 'soon'],
  ['MESH_PER_TRY_TIMEOUT', '-5ms'],
  ['MESH_RETRIES', 'three'],
  ['MESH_RETRY_ON', '5xx,teapot'],
  ['MESH_CONFIG_FILE', '/nonexistent/proxyless/mesh.json'],
];

describe('createMesh environment validation (#3)', () => {
  it.each(BAD)('rejects %s=%j naming the variable and the value', (name, value) => {
    let error: unknown;
    try {
      createMesh({ env: { [name]: value } });
    } catch (e) {
      error = e;
    }
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    const message = (error as MeshError).message;
    expect(message).toContain(name);
    expect(message).toContain(value);
  });

  it('rejects an unknown MESH_* variable and suggests the closest known name', () => {
    expect(() => createMesh({ env: { MESH_LB_POLCY: 'round_robin' } })).toThrow(
      /MESH_LB_POLCY[\s\S]*did you mean "MESH_LB_POLICY"/,
    );
    expect(() => createMesh({ env: { MESH_ENDPONTS_X: '1.2.3.4:80' } })).toThrow(/MESH_ENDPONTS_X/);
    // A prefix variable without its service name is told the form it needs.
    for (const name of ['MESH_ENDPOINTS', 'MESH_ENDPOINTS_'])
      expect(() => createMesh({ env: { [name]: '1.2.3.4:80' } })).toThrow(
        /did you mean "MESH_ENDPOINTS_<SERVICE>"/,
      );
  });

  it('suggests the variable of a document field spelt as a variable name', () => {
    expect(() => createMesh({ env: { MESH_RETRY_MAX_RETRIES: '3' } })).toThrow(
      /MESH_RETRY_MAX_RETRIES[\s\S]*did you mean "MESH_RETRIES", which sets retry\.maxRetries/,
    );
    // A near miss of a real name still suggests that name.
    expect(() => createMesh({ env: { MESH_RETRIS: '3' } })).toThrow(/did you mean "MESH_RETRIES"/);
  });

  it('reports every bad variable at once', () => {
    try {
      createMesh({ env: { MESH_PASSTHROUGH: 'maybe', MESH_LOG_LEVEL: 'loud', MESH_RETRIES: 'x' } });
      expect.unreachable();
    } catch (e) {
      const issues = (e as MeshError).details.issues ?? [];
      expect(issues.map((i) => i.field).sort()).toEqual([
        'MESH_LOG_LEVEL',
        'MESH_PASSTHROUGH',
        'MESH_RETRIES',
      ]);
    }
  });

  it('treats blank variables as unset', async () => {
    const mesh = createMesh({ env: { MESH_PASSTHROUGH: '', MESH_LB_POLICY: '  ', MESH_TIMEOUT: '' } });
    await mesh.close();
  });

  it('ignores variables outside the MESH_ namespace', async () => {
    const mesh = createMesh({ env: { MESHY: '1', HOME: '/root' } });
    await mesh.close();
  });
});

describe('policy merged across layers (#5, #6)', () => {
  it('rejects at createMesh a health check whose path no layer sets', () => {
    expect(() =>
      createMesh({
        env: {},
        services: { api: { endpoints: '127.0.0.1:1', healthCheck: { interval: '5s' } } },
      }),
    ).toThrow(/services\.api \(all layers merged\)[\s\S]*path/);
  });

  it('accepts a path from defaults and an interval from the service', async () => {
    const mesh = createMesh({
      env: {},
      defaults: { healthCheck: { path: '/healthz' } },
      services: { api: { endpoints: '127.0.0.1:1', healthCheck: { interval: '5s' } } },
    });
    await mesh.close();
  });
});

describe('createMesh options are checked as a document is', () => {
  const issuesOf = (options: Record<string, unknown>): Array<{ field: string; expected: string }> => {
    try {
      createMesh({ env: {}, ...options } as never);
    } catch (e) {
      expect(MeshError.is(e, 'MESH_CONFIG_INVALID')).toBe(true);
      return ((e as MeshError).details.issues ?? []).map((i) => ({ field: i.field, expected: i.expected }));
    }
    throw new Error('createMesh accepted the options');
  };

  it('a misspelt option is an error naming it, with the option meant (a JavaScript caller has no types)', () => {
    for (const [typo, meant, value] of [
      ['defualts', 'defaults', { timeout: '1s' }],
      ['servces', 'services', { api: { endpoints: '127.0.0.1:9' } }],
      ['configFlie', 'configFile', '/etc/mesh.json'],
      ['passThrough', 'passthrough', false],
      ['resolveTimeout', 'resolveTimeoutMs', 100],
    ] as const) {
      const [issue, ...more] = issuesOf({ [typo]: value });
      expect(more).toEqual([]);
      expect(issue?.field).toBe(`options.${typo}`);
      expect(issue?.expected).toContain(`did you mean "${meant}"`);
    }
  });

  it('an option set to undefined is as if absent', async () => {
    const mesh = createMesh({ env: {}, configFile: undefined, registry: undefined, services: undefined });
    await mesh.close();
  });

  it('names every option by its path under options', () => {
    expect(issuesOf({ connectionsPerEndpoint: 0, destinationIdleTimeoutMs: -5 }).map((i) => i.field)).toEqual(
      ['options.connectionsPerEndpoint', 'options.destinationIdleTimeoutMs'],
    );
  });
});
