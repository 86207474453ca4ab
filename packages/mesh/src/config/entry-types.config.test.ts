import { describe, expect, it } from 'vitest';
import { MeshError } from '../index.js';
import { checkConfigDocument } from './check.js';
import type { ConfigDocument } from './schema.js';
import { createConfigSource } from './source.js';

// Type-level checks: `configEntries` is typed entry by entry (it was `unknown[]`, so a misspelt
// kind or field in a route compiled and failed only when the mesh read it). `pnpm typecheck`
// fails if any line marked @ts-expect-error compiles.

// @ts-expect-error an entry that is not an object does not compile
const notAnEntry: ConfigDocument = { configEntries: [42] };
// @ts-expect-error a misspelt kind does not compile
const typoKind: ConfigDocument = { configEntries: [{ Kind: 'service-rooter', Name: 'web' }] };
const typoField: ConfigDocument = {
  configEntries: [
    // @ts-expect-error a misspelt match field does not compile
    { Kind: 'service-router', Name: 'web', Routes: [{ Match: { HTTP: { PathPrefx: '/v2' } } }] },
  ],
};
const wrongType: ConfigDocument = {
  // @ts-expect-error a weight written as a string does not compile
  configEntries: [{ Kind: 'service-splitter', Name: 'web', Splits: [{ Weight: '100' }] }],
};
const sourceTypo = () =>
  createConfigSource('kv', {
    // @ts-expect-error a misspelt field in a hand-fed source's entry does not compile
    configEntries: [{ Kind: 'service-defaults', Nmae: 'web' }],
  });
// What a user writes: typed entries of every kind compile.
const good: ConfigDocument = {
  services: { web: { endpoints: '127.0.0.1:1' } },
  configEntries: [
    { Kind: 'service-defaults', Name: 'web', Protocol: 'http' },
    { Kind: 'service-resolver', Name: 'web', Subsets: { v2: { Filter: 'Service.Meta.version == "2"' } } },
    { Kind: 'service-router', Name: 'web', Routes: [{ Match: { HTTP: { PathPrefix: '/v2' } } }] },
    { Kind: 'service-splitter', Name: 'web', Splits: [{ Weight: 100, ServiceSubset: 'v2' }] },
  ],
};

function rejects(doc: unknown): string[] {
  try {
    checkConfigDocument(doc);
  } catch (error) {
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    return ((error as MeshError).details.issues ?? []).map((i) => i.field);
  }
  return [];
}

describe('config entries are typed as the mesh reads them', () => {
  it('what does not compile, the validator rejects; what compiles, it accepts', () => {
    expect(rejects(notAnEntry)).not.toEqual([]);
    expect(rejects(typoKind)).not.toEqual([]);
    expect(rejects(typoField)).not.toEqual([]);
    expect(rejects(wrongType)).not.toEqual([]);
    expect(typeof sourceTypo).toBe('function');
    expect(rejects(good)).toEqual([]);
  });
});
