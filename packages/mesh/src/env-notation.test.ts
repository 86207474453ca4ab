/**
 * Env values and durations read as written (issue #10, probe of the config model): digits are
 * milliseconds for a duration that can also be `false`; a malformed variable is an error even when
 * another variable turns its section off; a duration beyond what a number holds exactly is refused;
 * a value is quoted as written and `2.0` gets the same verdict from every integer variable.
 */
import { type ConfigIssue, Duration, formatDefault, MeshError, Type } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import { checkConfigDocument } from './config/check.js';
import { createMesh } from './mesh.js';

function rejected(fn: () => unknown): readonly ConfigIssue[] {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(MeshError.is(caught, 'MESH_CONFIG_INVALID')).toBe(true);
  return (caught as MeshError).details.issues ?? [];
}

const SVC = { api: { endpoints: '10.0.0.1:80' } };

describe('env values read as written (#10)', () => {
  it.each([
    ['1', 1],
    ['2', 2],
    ['0', 0],
    ['off', 0],
  ])('MESH_TIMEOUT=%s (and MESH_PER_TRY_TIMEOUT) is %d ms, as in a document', async (raw, ms) => {
    const mesh = createMesh({ env: { MESH_TIMEOUT: raw, MESH_PER_TRY_TIMEOUT: raw }, services: SVC });
    try {
      const r = mesh.config('api').resilience;
      expect([r.timeoutMs, r.perTryTimeoutMs]).toEqual([ms, ms]);
    } finally {
      await mesh.close();
    }
  });

  it.each([
    [{ MESH_RATE_LIMIT: 'off', MESH_RATE_LIMIT_BURST: 'abc' }, [['MESH_RATE_LIMIT_BURST', 'abc']]],
    [
      {
        MESH_CIRCUIT_BREAKER: 'false',
        MESH_CIRCUIT_ERROR_THRESHOLD: '500',
        MESH_CIRCUIT_RESET_TIMEOUT: 'soon',
      },
      [
        ['MESH_CIRCUIT_ERROR_THRESHOLD', '500'],
        ['MESH_CIRCUIT_RESET_TIMEOUT', 'soon'],
      ],
    ],
    [{ MESH_OUTLIER_ENABLED: 'false', MESH_OUTLIER_INTERVAL: 'x' }, [['MESH_OUTLIER_INTERVAL', 'x']]],
  ])('a malformed variable is an error even where its section is off: %j', (env, bad) => {
    const issues = rejected(() => createMesh({ env, services: SVC }));
    expect(issues.map((i) => [i.field, i.value])).toEqual(bad);
  });

  it('a valid variable of a section turned off is still only a warning', async () => {
    const mesh = createMesh({
      env: { MESH_CIRCUIT_BREAKER: 'false', MESH_CIRCUIT_ERROR_THRESHOLD: '50' },
      services: SVC,
    });
    try {
      expect(mesh.config('api').resilience.circuitBreaker).toBeUndefined();
    } finally {
      await mesh.close();
    }
  });

  it.each([
    ['MESH_ADMIN_EVENTS', '99999999999999999999'],
    ['MESH_ADMIN_PORT', '9007199254740993'],
    ['MESH_ADMIN_PORT', '70000'],
    ['MESH_CONNECTIONS_PER_ENDPOINT', '2.5'],
    ['MESH_CONNECTIONS_PER_ENDPOINT', '0.0'],
  ])('%s=%s is refused, quoted as written', (name, raw) => {
    const issues = rejected(() => createMesh({ env: { [name]: raw }, services: SVC }));
    expect(issues).toEqual([{ field: name, expected: expect.stringContaining('an integer'), value: raw }]);
  });

  it('2.0 is the integer 2 for every integer variable', async () => {
    const mesh = createMesh({
      env: { MESH_CONNECTIONS_PER_ENDPOINT: '2.0', MESH_ADMIN_EVENTS: '2.0', MESH_RETRIES: '2.0' },
      services: SVC,
    });
    try {
      expect(mesh.config('api').resilience.retry?.maxRetries).toBe(2);
    } finally {
      await mesh.close();
    }
  });
});

describe('durations beyond what a number holds exactly (#10)', () => {
  const big = '1'.padEnd(400, '0');
  it.each([
    ['timeout', '99999999999999999999'],
    ['timeout', `${big}ms`],
    ['timeout', 2 ** 60],
    ['perTryTimeout', big],
  ])('services.api.%s = %j is refused', (field, value) => {
    const issues = rejected(() =>
      checkConfigDocument({ services: { api: { endpoints: '10.0.0.1:80', [field]: value } } }),
    );
    // The message says why: the value is too large to be held exactly (it said only "a duration").
    expect(issues).toEqual([
      {
        field: `services.api.${field}`,
        expected: expect.stringContaining('at most 9007199254740991ms'),
        value,
      },
    ]);
  });

  it.each([
    ['circuitBreaker', 'resetTimeout', '9007199254740993'],
    ['retry', 'retryAfterMax', '99999999999999999999ms'],
  ])('services.api.%s.%s = %j is refused as too large', (section, field, value) => {
    const issues = rejected(() =>
      checkConfigDocument({ services: { api: { endpoints: '10.0.0.1:80', [section]: { [field]: value } } } }),
    );
    expect(issues).toEqual([
      {
        field: `services.api.${section}.${field}`,
        expected: expect.stringContaining('at most 9007199254740991ms'),
        value,
      },
    ]);
  });

  it.each([
    ['circuitBreaker', 'rollingWindow'],
    ['outlierDetection', 'baseEjectionTime'],
  ])('services.api.%s.%s of 400 digits is refused (was Infinity)', (section, field) => {
    const issues = rejected(() =>
      checkConfigDocument({ services: { api: { endpoints: '10.0.0.1:80', [section]: { [field]: big } } } }),
    );
    expect(issues.map((i) => i.field)).toEqual([`services.api.${section}.${field}`]);
  });

  it('MESH_TIMEOUT=99999999999999999999ms is refused naming the variable', () => {
    const issues = rejected(() =>
      createMesh({ env: { MESH_TIMEOUT: '99999999999999999999ms' }, services: SVC }),
    );
    expect(issues).toEqual([
      { field: 'MESH_TIMEOUT', expected: expect.any(String), value: '99999999999999999999ms' },
    ]);
  });

  it('a long duration held exactly still passes (100000h)', () => {
    expect(() =>
      checkConfigDocument({ services: { api: { endpoints: '10.0.0.1:80', timeout: '100000h' } } }),
    ).not.toThrow();
  });
});

