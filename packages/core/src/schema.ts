import {
  type IntegerOptions,
  Kind,
  type SchemaOptions,
  type Static,
  Array as TArray,
  Boolean as TBoolean,
  Integer as TInteger,
  type TInteger as TIntegerSchema,
  type TLiteral,
  Literal as TLiteral_,
  Number as TNumber,
  type TObject,
  Object as TObject_,
  Optional as TOptional,
  type TProperties,
  Record as TRecord,
  type TSchema,
  String as TString,
  type TUnion,
  Union as TUnion_,
  Unknown as TUnknown,
  type TUnsafe,
  Unsafe as TUnsafe_,
} from '@sinclair/typebox';
import { quote } from './errors.js';
import type { Issues } from './issues.js';
import { closestName, PERCENT_PATTERN } from './parse.js';
import {
  absentAllowed,
  accepts,
  assertSupported,
  at,
  durationProblem,
  isPlain,
  isSchema,
  kindOf,
  recordOf,
  type Schema,
} from './schema-check.js';
import { FOREIGN_NAMES, type ForeignNames, unknownKeyExpected } from './unknown-key.js';

/**
 * Config sections are TypeBox schemas: one declaration per section gives the TypeScript type
 * (`Static<typeof section>`), the validator, the JSON Schema (the schema object itself), the
 * defaults (`default`, with the rationale in `description`) and the environment variable of each
 * field (`x-env`). This module adds what JSON Schema cannot say: durations and ratios in our
 * notation, error messages that name the path and quote the value, and (schema-env.ts) the env
 * mapping.
 *
 * Validation interprets the schema (`accepts` in schema-check.ts, `walk` below) instead of compiling it with
 * TypeBox's code generator: a config document is checked once per change, so generated code never
 * pays back its compile time, and leaving the compiler out of the bundle takes about 100 KB off
 * what every process loads at start-up. Only the builders in use are imported, for the same
 * reason (TypeBox's `Type` namespace pulls in its whole type system). A property test checks the
 * interpreter against TypeBox's compiler on every declared section.
 */

/**
 * TypeBox's builders used by the section declarations in every package (one copy of TypeBox,
 * bundled here, and only these parts of it).
 */
export const Type = {
  Array: TArray,
  Boolean: TBoolean,
  Integer: SafeInteger,
  Literal: TLiteral_,
  Number: TNumber,
  Object: TObject_,
  Optional: TOptional,
  Record: TRecord,
  String: TString,
  Union: TUnion_,
  Unknown: TUnknown,
  Unsafe: TUnsafe_,
} as const;

/**
 * An integer field: TypeBox's `Integer`, bounded by ±`Number.MAX_SAFE_INTEGER` where the
 * declaration gives no bound. A number beyond it is not the integer written (`2 ** 53 + 1` reads
 * as `2 ** 53`), so the document, the JSON Schema and the env mapping all refuse it.
 */
function SafeInteger(options: IntegerOptions = {}): TIntegerSchema {
  return TInteger({
    ...options,
    minimum: options.minimum ?? -Number.MAX_SAFE_INTEGER,
    maximum: options.maximum ?? Number.MAX_SAFE_INTEGER,
  });
}

/** Key under which a field keeps its full environment binding (symbols stay out of the JSON Schema). */
export const kEnv: unique symbol = Symbol.for('proxyless.schema.env');

/** An environment variable that sets one field (or turns a section on or off). */
export interface EnvBinding {
  readonly name: string;
  /** For the docs table; derived from the schema when absent. */
  readonly type?: string;
  /** For the docs table; the field's `default` when absent. */
  readonly defaultValue?: string;
  readonly description: string;
  /**
   * Raw string → the value at this path of the document (default: by the schema's kind). A number
   * the field takes (`1e3`, or a duration's plain milliseconds) is read by the schema's kind
   * instead, as for every variable: this decodes the rest (`p95`).
   */
  readonly decode?: (raw: string) => unknown;
  /** `off`, `none`, `false`, `no` or `disabled` set the whole section (first path segment) to `false`. */
  readonly offTurnsSectionOff?: boolean;
}

/** Options spreading an env binding into a field's schema options. */
export function env(
  name: string,
  description: string,
  more: Omit<EnvBinding, 'name' | 'description'> = {},
): { 'x-env': string; [kEnv]: EnvBinding } {
  return { 'x-env': name, [kEnv]: { name, description, ...more } };
}

