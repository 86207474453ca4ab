import { MeshError } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import { checkConfigDocument } from './config/check.js';
import { createMesh } from './mesh.js';

/** Each bad variable is rejected at createMesh, with a message naming it and quoting its value. */
const BAD: Array<[string, string]> = [
  ['MESH_CONNECTIONS_PER_ENDPOINT', '0'],
  ['MESH_CONNECTIONS_PER_ENDPOINT', 'abc'],
  ['MESH_CONNECTIONS_PER_ENDPOINT', '1.5'],
  ['MESH_CONNECTIONS_PER_ENDPOINT', '4294967296'],
  ['MESH_PASSTHROUGH', 'maybe'],
  ['MESH_HOST_HEADER', 'upstream'],
  ['MESH_RESOLVE_TIMEOUT', '5 sec'],
  ['MESH_RESOLVE_TIMEOUT', '-1s'],
  ['MESH_LOG_LEVEL', 'verbose'],
  ['MESH_REGISTRY', 'zookeeper'],
  // The config document as the registry, and no document to read: every service silently unknown.
  ['MESH_REGISTRY', 'file'],
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

  it.each([
    ['MESH_ENDPOINT_PAYMENTS', 'MESH_ENDPOINTS_PAYMENTS'],
    ['MESH_ENDPIONTS_PAYMENTS', 'MESH_ENDPOINTS_PAYMENTS'],
    ['MESH_ENDPOINTSPAYMENTS', 'MESH_ENDPOINTS_PAYMENTS'],
    ['MESH_ENDPOINTSS_PAYMENTS', 'MESH_ENDPOINTS_PAYMENTS'],
    ['MESH_ENDPOINT_PAYMENTS_V2', 'MESH_ENDPOINTS_PAYMENTS_V2'],
    ['MESH_ENDPOINT_', 'MESH_ENDPOINTS_<SERVICE>'],
  ])('suggests for a misspelt endpoints prefix, %s, the variable meant: %s', (name, meant) => {
    expect(() => createMesh({ env: { [name]: '127.0.0.1:8080' } })).toThrow(
      `${name}: expected a known MESH_* variable (did you mean "${meant}"?), got "127.0.0.1:8080"`,
    );
  });

  it.each([
    ['MESH_REGISTRY', 'DNS', 'dns'],
    ['MESH_REGISTRY', 'Consul', 'consul'],
    ['MESH_LOG_LEVEL', 'INFO', 'info'],
    ['MESH_LOG_LEVEL', 'wran', 'warn'],
    ['MESH_HOST_HEADER', 'Logical', 'logical'],
  ])('rejects %s=%s naming the word meant (%s)', (name, value, meant) => {
    expect(() => createMesh({ env: { [name]: value } })).toThrow(
      `(did you mean "${meant}"?), got "${value}"`,
    );
  });

  it.each([
    ['MESH_ENDPOINTS_PAYMENTS_', 'MESH_ENDPOINTS_PAYMENTS'],
    ['MESH_ENDPOINTS__PAYMENTS', 'MESH_ENDPOINTS_PAYMENTS'],
    ['MESH_ENDPOINTS___PROTO__', 'MESH_ENDPOINTS_PROTO'],
    ['MESH_ENDPOINTS__', 'MESH_ENDPOINTS_<SERVICE>'],
  ])('rejects %s, a stray _ around the service name, suggesting %s', (name, meant) => {
    // As a document's service name, the suffix starts and ends with a letter or digit: else it
    // defines a service no request reaches (`http://payments/` is not `payments_`).
    expect(() => createMesh({ env: { [name]: '127.0.0.1:8080' } })).toThrow(
      `${name}: expected a variable name MESH_ENDPOINTS_<SERVICE> whose service name starts and ends with a letter or digit (did you mean "${meant}"?), got "127.0.0.1:8080"`,
    );
  });

  it.each([
    ['MESH_ENDPOINTS_LOCALHOST', 'localhost', '`localhost` names are never services (RFC 6761)'],
    ['MESH_ENDPOINTS_API_LOCALHOST', 'api_localhost', undefined],
    ['MESH_ENDPOINTS_123', '123', 'a name whose last label is a number is an IPv4 address to URL parsers'],
    ['MESH_ENDPOINTS_0X1F', '0x1f', 'a name whose last label is a number is an IPv4 address to URL parsers'],
    ['MESH_ENDPOINTS_V2_123', 'v2_123', undefined],
  ])(
    '%s names a service a request can reach (%s), as a document service name must',
    async (name, service, why) => {
      // The same rule, and words, as for the name in a document or in the options.
      if (why !== undefined) {
        const message = `expected a service name a request can reach: ${why}, got "${service}"`;
        expect(() => createMesh({ env: { [name]: '127.0.0.1:8080' } })).toThrow(`${name}: ${message}`);
        expect(() => createMesh({ services: { [service]: { endpoints: '127.0.0.1:8080' } } })).toThrow(
          `options.services.${service}: ${message}`,
        );
        // Blank is unset, as for every variable.
        await createMesh({ env: { [name]: ' ' } }).close();
      } else await createMesh({ env: { [name]: '127.0.0.1:8080' } }).close();
    },
  );

  it.each([
    'MESH_MAX_REQUESTS',
    'MESH_CONCURRENCY_LIMIT',
    'MESH_TIMEOUT',
    'MESH_HEDGE_DELAY',
    'MESH_CIRCUIT_RESET_TIMEOUT',
    'MESH_LB_DECAY_TIME',
  ])(
    'rejects %s=99999999999999999999 (not held exactly by a number) naming the variable and the value',
    (name) => {
      let error: unknown;
      try {
        createMesh({ env: { [name]: '99999999999999999999' } });
      } catch (e) {
        error = e;
      }
      expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
      expect((error as MeshError).details.issues).toEqual([
        {
          field: name,
          expected: expect.stringContaining('99999999999999999999 is beyond 9007199254740991'),
          value: '99999999999999999999',
        },
      ]);
    },
  );

  it.each([
    ['MESH_RETRY_BUDGET_MIN_PER_SECOND', ['retry', 'budget', 'minPerSecond']],
    ['MESH_RATE_LIMIT', ['rateLimit', 'rps']],
  ] as const)(
    'reads %s beyond 2^53 as a config document reads the same number (probe25 config defect 3)',
    (name, path) => {
      for (const digits of ['9007199254740992', '99999999999999999999']) {
        const fromEnv = createMesh({ env: { [name]: digits } });
        const fromDoc = createMesh({
          env: {},
          defaults: JSON.parse(
            `{"${path[0]}":${path.length === 3 ? `{"${path[1]}":{"${path[2]}":${digits}}}` : `{"${path[1]}":${digits}}`}}`,
          ),
        });
        const read = (m: typeof fromEnv): unknown =>
          path.reduce<unknown>(
            (o, k) => (o as Record<string, unknown> | undefined)?.[k],
            m.config('api').resilience,
          );
        expect(read(fromEnv)).toBe(JSON.parse(digits));
        expect(read(fromEnv)).toBe(read(fromDoc));
        void fromEnv.close();
        void fromDoc.close();
      }
    },
  );

  it('states the weight range of a MESH_ENDPOINTS_<SERVICE> endpoint', () => {
    expect(() => createMesh({ env: { MESH_ENDPOINTS_API: '10.0.0.1:80=2000000' } })).toThrow(
      'MESH_ENDPOINTS_API: expected host:port=weight with a weight 0..1000000 (in "10.0.0.1:80=2000000")',
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

  // Blank means unset for a name the mesh does not know too (probe30 config defect 2): a
  // Kubernetes manifest or a compose file often sets a variable to nothing.
  it.each([
    ['MESH_TIMOUT', ''],
    ['MESH_TIMOUT', '   '],
    ['MESH_RETRYS', '\t'],
    ['MESH_FOO', ''],
    ['MESH_ENDPOINT_PAYMENTS', ''],
    ['MESH_ENDPOINTS', ' '],
  ])('treats a blank unknown variable %s=%j as unset', async (name, value) => {
    await createMesh({ env: { [name]: value } }).close();
    expect(checkConfigDocument({}, { env: { [name]: value } })).toEqual([]);
    // Set, it is still an error naming it.
    expect(() => createMesh({ env: { [name]: '1' } })).toThrow(`${name}: expected a known MESH_* variable`);
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
    ).toThrow(/services\.api\.healthCheck\.path: expected [^\n]*\(all layers merged\)/);
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
