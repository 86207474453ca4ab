/**
 * The config validator interprets the schemas (no generated code); TypeBox's own compiler is the
 * oracle. For every declared section and the whole document, values drawn near each schema (most
 * nearly valid, some broken at one place) must get the same yes/no from both, and every "no"
 * must come with at least one issue naming a path.
 */
import { Issues, SCHEMA_KINDS, type TSchema, validator } from '@proxyless/core';
import { telemetrySection } from '@proxyless/telemetry';
import { Kind, TypeRegistry } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CONFIG_ENTRY_SCHEMAS } from '../routing/entries.js';
import * as schemas from './schema.js';

type Schema = TSchema & Record<string, unknown>;

// The oracle needs our two custom kinds; it checks them with the same functions.
TypeRegistry.Set('Duration', SCHEMA_KINDS.Duration);
TypeRegistry.Set('Ratio', SCHEMA_KINDS.Ratio);

const junk: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(undefined),
  fc.constant(null),
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom(0.5, -0.5, 1e9, Number.NaN, Number.POSITIVE_INFINITY),
  fc.string({ maxLength: 3 }),
  fc.boolean(),
  fc.constant([]),
  fc.constant({}),
);

/** Values shaped by `schema`: mostly valid, sometimes wrong in one place. */
function near(schema: TSchema, depth = 0): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: depth === 0 ? 6 : 40, arbitrary: shaped(schema as Schema, depth) },
    { weight: 1, arbitrary: junk },
  );
}

function num(s: Schema, integer: boolean): fc.Arbitrary<unknown> {
  const lo = (s.minimum ?? s.exclusiveMinimum ?? -10) as number;
  const hi = (s.maximum ?? s.exclusiveMaximum ?? lo + 100) as number;
  const ints = fc.integer({ min: Math.floor(lo) - 2, max: Math.ceil(hi) + 2 });
  const edges = fc.constantFrom(lo, hi, lo - 0.5, hi + 0.5, lo + 0.25);
  return integer
    ? fc.oneof(ints, edges)
    : fc.oneof(ints, edges, fc.double({ min: lo - 1, max: hi + 1, noNaN: true }));
}

function shaped(s: Schema, depth: number): fc.Arbitrary<unknown> {
  if (depth > 8) return junk;
  const kind = s['x-enum'] === true ? 'Enum' : (s[Kind] as string);
  switch (kind) {
    case 'Object': {
      const props = (s.properties ?? {}) as Record<string, TSchema>;
      const required = new Set((s.required as string[] | undefined) ?? []);
      const keys = Object.keys(props);
      const body = fc.record(Object.fromEntries(keys.map((k) => [k, near(props[k] as TSchema, depth + 1)])), {
        requiredKeys: keys.filter((k) => required.has(k) && keys.length < 40),
      });
      return fc
        .tuple(
          body,
          fc.oneof(
            { weight: 12, arbitrary: fc.constant(undefined) },
            fc.tuple(fc.constantFrom('extra', 'maxRetires', 'x-y'), junk),
          ),
        )
        .map(([o, extra]) => (extra ? { ...(o as object), [extra[0]]: extra[1] } : o));
    }
    case 'Record': {
      const [pattern, item] = Object.entries(s.patternProperties as Record<string, TSchema>)[0] as [
        string,
        TSchema,
      ];
      // fast-check cannot generate from lookaheads (the service-name pattern's exclusions): keys
      // come from the pattern without them, plus names the lookaheads exclude.
      const key = fc.oneof(
        {
          weight: 5,
          arbitrary: fc.stringMatching(
            new RegExp(pattern === schemas.SERVICE_NAME_PATTERN ? schemas.SERVICE_NAME_CHARS : pattern),
          ),
        },
        fc.constantFrom('', 'Bad Key', '9x', 'localhost', '10.0.0.1', '123'),
      );
      return fc.dictionary(
        key.filter((k) => k !== '__proto__'),
        near(item, depth + 1),
        { maxKeys: 3 },
      );
    }
    case 'Array': {
      const min = (s.minItems as number | undefined) ?? 0;
      return fc.oneof(
        {
          weight: 12,
          arbitrary: fc.array(near(s.items as TSchema, depth + 1), { minLength: min, maxLength: min + 3 }),
        },
        fc.constant([]),
      );
    }
    case 'Union':
      return fc.oneof(...(s.anyOf as TSchema[]).map((v) => shaped(v as Schema, depth + 1)));
    case 'Enum':
      return fc.oneof(
        ...(s.anyOf as TSchema[]).map((v) => shaped(v as Schema, depth + 1)),
        fc.constant('roundrobin'),
      );
    case 'Literal':
      return fc.constant(s.const);
    case 'String':
      return s.pattern !== undefined
        ? fc.oneof(
            { weight: 4, arbitrary: fc.stringMatching(new RegExp(s.pattern as string)) },
            fc.string({ maxLength: 4 }),
          )
        : fc.oneof(
            {
              weight: 12,
              arbitrary: fc.string({ minLength: (s.minLength as number | undefined) ?? 0, maxLength: 6 }),
            },
            fc.constant(''),
          );
    case 'Integer':
      return num(s, true);
    case 'Number':
      return num(s, false);
    case 'Boolean':
      return fc.boolean();
    case 'Duration':
      return fc.oneof(
        num({ minimum: -1, maximum: 120_000 } as unknown as Schema, false),
        fc.constantFrom('250ms', '5s', '1m30s', '5x', '-1s', ' 10 ', '1.5s', '0'),
      );
    case 'Ratio':
      return fc.oneof(
        fc.double({ min: -0.5, max: 1.5, noNaN: true }),
        fc.constantFrom('20%', '150%', 'x%', ' 5 % '),
      );
    default:
      return junk;
  }
}

const SCHEMAS: [string, TSchema][] = [
  ['policy (every policy section)', schemas.policySchema],
  ['service entry', schemas.serviceEntrySchema],
  ['telemetry', telemetrySection],
  ['config document', schemas.configDocumentSchema],
  ...Object.entries(CONFIG_ENTRY_SCHEMAS).map(([k, s]): [string, TSchema] => [`config entry ${k}`, s]),
];

describe('the config validator agrees with TypeBox’s compiler', () => {
  for (const [name, schema] of SCHEMAS) {
    it(name, () => {
      const ours = validator(schema);
      const oracle = TypeCompiler.Compile(schema);
      let rejected = 0;
      fc.assert(
        fc.property(near(schema), (value) => {
          const expected = oracle.Check(value);
          expect(ours.check(value)).toBe(expected);
          const issues = new Issues();
          expect(ours.validate(value, 'doc', issues)).toBe(expected);
          expect(issues.list.length > 0).toBe(!expected);
          for (const i of issues.list) expect(i.field.startsWith('doc')).toBe(true);
          if (!expected) rejected++;
        }),
        { numRuns: 400, seed: 20261130 },
      );
      // Both outcomes were exercised.
      expect(rejected).toBeGreaterThan(0);
      expect(rejected).toBeLessThan(400);
    });
  }

  it('refuses a schema kind it cannot check', () => {
    expect(() => validator({ [Kind]: 'Date', type: 'Date' } as unknown as TSchema)).toThrow(
      /Date is not supported/,
    );
  });
});
