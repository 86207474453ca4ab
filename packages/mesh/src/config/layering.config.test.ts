import { Issues, type TSchema, validator } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import { sameValue } from './effective.js';
import { parsePolicyPatch } from './layers.js';
import { policyProperties } from './schema.js';

type Schema = Record<string, unknown> & {
  properties?: Record<string, Schema>;
  required?: string[];
  anyOf?: Schema[];
};

/** The object form of a section (`Section` is a union of a boolean and the fields), if it has one. */
function fieldsOf(s: Schema): Schema | undefined {
  if (s.properties) return s;
  return s.anyOf?.find((v) => v.properties !== undefined);
}

/** Values tried for a leaf, in order: the first its schema accepts (and is not its default) is used. */
const CANDIDATES: readonly unknown[] = [
  7,
  3,
  2,
  1,
  0,
  0.5,
  65537,
  500,
  '7s',
  '50%',
  'x-probe',
  '/probe',
  'source',
  true,
  false,
  [],
];

/** A valid value of a leaf schema that is not its default (so a default filled in would show). */
function sample(s: Schema): unknown {
  const literals = (s.anyOf ?? []).map((v) => v.const).filter((v) => v !== undefined);
  const check = validator(s as unknown as TSchema).check;
  const found = [...CANDIDATES, ...literals].find((v) => check(v) && !sameValue(v, s.default));
  if (found === undefined) throw new Error(`no sample value for ${JSON.stringify(s)}`);
  return found;
}

/** Every leaf of a section's fields: `[path in the section, a document setting only it]`. */
function singleLeafDocuments(fields: Schema, at: string[] = []): [string, Record<string, unknown>][] {
  const out: [string, Record<string, unknown>][] = [];
  const required = (s: Schema): Record<string, unknown> =>
    Object.fromEntries((s.required ?? []).map((k) => [k, sample(s.properties![k]!)]));
  for (const [k, s] of Object.entries(fields.properties ?? {})) {
    const nested = s.properties ? s : undefined;
    if (nested) {
      for (const [path, doc] of singleLeafDocuments(nested, [...at, k]))
        out.push([path, { ...required(fields), [k]: doc }]);
    } else {
      out.push([[...at, k].join('.'), { ...required(fields), [k]: sample(s) }]);
    }
  }
  return out;
}

function leafCount(v: unknown): number {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return v === undefined ? 0 : 1;
  return Object.values(v).reduce<number>((n, x) => n + leafCount(x), 0);
}

/** Leaves a patch carries beyond those the document names, on purpose. */
function deliberate(section: string, doc: Record<string, unknown>): number {
  // An object turns outlier detection on: `enabled: true` is part of what it says.
  return section === 'outlierDetection' && doc.enabled === undefined ? 1 : 0;
}

describe('a section patch names only what its document names', () => {
  // Defaults are applied once, after the layers are merged: a patch that filled in the built-in
  // value of a field its layer leaves out would override the layers below.
  const cases = Object.entries(policyProperties).flatMap(([section, schema]) => {
    const fields = fieldsOf(schema as unknown as Schema);
    return fields
      ? singleLeafDocuments(fields).map(([leaf, doc]) => [`${section}.${leaf}`, section, doc] as const)
      : [];
  });

  it('covers every section with fields', () => {
    const sections = new Set(cases.map(([, s]) => s));
    for (const s of ['loadBalancer', 'outlierDetection', 'healthCheck', 'retry', 'hedge'])
      expect(sections).toContain(s);
    expect(sections).toContain('faultInjection');
    expect(cases.length).toBeGreaterThan(30);
  });

  it.each(cases)('%s', (_path, section, doc) => {
    const issues = new Issues();
    const patch = parsePolicyPatch({ [section]: doc }, 'x', issues);
    expect(issues.list).toEqual([]);
    const written =
      (patch.balancer as Record<string, unknown> | undefined)?.[section] ??
      (patch.resilience as Record<string, unknown> | undefined)?.[section];
    expect(leafCount(written)).toBe(leafCount(doc) + deliberate(section, doc));
  });
});
