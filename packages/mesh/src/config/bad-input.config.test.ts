import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ConfigIssue, Issues, MeshError } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import { createMesh } from '../mesh.js';
import { DOCUMENTS, type DocCase, svc } from './bad-documents.fixture.js';
import { envConfigSource, optionsConfigSource } from './source.js';
import { ConfigStore } from './store.js';

/** [variable, value] */
const ENV: Array<[string, string]> = [
  ['MESH_TIMEOUT', 'soon'],
  ['MESH_TIMEOUT', '-5ms'],
  ['MESH_PER_TRY_TIMEOUT', 'later'],
  ['MESH_RETRIES', 'three'],
  ['MESH_RETRIES', '11'],
  ['MESH_RETRIES', '-1'],
  ['MESH_RETRY_ON', '5xx,teapot'],
  ['MESH_RETRY_STATUS_CODES', '429,abc'],
  ['MESH_RETRY_STATUS_CODES', '700'],
  ['MESH_RETRY_BUDGET', '2'],
  ['MESH_RETRY_BUDGET', '150%'],
  ['MESH_RETRY_BUDGET_MIN_PER_SECOND', '-1'],
  ['MESH_RETRY_BACKOFF_BASE', 'fast'],
  ['MESH_RETRY_BACKOFF_MAX', 'slow'],
  ['MESH_HEDGE_DELAY', 'p0'],
  ['MESH_HEDGE_DELAY', 'soon'],
  ['MESH_CIRCUIT_BREAKER', 'maybe'],
  ['MESH_CIRCUIT_ERROR_THRESHOLD', '0'],
  ['MESH_CIRCUIT_RESET_TIMEOUT', 'x'],
  ['MESH_MAX_REQUESTS', '0'],
  ['MESH_CONCURRENCY_LIMIT', '0'],
  ['MESH_CONCURRENCY_LIMIT', 'lots'],
  ['MESH_RATE_LIMIT', '0'],
  ['MESH_RATE_LIMIT_BURST', '0'],
  ['MESH_LB_POLICY', 'round_robbin'],
  ['MESH_LB_CHOICE_COUNT', '1'],
  ['MESH_LB_DECAY_TIME', 'x'],
  ['MESH_LB_PANIC_THRESHOLD', '101'],
  ['MESH_LB_LOCALITY_MIN_HEALTHY_PERCENT', 'most'],
  ['MESH_LB_SLOW_START_WINDOW', '0'],
  ['MESH_LB_CONNECT_BACKOFF_INITIAL', '0'],
  ['MESH_CONNECT_TIMEOUT', 'off'],
  ['MESH_CONNECT_TIMEOUT', '0'],
  ['MESH_LB_CONNECT_BACKOFF_MAX', 'later'],
  ['MESH_OUTLIER_ENABLED', 'maybe'],
  ['MESH_OUTLIER_CONSECUTIVE_5XX', '-1'],
  ['MESH_OUTLIER_INTERVAL', 'x'],
  ['MESH_OUTLIER_BASE_EJECTION_TIME', '0'],
  ['MESH_OUTLIER_MAX_EJECTION_TIME', 'x'],
  ['MESH_OUTLIER_MAX_EJECTION_PERCENT', '200'],
  ['MESH_RETRYS', '2'],
];

function store(): ConfigStore {
  const issues = new Issues();
  const s = new ConfigStore(optionsConfigSource({}).current(), envConfigSource({}).current(), issues);
  expect(issues.list).toEqual([]);
  return s;
}

/**
 * The issue names the field by its full path, a rule checked on the merged layers too
 * (`services.api.healthCheck.timeout`, not `services.api (all layers merged): healthCheck.timeout`:
 * probe30 config defect 3); that the layers were merged is said in what it expects.
 */
function matches(i: ConfigIssue, path: string): boolean {
  return i.field === path;
}

/** Rules across fields broken by the defaults alone: named under `defaults.`, once. */
const DEFAULTS_MERGED: DocCase[] = [
  [
    'defaults: healthCheck.timeout above interval',
    { defaults: { healthCheck: { path: '/h', interval: '1s', timeout: '2s' } }, services: { api: {} } },
    'defaults.healthCheck.timeout',
    '2s',
  ],
  [
    'defaults: healthCheck without path',
    { defaults: { healthCheck: { interval: '1s' } } },
    'defaults.healthCheck.path',
    undefined,
  ],
  [
    'defaults: maxPendingRequests without a queue',
    { defaults: { circuitBreaker: { maxPendingRequests: 5 } }, services: { api: {}, web: {} } },
    'defaults.circuitBreaker.maxPendingRequests',
    5,
  ],
];

