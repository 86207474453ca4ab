/**
 * A problem of the layers below a valid document (the environment, `createMesh` options), found
 * once the layers are merged, was listed twice at start-up — once checked with the document, once
 * more without it — and headed as the document's ("document fields: …"): an operator looked for it
 * in a file that had none.
 */
import { MeshError } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import { createMesh } from '../mesh.js';
import { checkConfigDocument } from './check.js';
import { createConfigSource } from './source.js';

const VALID = { services: { payments: { endpoints: '127.0.0.1:1' } } };

function errorOf(fn: () => unknown): MeshError {
  try {
    fn();
  } catch (error) {
    if (MeshError.is(error, 'MESH_CONFIG_INVALID')) return error;
    throw error;
  }
  throw new Error('no MESH_CONFIG_INVALID');
}

describe('problems of the layers below a valid document', () => {
  it('an environment that fails merged: listed once, not headed as the document', () => {
    const e = errorOf(() =>
      createMesh({ env: { MESH_RATE_LIMIT_BURST: '5' }, configSource: createConfigSource('kv', VALID) }),
    );
    expect(e.details.issues?.map((i) => i.field)).toEqual(['defaults.rateLimit.rps']);
    expect(e.message).toMatch(/^invalid mesh configuration: defaults\.rateLimit\.rps: /);
    expect(e.message).toContain('MESH_RATE_LIMIT_BURST=5');
    expect(e.message).not.toContain('document fields');
  });

  it('options that fail merged: listed once, not headed as the document', () => {
    const e = errorOf(() =>
      createMesh({
        env: {},
        defaults: { circuitBreaker: { maxPendingRequests: 5 } },
        configSource: createConfigSource('kv', VALID),
      }),
    );
    expect(e.details.issues?.map((i) => i.field)).toEqual(['defaults.circuitBreaker.maxPendingRequests']);
    expect(e.message).not.toContain('document fields');
  });

  it('the same without a document: the same single problem', () => {
    const e = errorOf(() => createMesh({ env: { MESH_RATE_LIMIT_BURST: '5' } }));
    expect(e.details.issues?.map((i) => i.field)).toEqual(['defaults.rateLimit.rps']);
  });

  it('a document that causes the problem once merged is still named, its problem listed once', () => {
    // Valid on its own; below the 100ms base the environment sets once merged.
    const doc = { services: { s: { endpoints: '127.0.0.1:2', retry: { backoff: { max: '50ms' } } } } };
    const e = errorOf(() =>
      createMesh({ env: { MESH_RETRY_BACKOFF_BASE: '100ms' }, configSource: createConfigSource('kv', doc) }),
    );
    expect(e.details.issues?.map((i) => i.field)).toEqual(['services.s.retry.backoff.max']);
    expect(e.message).toContain('document fields: ');
  });

  it('a document with its own problem over a failing environment: both, each once, the document named', () => {
    const doc = { services: { s: { endpoints: '127.0.0.1:2', retry: { maxRetries: 99 } } } };
    const e = errorOf(() =>
      createMesh({ env: { MESH_RATE_LIMIT_BURST: '5' }, configSource: createConfigSource('kv', doc) }),
    );
    const fields = e.details.issues?.map((i) => i.field) ?? [];
    expect(new Set(fields).size).toBe(fields.length);
    expect(fields).toContain('services.s.retry.maxRetries');
    expect(fields).toContain('defaults.rateLimit.rps');
    expect(e.message).toContain('document fields: ');
  });

  it('checkConfigDocument: a valid document over a failing environment is not blamed', () => {
    const e = errorOf(() => checkConfigDocument(VALID, { env: { MESH_RATE_LIMIT_BURST: '5' } }));
    expect(e.details.issues?.map((i) => i.field)).toEqual(['defaults.rateLimit.rps']);
    expect(e.message).toMatch(/^invalid mesh configuration: /);
  });
});
