/**
 * Duration spellings as the published JSON Schema and the mesh read them: each accepted by both
 * or rejected by both. Microseconds take either micro sign, as Go's time.ParseDuration does.
 */
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { checkConfigDocument, createMesh } from 'proxyless';
import { describe, expect, it } from 'vitest';
import { SCHEMA_FILE } from '../../../scripts/gen-config-docs.js';

const validate = new Ajv({ strict: true, allErrors: true }).compile(
  JSON.parse(readFileSync(new URL(`../../../${SCHEMA_FILE}`, import.meta.url), 'utf8')),
);

describe('duration spellings: the JSON Schema and the mesh agree', () => {
  const doc = (timeout: unknown) => ({ defaults: { timeout } });
  it.each([
    ['1500\u00b5s (U+00B5 micro sign)', '1500\u00b5s', 1.5],
    ['1500\u03bcs (U+03BC Greek mu)', '1500\u03bcs', 1.5],
    ['1ms500\u03bcs', '1ms500\u03bcs', 1.5],
    ['1500us', '1500us', 1.5],
  ])('accepts %s', async (_, timeout, ms) => {
    expect(validate(doc(timeout))).toBe(true);
    expect(() => checkConfigDocument(doc(timeout))).not.toThrow();
    // The env reads the same grammar, to the same value.
    const mesh = createMesh({ env: { MESH_TIMEOUT: timeout } });
    try {
      expect(mesh.config('api').resilience.timeoutMs).toBe(ms);
    } finally {
      await mesh.close();
    }
  });
  it.each(['1500Ms', '1500\u039cs', '1500\u00b5', '5 s'])('rejects %s', (timeout) => {
    expect(validate(doc(timeout))).toBe(false);
    expect(() => checkConfigDocument(doc(timeout))).toThrow(/defaults\.timeout/);
  });
});