const DURATION_RE = '^\\s*(\\d+(\\.\\d+)?|((\\d+(\\.\\d+)?|\\.\\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h))+)\\s*$';

function rangeText(kind: string, lo: number | undefined, hi: number | undefined, unit = ''): string {
  // The safe-integer bounds every integer has are said once, where a value passes them.
  const min = lo === -Number.MAX_SAFE_INTEGER ? undefined : lo;
  const max = hi === Number.MAX_SAFE_INTEGER ? undefined : hi;
  if (min !== undefined && max !== undefined) return `${kind} ${min}${unit}..${max}${unit}`;
  if (min !== undefined) return `${kind} ≥ ${min}${unit}`;
  if (max !== undefined) return `${kind} ≤ ${max}${unit}`;
  return kind;
}

/** A duration: milliseconds as a number, or `250ms`, `5s`, `1m30s`, plain digits (= ms). */
export function Duration(
  options: SchemaOptions & { min?: number; max?: number } = {},
): TUnsafe<number | string> {
  const { min, max, ...rest } = options;
  return Type.Unsafe<number | string>({
    [Kind]: 'Duration',
    anyOf: [
      // Beyond MAX_SAFE_INTEGER ms a number is not the duration written (parseDuration refuses it).
      { type: 'number', minimum: min ?? 0, maximum: max ?? Number.MAX_SAFE_INTEGER },
      { type: 'string', pattern: DURATION_RE },
    ],
    ...(min !== undefined ? { 'x-min-ms': min } : {}),
    ...(max !== undefined ? { 'x-max-ms': max } : {}),
    expected: `${rangeText('a duration', min, max, 'ms')} (e.g. 250ms, 5s, 1m30s or plain milliseconds)`,
    ...rest,
  });
}

/** A ratio 0..1, or a percentage string (`"20%"`). */
export function Ratio(options: SchemaOptions = {}): TUnsafe<number | string> {
  return Type.Unsafe<number | string>({
    [Kind]: 'Ratio',
    anyOf: [
      { type: 'number', minimum: 0, maximum: 1 },
      { type: 'string', pattern: PERCENT_PATTERN },
    ],
    expected: 'a ratio 0..1 or a percentage like "20%"',
    ...options,
  });
}

/** One of a fixed list of strings (`round_robin`, …); a near miss gets a suggestion. */
export function OneOf<const T extends readonly string[]>(
  values: T,
  options: SchemaOptions = {},
): TUnion<TLiteral<T[number]>[]> {
  return Type.Union(
    values.map((v) => Type.Literal(v)),
    { expected: `one of ${values.join(', ')}`, 'x-enum': true, ...options },
  );
}

/** The fields of a section: an object whose unknown keys are errors. */
export function Fields<T extends TProperties>(properties: T, options: SchemaOptions = {}): TObject<T> {
  return Type.Object(properties, { additionalProperties: false, ...options });
}

/**
 * A policy section: `false` turns it off, an object configures it and, where the section has
 * sensible defaults (`allowTrue`), `true` turns it on with them.
 */
export function Section<T extends TObject, A extends boolean>(
  fields: T,
  options: SchemaOptions & { allowTrue: A },
): TUnion<[A extends true ? ReturnType<typeof Type.Boolean> : ReturnType<typeof Type.Literal<false>>, T]> {
  const { allowTrue, ...rest } = options;
  const off = allowTrue ? Type.Boolean() : Type.Literal(false);
  return Type.Union([off, fields], {
    expected: allowTrue
      ? 'an object, true or false'
      : 'an object or false (true is not allowed: no defaults)',
    'x-allow-true': allowTrue,
    ...rest,
  }) as never;
}

/** A validator that reports every problem by path, with the value quoted. */
export interface Validator<T> {
  readonly schema: TSchema;
  /** Yes or no, without explaining (the fast path for valid input). */
  check(value: unknown): value is T;
  /** Record every problem under `path` in `issues`; true when there was none. */
  validate(value: unknown, path: string, issues: Issues): value is T;
}

/**
 * A validator for `schema`: `check` answers yes or no, `validate` explains every problem. Throws
 * at declaration time when the schema uses a kind the interpreter does not know.
 */
