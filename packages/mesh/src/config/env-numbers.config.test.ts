/**
 * An environment variable's number is read as JSON reads the same text (docs/configuration.md,
 * "Environment variables"; probe30 config defect 1): `1e3` is 1000, as `rps: 1e3` in a document,
 * and what JSON refuses (`010`, `.5`, `5.`, `+5`) is an error naming the variable and its value,
 * not a guess. A duration also takes plain milliseconds in its own notation (`250`, `.5`).
 */
import { type ConfigIssue, MeshError } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import { createMesh } from '../mesh.js';
import { checkConfigDocument } from './check.js';

const SVC = { api: { endpoints: '10.0.0.1:80' } };

/** [variable, value, document path it sets, the value in force] */
const ACCEPTED: Array<[string, string, readonly string[], unknown]> = [
  ['MESH_RATE_LIMIT', '1e3', ['rateLimit', 'rps'], 1000],
  ['MESH_RATE_LIMIT', '1e2', ['rateLimit', 'rps'], 100],
  ['MESH_RATE_LIMIT', '2.5E+1', ['rateLimit', 'rps'], 25],
  ['MESH_RATE_LIMIT', ' 0.5 ', ['rateLimit', 'rps'], 0.5],
  ['MESH_MAX_REQUESTS', '1e3', ['circuitBreaker', 'maxRequests'], 1000],
  ['MESH_MAX_REQUESTS', '2.0', ['circuitBreaker', 'maxRequests'], 2],
  ['MESH_MAX_REQUESTS', '5e0', ['circuitBreaker', 'maxRequests'], 5],
  ['MESH_RETRIES', '1e1', ['retry', 'maxRetries'], 10],
  ['MESH_CONCURRENCY_LIMIT', '1E2', ['concurrencyLimit', 'max'], 100],
  ['MESH_RETRY_BUDGET', '2e-1', ['retry', 'budget', 'ratio'], 0.2],
  ['MESH_RETRY_STATUS_CODES', '4.29e2,503', ['retry', 'retriableStatusCodes'], [429, 503]],
  // A duration: a JSON number of milliseconds, or its own notation's plain milliseconds.
  ['MESH_TIMEOUT', '1e3', ['timeoutMs'], 1000],
  ['MESH_TIMEOUT', '.5', ['timeoutMs'], 0.5],
  ['MESH_TIMEOUT', '010', ['timeoutMs'], 10],
  ['MESH_HEDGE_DELAY', '1e2', ['hedge', 'delayMs'], 100],
  ['MESH_CIRCUIT_RESET_TIMEOUT', '3e4', ['circuitBreaker', 'resetTimeoutMs'], 30_000],
];

/** [variable, value] */
const REFUSED: Array<[string, string]> = [
  ['MESH_RATE_LIMIT', '010'],
  ['MESH_RATE_LIMIT', '.5'],
  ['MESH_RATE_LIMIT', '5.'],
  ['MESH_RATE_LIMIT', '+5'],
  ['MESH_RATE_LIMIT', '0x10'],
  ['MESH_RATE_LIMIT', 'Infinity'],
  ['MESH_RATE_LIMIT', '1_000'],
  ['MESH_MAX_REQUESTS', '010'],
  ['MESH_MAX_REQUESTS', '1.5e0'],
  ['MESH_MAX_REQUESTS', '+5'],
  ['MESH_RATE_LIMIT_BURST', '007'],
  ['MESH_RETRIES', '02'],
  ['MESH_RETRY_BUDGET', '.5'],
  ['MESH_RETRY_BUDGET_MIN_PER_SECOND', '.5'],
  ['MESH_CIRCUIT_ERROR_THRESHOLD', '050'],
  ['MESH_LB_PANIC_THRESHOLD', '5.'],
  ['MESH_OUTLIER_CONSECUTIVE_5XX', '05'],
  ['MESH_RETRY_STATUS_CODES', '0503'],
  ['MESH_CONNECTIONS_PER_ENDPOINT', '010'],
  ['MESH_CONNECTIONS_PER_ENDPOINT', '+5'],
  ['MESH_TIMEOUT', '+5'],
];

function issuesOf(fn: () => unknown): readonly ConfigIssue[] {
  try {
    fn();
  } catch (error) {
    if (MeshError.is(error, 'MESH_CONFIG_INVALID')) return error.details.issues ?? [];
    throw error;
  }
  return [];
}

describe('env numbers follow JSON number grammar', () => {
  it.each(ACCEPTED)('%s=%s is read as JSON reads it', async (name, raw, path, value) => {
    const mesh = createMesh({ env: { [name]: raw }, services: SVC });
    try {
      const r = path.reduce<unknown>(
        (o, k) => (o as Record<string, unknown> | undefined)?.[k],
        mesh.config('api').resilience,
      );
      expect(r).toEqual(value);
    } finally {
      await mesh.close();
    }
  });

  it.each(REFUSED)('%s=%s is an error naming the variable and quoting the value', (name, raw) => {
    for (const check of [
      () => createMesh({ env: { [name]: raw }, services: SVC }),
      () => checkConfigDocument({}, { env: { [name]: raw } }),
    ]) {
      const issues = issuesOf(check);
      expect(issues).toEqual([{ field: name, expected: expect.any(String), value: raw }]);
    }
  });

  it('says how JSON writes the number it refuses', () => {
    expect(() => createMesh({ env: { MESH_RATE_LIMIT: '.5' }, services: SVC })).toThrow(
      'MESH_RATE_LIMIT: expected a number ≥ 0.001 or off (or none, false, no, disabled); numbers are read as JSON writes them: 0.5, not .5, got ".5"',
    );
    expect(() => createMesh({ env: { MESH_MAX_REQUESTS: '010' }, services: SVC })).toThrow(
      /MESH_MAX_REQUESTS: expected an integer ≥ 1; numbers are read as JSON writes them: 10, not 010, got "010"/,
    );
  });

  it('reads the same number as a config document does', async () => {
    const fromEnv = createMesh({ env: { MESH_RATE_LIMIT: '1e3' }, services: SVC });
    const fromDoc = createMesh({ env: {}, defaults: JSON.parse('{"rateLimit":{"rps":1e3}}'), services: SVC });
    try {
      expect(fromEnv.config('api').resilience.rateLimit).toEqual(fromDoc.config('api').resilience.rateLimit);
    } finally {
      await fromEnv.close();
      await fromDoc.close();
    }
  });
});