describe('bad input (#10)', () => {
  it('has at least 100 malformed documents and env values', () => {
    expect(DOCUMENTS.length + ENV.length).toBeGreaterThanOrEqual(100);
  });

  it.each([...DOCUMENTS, ...DEFAULTS_MERGED])(
    'rejects %s, naming the path and the value, applying nothing',
    (_what, doc, path, value) => {
      const s = store();
      const before = s.effective('api');
      const result = s.validate({ source: 'file', version: 2, document: doc }, 'config file test.json');
      expect(result).toBeInstanceOf(MeshError);
      const error = result as MeshError;
      expect(error.code).toBe('MESH_CONFIG_INVALID');
      const issue = error.details.issues?.find((i) => matches(i, path));
      expect(issue, `${path} in ${error.message}`).toBeDefined();
      // Said once, however many services inherit it.
      expect(error.details.issues?.filter((i) => matches(i, path))).toHaveLength(1);
      expect(issue?.value).toEqual(value);
      if (value !== undefined) expect(error.message).toContain(JSON.stringify(value));
      // Nothing half-applied: the store still serves what it served before.
      expect(s.document).toBeUndefined();
      expect(s.effective('api')).toEqual(before);
    },
  );

  it.each(ENV)('rejects %s=%s at createMesh, naming the variable and the value', (name, value) => {
    let error: unknown;
    try {
      createMesh({ env: { [name]: value } });
    } catch (e) {
      error = e;
    }
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    const issues = (error as MeshError).details.issues ?? [];
    expect(issues.find((i) => i.field === name)?.value).toBe(value);
    expect((error as MeshError).message).toContain(`${name}: expected`);
  });

  it('suggests the nearest valid name for an unknown key', () => {
    const r = store().validate(
      { source: 'file', version: 1, document: svc({ retry: { maxRetires: 2 } }) },
      'doc',
    );
    expect((r as MeshError).message).toContain('did you mean "maxRetries"');
    const e = store().validate({ source: 'file', version: 1, document: { servces: {} } }, 'doc');
    expect((e as MeshError).message).toContain('did you mean "services"');
  });

  it('reports every problem of a document at once', () => {
    const r = store().validate(
      {
        source: 'file',
        version: 1,
        document: svc({
          timeout: 'soon',
          retry: { maxRetries: 'x', backoff: { base: '1s', max: '1ms' } },
          hedge: { maxHedges: 0 },
        }),
      },
      'doc',
    ) as MeshError;
    expect(r.details.issues?.map((i) => i.field).sort()).toEqual([
      'services.api.hedge.maxHedges',
      'services.api.retry.backoff.max',
      'services.api.retry.maxRetries',
      'services.api.timeout',
    ]);
  });

  it('reports the config file problems with those of the env and options layers, at once', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mesh-all-at-once-'));
    const file = join(dir, 'mesh.json');
    writeFileSync(file, JSON.stringify({ services: { api: { retry: { maxRetries: 99 } } } }));
    const fieldsOf = (options: Parameters<typeof createMesh>[0]): string[] => {
      try {
        createMesh(options);
      } catch (e) {
        expect(MeshError.is(e, 'MESH_CONFIG_INVALID')).toBe(true);
        return ((e as MeshError).details.issues ?? []).map((i) => i.field);
      }
      throw new Error('createMesh accepted an invalid configuration');
    };
    try {
      // A bad variable and a bad file.
      expect(fieldsOf({ env: { MESH_TIMEOUT: 'soon', MESH_CONFIG_FILE: file } })).toEqual([
        'MESH_TIMEOUT',
        'services.api.retry.maxRetries',
      ]);
      // A bad options layer and a bad file.
      expect(
        fieldsOf({
          env: { MESH_CONFIG_FILE: file },
          services: { b: { retry: { maxRetires: 1 } as never } },
        }),
      ).toEqual(['options.services.b.retry.maxRetires', 'services.api.retry.maxRetries']);
      // A rule across the env layers (a burst without a rate) and a bad file.
      const merged = fieldsOf({ env: { MESH_RATE_LIMIT_BURST: '5', MESH_CONFIG_FILE: file } });
      expect(merged).toContain('services.api.retry.maxRetries');
      expect(merged.some((f) => f.endsWith('rateLimit.rps'))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