describe('one notation, one verdict (#10)', () => {
  it('MESH_HEDGE_DELAY=.5 is 0.5 ms, as MESH_TIMEOUT=.5 and MESH_RETRY_BACKOFF_BASE=.5 are', async () => {
    const mesh = createMesh({
      env: { MESH_HEDGE_DELAY: '.5', MESH_TIMEOUT: '.5', MESH_RETRY_BACKOFF_BASE: '.5' },
      services: SVC,
    });
    try {
      const r = mesh.config('api').resilience;
      expect([r.hedge?.delayMs, r.timeoutMs, r.retry?.backoff.baseMs]).toEqual([0.5, 0.5, 0.5]);
    } finally {
      await mesh.close();
    }
  });

  it('a bare MESH_ENDPOINTS_ is one problem, suggesting the form it needs', () => {
    const issues = rejected(() => createMesh({ env: { MESH_ENDPOINTS_: '10.0.0.1:80' }, services: SVC }));
    expect(issues).toEqual([
      {
        field: 'MESH_ENDPOINTS_',
        expected: 'a known MESH_* variable (did you mean "MESH_ENDPOINTS_<SERVICE>"?)',
        value: '10.0.0.1:80',
      },
    ]);
  });

  it('the docs give a duration-or-percentile default in its unit, as every other duration (50ms)', () => {
    const delay = Type.Union([Duration(), Type.Object({ percentile: Type.Number() })]);
    expect(formatDefault(delay, 50)).toBe('50ms');
    expect(formatDefault(Duration(), 2000)).toBe('2s');
  });
});

describe('section switches and their words, the same for every variable (probe18 B, C)', () => {
  it.each([
    ['MESH_CONCURRENCY_LIMIT', 'no'],
    ['MESH_RATE_LIMIT', 'no'],
    ['MESH_CONCURRENCY_LIMIT', 'disabled'],
    ['MESH_TIMEOUT', 'disabled'],
    ['MESH_TIMEOUT', 'none'],
    ['MESH_CIRCUIT_BREAKER', 'disabled'],
    ['MESH_CIRCUIT_BREAKER', 'none'],
    ['MESH_HEDGE_DELAY', 'no'],
    ['MESH_RETRIES', 'off'],
  ])('%s=%s turns its section off', async (name, value) => {
    const mesh = createMesh({ env: { [name]: value }, services: SVC });
    try {
      const r = mesh.config('api').resilience;
      const section = {
        MESH_CONCURRENCY_LIMIT: r.concurrencyLimit,
        MESH_RATE_LIMIT: r.rateLimit,
        MESH_TIMEOUT: r.timeoutMs === 0 ? undefined : r.timeoutMs,
        MESH_CIRCUIT_BREAKER: r.circuitBreaker,
        MESH_HEDGE_DELAY: r.hedge,
        MESH_RETRIES: r.retry,
      }[name];
      expect(section).toBeUndefined();
    } finally {
      await mesh.close();
    }
  });

  it.each([
    ['MESH_HEDGE_DELAY', 'soon', 'pNN (a latency percentile 1..99.9, e.g. p95) or off'],
    // Refused inside the form it was read into (`{ percentile: 100 }`): still the notation.
    [
      'MESH_HEDGE_DELAY',
      'p100',
      'a duration (e.g. 250ms, 5s, 1m30s or plain milliseconds), pNN (a latency percentile 1..99.9, e.g. p95) or off',
    ],
    // A variable whose off words turn its section off names them with the range it refused.
    ['MESH_RETRIES', '11', 'an integer 0..10 or off (or none, false, no, disabled)'],
    ['MESH_CONCURRENCY_LIMIT', 'true', 'an integer ≥ 1 or off (or none, false, no, disabled)'],
    ['MESH_RATE_LIMIT', '0.0001', 'a number ≥ 0.001 or off (or none, false, no, disabled)'],
    ['MESH_CIRCUIT_BREAKER', 'maybe', 'a boolean (true/false, 1/0, yes/no, on/off)'],
    ['MESH_TIMEOUT', 'later', 'a duration (e.g. 250ms, 5s, 1m30s or plain milliseconds) or off'],
    ['MESH_OUTLIER_ENABLED', 'maybe', 'a boolean (true/false, 1/0, yes/no, on/off)'],
  ])(
    'a bad %s=%s is explained in the variable’s notation, not the document’s shapes',
    (name, value, words) => {
      const [issue] = rejected(() => createMesh({ env: { [name]: value } }));
      expect(issue?.field).toBe(name);
      expect(issue?.value).toBe(value);
      expect(issue?.expected).toContain(words);
      expect(issue?.expected).not.toMatch(/percentile:|an object/);
    },
  );
});
