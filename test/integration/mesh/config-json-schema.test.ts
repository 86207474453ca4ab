/**
 * docs/config-file.schema.json as a user takes it: into a standard JSON Schema validator (Ajv, in
 * its strict mode), an editor or a CI check. It must compile there as it is, accept every document
 * the mesh accepts, and reject the malformed ones, except those whose rule JSON Schema cannot state.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { checkConfigDocument } from 'proxyless';
import { describe, expect, it } from 'vitest';
import { DOCUMENTS } from '../../../packages/mesh/src/config/bad-documents.fixture.js';
import { SCHEMA_FILE } from '../../../scripts/gen-config-docs.js';

const schema = JSON.parse(readFileSync(new URL(`../../../${SCHEMA_FILE}`, import.meta.url), 'utf8')) as {
  properties: { defaults: { properties: Record<string, unknown> } };
};

function compile(): (doc: unknown) => boolean {
  const warnings: string[] = [];
  const log = (...args: unknown[]): void => {
    warnings.push(args.join(' '));
  };
  // `strict: true`: unknown keywords, and loose types and tuples, are errors, not warnings.
  const validate = new Ajv({ strict: true, allErrors: true, logger: { log, warn: log, error: log } }).compile(
    schema,
  );
  expect(warnings).toEqual([]);
  return (doc) => validate(doc) === true;
}

function meshAccepts(doc: unknown): boolean {
  try {
    checkConfigDocument(doc);
    return true;
  } catch {
    return false;
  }
}

/** The config documents shown in the docs (```json blocks whose keys are a document's). */
function docsExamples(): Array<[string, unknown]> {
  const dir = new URL('../../../docs/', import.meta.url);
  const out: Array<[string, unknown]> = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.md'))) {
    const text = readFileSync(new URL(file, dir), 'utf8');
    for (const m of text.matchAll(/```jsonc?\n([\s\S]*?)```/g)) {
      let value: Record<string, unknown>;
      try {
        value = JSON.parse(m[1] as string) as Record<string, unknown>;
      } catch {
        continue; // a fragment (several config entries, a log line), not a whole JSON value
      }
      if (typeof value !== 'object' || value === null || Array.isArray(value)) continue;
      const keys = Object.keys(value);
      if (
        keys.length > 0 &&
        keys.every((k) => ['$schema', 'defaults', 'services', 'configEntries'].includes(k))
      )
        out.push([file, value]);
      else if (keys.length > 0 && keys.every((k) => k in schema.properties.defaults.properties))
        out.push([
          `${file} (a policy section)`,
          { services: { api: { endpoints: '127.0.0.1:1', ...value } } },
        ]);
    }
  }
  return out;
}

/**
 * Malformed documents the schema accepts, by the table's name, and why: rules across fields, and
 * rules inside a string's meaning. The mesh's validator rejects each of them (bad-input test).
 */
const BEYOND_JSON_SCHEMA: Record<string, string> = {
  'endpoint without port': 'the `host:port[=weight]` list inside a string',
  'retry.backoff.max below base': 'two fields compared (durations that may be strings)',
  'retry.budget.ratio 150%': 'the value of a percentage string',
  'rollingWindow 5ms': 'the least duration of a duration string',
  'ring min above max': 'two fields compared',
  'loadBalancer.tableSize not prime': 'primality',
  'maxEjectionTime below base': 'two fields compared',
  'connectBackoff.max below initial': 'two fields compared (durations that may be strings)',
  'healthCheck without path anywhere': 'a field required in some layer (defaults or the service)',
  'healthCheck.timeout above interval': 'two fields compared',
  'maxPendingRequests without a queue': 'a field that needs another section',
  'rateLimit without rps in any layer': 'a field required in some layer (defaults or the service)',
  'service names differing only in case': 'keys compared with each other, case-folded',
};

describe('docs/config-file.schema.json in a standard validator (#10)', () => {
  it('compiles in Ajv strict mode, with no unknown keyword or loose type', () => {
    expect(typeof compile()).toBe('function');
  });

  it('finds the example documents of the docs', () => {
    expect(docsExamples().map(([file]) => file)).toEqual(
      expect.arrayContaining(['configuration.md', 'load-balancing.md', 'traffic-management.md']),
    );
  });

  it.each(docsExamples())('accepts the example document of %s, as the mesh does', (_file, doc) => {
    expect(meshAccepts(doc)).toBe(true);
    expect(compile()(doc)).toBe(true);
  });

  it('agrees with the mesh on `true` and `false` for every section', () => {
    const validate = compile();
    for (const key of Object.keys(schema.properties.defaults.properties)) {
      for (const value of [true, false]) {
        const doc = { defaults: { [key]: value } };
        expect({ key, value, schema: validate(doc) }).toEqual({ key, value, schema: meshAccepts(doc) });
      }
    }
  });

  it('rejects every malformed document of the bad-input table but those it cannot judge', () => {
    const validate = compile();
    const accepted = DOCUMENTS.filter(([, doc]) => validate(doc)).map(([what]) => what);
    expect(accepted.sort()).toEqual(Object.keys(BEYOND_JSON_SCHEMA).sort());
    // The mesh rejects them all.
    for (const [what, doc] of DOCUMENTS)
      expect({ what, accepted: meshAccepts(doc) }).toEqual({ what, accepted: false });
  });
});