export function validator<S extends TSchema>(schema: S): Validator<Static<S>> {
  assertSupported(schema as Schema, '');
  const check = (value: unknown): value is Static<S> => accepts(schema as Schema, value);
  return {
    schema,
    check,
    validate(value, path, issues): value is Static<S> {
      if (check(value)) return true;
      const before = issues.list.length;
      walk(schema, value, path, issues);
      // A missing root value (or a rule the walk does not explain) still names the path.
      if (issues.list.length === before) issues.add(path, describe(schema), value);
      return false;
    },
  };
}

/** What a schema accepts, in words. */
export function describe(schema: TSchema): string {
  const s = schema as Schema;
  if (typeof s.expected === 'string') return s.expected;
  switch (s[Kind]) {
    case 'Integer':
      return rangeText('an integer', s.minimum as number, s.maximum as number);
    case 'Number':
      return s.exclusiveMinimum !== undefined
        ? `a number > ${s.exclusiveMinimum as number}`
        : rangeText('a number', s.minimum as number, s.maximum as number);
    case 'Boolean':
      return 'true or false';
    case 'Literal':
      return quote(s.const);
    case 'Array':
      return `a list of (${describe(s.items as TSchema)})`;
    case 'Object':
    case 'Record':
      return 'an object';
    case 'String':
      if (s.pattern !== undefined) return `a string matching ${s.pattern as string}`;
      return typeof s.minLength === 'number' && s.minLength > 0 ? 'a non-empty string' : 'a string';
    case 'Union':
      return (s.anyOf as TSchema[]).map(describe).join(' or ');
    default:
      return 'a valid value';
  }
}

/** Explain why `value` fails `schema`, recording one issue per problem. */
function walk(schema: TSchema, value: unknown, path: string, issues: Issues): void {
  const s = schema as Schema;
  if (value === undefined) return;
  switch (kindOf(s)) {
    case 'Object': {
      if (!isPlain(value)) {
        issues.add(path, describe(s), value);
        return;
      }
      const props = (s.properties ?? {}) as Record<string, TSchema>;
      const known = Object.keys(props);
      for (const [k, v] of Object.entries(value)) {
        // Own keys only: `constructor` or `toString` in a document is an unknown key, not a schema.
        const p = Object.hasOwn(props, k) ? props[k] : undefined;
        if (p !== undefined) walk(p, v, at(path, k), issues);
        else if (s.additionalProperties === false && !absentAllowed(s, k, v))
          issues.add(
            at(path, k),
            unknownKeyExpected(k, known, s[FOREIGN_NAMES] as ForeignNames | undefined),
            v,
          );
      }
      for (const k of (s.required as string[] | undefined) ?? []) {
        if (value[k] === undefined) issues.add(at(path, k), describe(props[k] as TSchema), undefined);
      }
      return;
    }
    case 'Record': {
      if (!isPlain(value)) {
        issues.add(path, describe(s), value);
        return;
      }
      const { re, item, pattern } = recordOf(s);
      for (const [k, v] of Object.entries(value)) {
        if (re.test(k)) walk(item, v, at(path, k), issues);
        else if (s.additionalProperties === false)
          issues.add(at(path, k), (s['x-key-expected'] as string) ?? `a key matching ${pattern}`, k);
        else if (isSchema(s.additionalProperties)) walk(s.additionalProperties, v, at(path, k), issues);
      }
      return;
    }
    case 'Array': {
      if (!Array.isArray(value)) {
        issues.add(path, describe(s), value);
        return;
      }
      value.forEach((v, i) => {
        walk(s.items as TSchema, v, `${path}[${i}]`, issues);
      });
      if (typeof s.minItems === 'number' && value.length < s.minItems)
        issues.add(path, `${describe(s)} (at least ${s.minItems})`, value);
      if (typeof s.maxItems === 'number' && value.length > s.maxItems)
        issues.add(path, `${describe(s)} (at most ${s.maxItems})`, value);
      return;
    }
    case 'Union': {
      const variants = s.anyOf as Schema[];
      if (variants.some((v) => accepts(v, value))) return;
      const objects = variants.filter((v) => v[Kind] === 'Object');
      const obj = isPlain(value) && objects.length === 1 ? objects[0] : undefined;
      const arr = Array.isArray(value) ? variants.find((v) => v[Kind] === 'Array') : undefined;
      if (obj ?? arr) {
        walk((obj ?? arr) as TSchema, value, path, issues);
        return;
      }
      // A duration written right but too large to be held exactly: parseDuration's own words.
      const duration = variants.find((v) => kindOf(v) === 'Duration');
      const problem = duration === undefined ? undefined : durationProblem(duration, value);
      if (problem !== undefined && duration !== undefined && problem !== describe(duration)) {
        issues.add(path, problem, value);
        return;
      }
      const hint = unionHint(variants, value);
      issues.add(path, `${describe(s)}${hint ? ` (did you mean ${quote(hint)}?)` : ''}`, value);
      return;
    }
    case 'Enum': {
      const allowed = (s.anyOf as Schema[]).map((v) => v.const as string);
      if (typeof value === 'string' && allowed.includes(value)) return;
      const hint = typeof value === 'string' ? closestName(value, allowed) : undefined;
      issues.add(path, `${describe(s)}${hint ? ` (did you mean ${quote(hint)}?)` : ''}`, value);
      return;
    }
    case 'Duration': {
      // parseDuration's words: a value beyond what a number holds exactly says so.
      const problem = durationProblem(s, value);
      if (problem !== undefined) issues.add(path, problem, value);
      return;
    }
    default:
      if (accepts(s, value)) return;
      issues.add(
        path,
        typeof value === 'number' &&
          ((s.maximum === Number.MAX_SAFE_INTEGER && value > s.maximum) ||
            (s.minimum === -Number.MAX_SAFE_INTEGER && value < s.minimum))
          ? `${describe(s)}; ${value} is beyond ±${Number.MAX_SAFE_INTEGER}, the largest integer a number holds exactly`
          : describe(s),
        value,
      );
  }
}

