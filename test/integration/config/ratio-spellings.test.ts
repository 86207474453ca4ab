/**
 * A ratio field (`retry.budget.ratio`) as the published JSON Schema and the mesh read it: one list
 * of spellings, each accepted by both or rejected by both. The probe found strings the mesh took
 * and Ajv refused ("0.2", "1e-1", ".5%").
 */
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { checkConfigDocument } from 'proxyless';
import { describe, expect, it } from 'vitest';
import { SCHEMA_FILE } from '../../../scripts/gen-config-docs.js';

const validate = new Ajv({ strict: true, allErrors: true }).compile(
  JSON.parse(readFileSync(new URL(`../../../${SCHEMA_FILE}`, import.meta.url), 'utf8')),
);

const ACCEPTED: unknown[] = [0, 0.2, 1, '20%', '0%', '100%', '0.5%', '12.25%', ' 20% ', '20 %'];
const REJECTED: unknown[] = [
  // A fraction is a JSON number, not a string.
  '0.2',
  '.2',
  ' 0.2 ',
  '1e-1',
  '1',
  // A percentage is digits, an optional fraction with digits, then `%`.
  '.5%',
  '5.%',
  '1e1%',
  '-5%',
  '%',
  '',
  '20%%',
  -0.1,
  1.5,
  true,
  null,
];

describe('ratio spellings: the JSON Schema and the mesh agree (probe2 ajv-spot.ts)', () => {
  const doc = (ratio: unknown) => ({ defaults: { retry: { budget: { ratio } } } });
  it.each(ACCEPTED.map((v) => [JSON.stringify(v), v]))('both accept %s', (_, v) => {
    expect(validate(doc(v))).toBe(true);
    expect(() => checkConfigDocument(doc(v))).not.toThrow();
  });
  it.each(REJECTED.map((v) => [JSON.stringify(v), v]))('both reject %s', (_, v) => {
    expect(validate(doc(v))).toBe(false);
    expect(() => checkConfigDocument(doc(v))).toThrow(/defaults\.retry\.budget\.ratio: expected a ratio/);
  });
  it('leaves only the range of a percentage string to the mesh (documented as beyond the schema)', () => {
    expect(validate(doc('101%'))).toBe(true);
    expect(() => checkConfigDocument(doc('101%'))).toThrow(/defaults\.retry\.budget\.ratio/);
  });
  it('reads an env decimal as a ratio still (MESH_RETRY_BUDGET=0.2 is a number once decoded)', () => {
    expect(() => checkConfigDocument({}, { env: { MESH_RETRY_BUDGET: '0.25' } })).not.toThrow();
    expect(() => checkConfigDocument({}, { env: { MESH_RETRY_BUDGET: '25%' } })).not.toThrow();
    expect(() => checkConfigDocument({}, { env: { MESH_RETRY_BUDGET: 'lots' } })).toThrow(
      /MESH_RETRY_BUDGET/,
    );
  });
});