/**
 * A copy of `value` without the keys `schema` does not know (those `validate` reports as "no such
 * field"), the rest as given: to check the rules that follow the schema on what is left of a
 * value with a misspelt key, so that one report lists the misspelling and the other problems.
 */
export function withoutUnknownKeys(schema: TSchema, value: unknown): unknown {
  const s = schema as Schema;
  switch (kindOf(s)) {
    case 'Object': {
      if (!isPlain(value)) return value;
      const props = (s.properties ?? {}) as Record<string, TSchema>;
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        const p = Object.hasOwn(props, k) ? props[k] : undefined;
        if (p !== undefined) out[k] = withoutUnknownKeys(p, v);
        else if (s.additionalProperties !== false || absentAllowed(s, k, v)) out[k] = v;
      }
      return out;
    }
    case 'Record': {
      if (!isPlain(value)) return value;
      const { re, item } = recordOf(s);
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = re.test(k) ? withoutUnknownKeys(item, v) : v;
      return out;
    }
    case 'Array':
      return Array.isArray(value) ? value.map((v) => withoutUnknownKeys(s.items as TSchema, v)) : value;
    case 'Union': {
      const variants = s.anyOf as Schema[];
      if (variants.some((v) => accepts(v, value))) return value;
      // As the walk explains it: the one object form of a union for an object.
      const objects = variants.filter((v) => v[Kind] === 'Object');
      return isPlain(value) && objects.length === 1
        ? withoutUnknownKeys(objects[0] as TSchema, value)
        : value;
    }
    default:
      return value;
  }
}

/**
 * The name a near miss of a union meant: a string close to one of its literals (`"sourc"`), or an
 * object key close to a field of one of its object forms (`{ heder: … }`).
 */
function unionHint(variants: readonly Schema[], value: unknown): string | undefined {
  if (typeof value === 'string') {
    const literals = variants.map((v) => v.const).filter((c): c is string => typeof c === 'string');
    return closestName(value, literals);
  }
  if (!isPlain(value)) return undefined;
  const fields = variants.flatMap((v) => (v[Kind] === 'Object' ? Object.keys(v.properties ?? {}) : []));
  for (const k of Object.keys(value)) {
    if (fields.includes(k)) continue;
    const hint = closestName(k, fields);
    if (hint !== undefined) return hint;
  }
  return undefined;
}

export type { Static, TSchema };

/**
 * `T` with every array in it readonly, at any depth: options take `as const` arrays and arrays
 * typed `readonly` as well as plain ones (the mesh never writes to what it is given).
 */
export type ReadonlyArrays<T> = T extends readonly (infer U)[]
  ? readonly ReadonlyArrays<U>[]
  : T extends object
    ? { [K in keyof T]: ReadonlyArrays<T[K]> }
    : T;
