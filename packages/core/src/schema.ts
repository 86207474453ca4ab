import {
  Kind,
  type SchemaOptions,
  type Static,
  Array as TArray,
  Boolean as TBoolean,
  Integer as TInteger,
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
import type { Env, EnvVarSpec } from './env.js';
import { quote } from './errors.js';
import type { Issues } from './issues.js';
import { closestName, parseDuration, parseRatio } from './parse.js';

/**
 * Config sections are TypeBox schemas: one declaration per section gives the TypeScript type
 * (`Static<typeof section>`), the validator, the JSON Schema (the schema object itself), the
 * defaults (`default`, with the rationale in `description`) and the environment variable of each
 * field (`x-env`). This module adds what JSON Schema cannot say: durations and ratios in our
 * notation, error messages that name the path and quote the value, and the env mapping.
 *
 * Validation interprets the schema (`accepts` / `walk` below) instead of compiling it with
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
  Integer: TInteger,
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
  /** Raw string → the value at this path of the document (default: by the schema's kind). */
  readonly decode?: (raw: string) => unknown;
  /** `off`, `none`, `false` or `disabled` set the whole section (first path segment) to `false`. */
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

const DURATION_RE = '^\\s*(\\d+(\\.\\d+)?|((\\d+(\\.\\d+)?|\\.\\d+)(ns|us|µs|ms|s|m|h))+)\\s*$';

function rangeText(kind: string, min: number | undefined, max: number | undefined, unit = ''): string {
  if (min !== undefined && max !== undefined) return `${kind} ${min}${unit}..${max}${unit}`;
  if (min !== undefined && min > 0) return `${kind} ≥ ${min}${unit}`;
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
      { type: 'number', minimum: min ?? 0, ...(max !== undefined ? { maximum: max } : {}) },
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
      { type: 'string', pattern: '^\\s*\\d+(\\.\\d+)?\\s*%\\s*$' },
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

/** A compiled validator that reports every problem by path, with the value quoted. */
export interface Validator<T> {
  readonly schema: TSchema;
  /** Fast check (compiled). */
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

/** `a.b` path join (the root is ''). */
export function at(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

type Schema = TSchema & Record<string, unknown>;

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

function isPlain(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function kindOf(s: Schema): string {
  if (s['x-enum'] === true) return 'Enum';
  return s[Kind] as string;
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
        const p = props[k];
        if (p !== undefined) walk(p, v, at(path, k), issues);
        else if (s.additionalProperties === false) unknownKey(issues, path, k, known, v);
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
      issues.add(path, describe(s), value);
      return;
    }
    case 'Enum': {
      const allowed = (s.anyOf as Schema[]).map((v) => v.const as string);
      if (typeof value === 'string' && allowed.includes(value)) return;
      const hint = typeof value === 'string' ? closestName(value, allowed) : undefined;
      issues.add(path, `${describe(s)}${hint ? ` (did you mean ${quote(hint)}?)` : ''}`, value);
      return;
    }
    default:
      if (!accepts(s, value)) issues.add(path, describe(s), value);
  }
}

function isSchema(v: unknown): v is Schema {
  return typeof v === 'object' && v !== null;
}

interface RecordInfo {
  readonly pattern: string;
  readonly re: RegExp;
  readonly item: Schema;
}
const records = new WeakMap<Schema, RecordInfo>();
const patterns = new WeakMap<Schema, RegExp>();

function recordOf(s: Schema): RecordInfo {
  let info = records.get(s);
  if (info === undefined) {
    const [pattern, item] = Object.entries(s.patternProperties as Record<string, Schema>)[0] as [
      string,
      Schema,
    ];
    info = { pattern, re: new RegExp(pattern), item };
    records.set(s, info);
  }
  return info;
}

function patternOf(s: Schema): RegExp {
  let re = patterns.get(s);
  if (re === undefined) {
    re = new RegExp(s.pattern as string);
    patterns.set(s, re);
  }
  return re;
}

function inRange(s: Schema, n: number): boolean {
  return (
    (typeof s.minimum !== 'number' || n >= s.minimum) &&
    (typeof s.maximum !== 'number' || n <= s.maximum) &&
    (typeof s.exclusiveMinimum !== 'number' || n > s.exclusiveMinimum) &&
    (typeof s.exclusiveMaximum !== 'number' || n < s.exclusiveMaximum) &&
    (typeof s.multipleOf !== 'number' || n % s.multipleOf === 0)
  );
}

/**
 * Whether `value` satisfies `schema`, with TypeBox's semantics (its default policy: optional
 * properties may hold `undefined`, arrays are not objects, numbers are finite) plus the two kinds
 * of this module, durations and ratios in our notation.
 */
function accepts(s: Schema, value: unknown): boolean {
  switch (kindOf(s)) {
    case 'Object': {
      if (!isPlain(value)) return false;
      const props = (s.properties ?? {}) as Record<string, Schema>;
      for (const k in props) {
        const v = value[k];
        if (v === undefined) {
          if ((s.required as string[] | undefined)?.includes(k)) return false;
        } else if (!accepts(props[k] as Schema, v)) return false;
      }
      const extra = s.additionalProperties;
      if (extra === false || isSchema(extra)) {
        for (const k of Object.getOwnPropertyNames(value)) {
          if (Object.hasOwn(props, k)) continue;
          if (extra === false || !accepts(extra, value[k])) return false;
        }
      }
      return true;
    }
    case 'Record': {
      if (!isPlain(value)) return false;
      const { re, item } = recordOf(s);
      const extra = s.additionalProperties;
      for (const k of Object.getOwnPropertyNames(value)) {
        if (re.test(k)) {
          if (!accepts(item, value[k])) return false;
        } else if (extra === false || (isSchema(extra) && !accepts(extra, value[k]))) return false;
      }
      return true;
    }
    case 'Array': {
      if (!Array.isArray(value)) return false;
      if (typeof s.minItems === 'number' && value.length < s.minItems) return false;
      if (typeof s.maxItems === 'number' && value.length > s.maxItems) return false;
      const item = s.items as Schema;
      for (const v of value) if (!accepts(item, v)) return false;
      return true;
    }
    case 'Union':
    case 'Enum':
      for (const v of s.anyOf as Schema[]) if (accepts(v, value)) return true;
      return false;
    case 'Literal':
      return value === s.const;
    case 'String':
      return (
        typeof value === 'string' &&
        (typeof s.minLength !== 'number' || value.length >= s.minLength) &&
        (typeof s.maxLength !== 'number' || value.length <= s.maxLength) &&
        (s.pattern === undefined || patternOf(s).test(value))
      );
    case 'Integer':
      return typeof value === 'number' && Number.isInteger(value) && inRange(s, value);
    case 'Number':
      return typeof value === 'number' && Number.isFinite(value) && inRange(s, value);
    case 'Boolean':
      return typeof value === 'boolean';
    case 'Null':
      return value === null;
    case 'Unknown':
    case 'Any':
      return true;
    case 'Duration':
    case 'Ratio':
      return CUSTOM_KINDS[kindOf(s) as 'Duration' | 'Ratio'](s, value);
    default:
      return false;
  }
}

/** The checks of this module's own kinds (JSON Schema alone cannot say them). */
export const CUSTOM_KINDS = {
  Duration(schema: Record<string, unknown>, value: unknown): boolean {
    try {
      parseDuration(value, '', {
        min: schema['x-min-ms'] as number | undefined,
        max: schema['x-max-ms'] as number | undefined,
      });
      return true;
    } catch {
      return false;
    }
  },
  Ratio(_schema: Record<string, unknown>, value: unknown): boolean {
    try {
      parseRatio(value, '');
      return true;
    } catch {
      return false;
    }
  },
} as const;

const SUPPORTED = new Set([
  'Object',
  'Record',
  'Array',
  'Union',
  'Enum',
  'Literal',
  'String',
  'Integer',
  'Number',
  'Boolean',
  'Null',
  'Unknown',
  'Any',
  'Duration',
  'Ratio',
]);
const checked = new WeakSet<Schema>();

/** Refuse, at declaration, a schema this interpreter would not check faithfully. */
function assertSupported(s: Schema, path: string): void {
  if (checked.has(s)) return;
  const kind = kindOf(s);
  if (!SUPPORTED.has(kind) || (kind === 'String' && s.format !== undefined))
    throw new TypeError(
      `schema at "${path}": ${kind}${s.format ? ` with format` : ''} is not supported by the config validator`,
    );
  checked.add(s);
  if (kind === 'Object')
    for (const [k, p] of Object.entries((s.properties ?? {}) as Record<string, Schema>))
      assertSupported(p, at(path, k));
  else if (kind === 'Record') assertSupported(recordOf(s).item, `${path}{}`);
  else if (kind === 'Array') assertSupported(s.items as Schema, `${path}[]`);
  else if (kind === 'Union' || kind === 'Enum') for (const v of s.anyOf as Schema[]) assertSupported(v, path);
  if (isSchema(s.additionalProperties)) assertSupported(s.additionalProperties, `${path}{}`);
}

function unknownKey(
  issues: Issues,
  path: string,
  key: string,
  known: readonly string[],
  value: unknown,
): void {
  const hint = closestName(key, known);
  issues.add(
    at(path, key),
    `no such field${hint ? ` (did you mean ${quote(hint)}?)` : ''}; known: ${known.join(', ')}`,
    value,
  );
}

// ---------------------------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------------------------

/** One env binding found in a schema, with the document path it sets. */
export interface EnvField {
  readonly path: readonly string[];
  readonly schema: TSchema;
  readonly binding: EnvBinding;
}

/** Every env binding declared in `schema` (depth first, declaration order). */
export function envFields(schema: TSchema, path: readonly string[] = []): EnvField[] {
  const s = schema as Schema;
  const out: EnvField[] = [];
  const binding = (schema as unknown as { [kEnv]?: EnvBinding })[kEnv];
  if (binding) out.push({ path, schema, binding });
  if (s[Kind] === 'Object') {
    for (const [k, p] of Object.entries(s.properties as Record<string, TSchema>))
      out.push(...envFields(p, [...path, k]));
  } else if (s[Kind] === 'Union') {
    for (const v of s.anyOf as TSchema[]) out.push(...envFields(v, path));
  }
  return out;
}

/** The docs row of an env binding. */
export function envSpec(field: EnvField): EnvVarSpec {
  const s = field.schema as Schema;
  const b = field.binding;
  const def = b.defaultValue ?? (s.default === undefined ? '—' : formatDefault(s, s.default));
  return { name: b.name, type: b.type ?? describe(s), defaultValue: def, description: b.description };
}

/** A default as written in docs: durations in their unit (`10s`), lists comma-separated. */
export function formatDefault(schema: TSchema, value: unknown): string {
  if ((schema as Schema)[Kind] === 'Duration' && typeof value === 'number') {
    if (value >= 1000 && value % 1000 === 0) return `${value / 1000}s`;
    return `${value}ms`;
  }
  if (Array.isArray(value)) return value.join(',');
  return String(value);
}

const OFF = new Set(['off', 'none', 'false', 'disabled']);
const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);

/** The default decoding of a raw env string by the kind of the field it sets. */
function decodeBy(schema: TSchema, raw: string): unknown {
  const s = schema as Schema;
  const t = raw.trim();
  switch (s[Kind]) {
    case 'Integer':
    case 'Number':
    case 'Ratio':
    case 'Duration':
      return /^-?(\d+(\.\d+)?|\.\d+)$/.test(t) ? Number(t) : t;
    case 'Boolean':
      return TRUE.has(t.toLowerCase()) ? true : FALSE.has(t.toLowerCase()) ? false : t;
    case 'Union':
      if ((s.anyOf as Schema[]).some((v) => v[Kind] === 'Boolean' || v.const === false))
        return TRUE.has(t.toLowerCase()) ? true : FALSE.has(t.toLowerCase()) ? false : t;
      if ((s.anyOf as Schema[]).some((v) => v[Kind] === 'Array'))
        return decodeBy((s.anyOf as Schema[]).find((v) => v[Kind] === 'Array') as TSchema, t);
      return t;
    case 'Array':
      return t.split(',').map((p) => decodeBy(s.items as TSchema, p));
    default:
      return t;
  }
}

/**
 * Turn the variables bound in `schema` into a document of that shape (only what is set; blank
 * means unset). `names` maps each document path to its variable, for error messages.
 */
export function envToDocument(
  schema: TSchema,
  source: Env,
): { document: Record<string, unknown> | undefined; names: Map<string, { name: string; raw: string }> } {
  const doc: Record<string, unknown> = {};
  const names = new Map<string, { name: string; raw: string }>();
  const offSections = new Set<string>();
  let any = false;
  for (const f of envFields(schema)) {
    const raw = source[f.binding.name];
    if (raw === undefined || raw.trim() === '') continue;
    any = true;
    names.set(f.path.join('.'), { name: f.binding.name, raw });
    if (f.binding.offTurnsSectionOff && OFF.has(raw.trim().toLowerCase())) {
      offSections.add(f.path[0] as string);
      continue;
    }
    const value = f.binding.decode ? f.binding.decode(raw) : decodeBy(f.schema, raw);
    setAt(doc, f.path, value);
  }
  for (const s of offSections) {
    doc[s] = false;
    names.set(
      s,
      names.get(s) ?? [...names].find(([p]) => p.startsWith(`${s}.`))?.[1] ?? { name: s, raw: 'off' },
    );
  }
  return { document: any ? doc : undefined, names };
}

function setAt(doc: Record<string, unknown>, path: readonly string[], value: unknown): void {
  if (path.length === 0) return;
  let cur = doc;
  for (let i = 0; i < path.length - 1; i++) {
    const k = path[i] as string;
    const next = cur[k];
    if (next === false) return; // the section is off: its fields do not turn it on
    if (!isPlain(next)) cur[k] = {};
    cur = cur[k] as Record<string, unknown>;
  }
  const last = path[path.length - 1] as string;
  const prev = cur[last];
  if (value === true && isPlain(prev)) return; // `on` plus fields: the fields
  if (isPlain(value) && isPlain(prev)) cur[last] = { ...prev, ...value };
  else if (!(prev === false && path.length === 1) || value === false) cur[last] = value;
}

/**
 * Rewrite issues found in an env-built document so they name the variable and its raw value
 * (`MESH_RETRIES: expected an integer 0..10, got "three"`).
 */
export function envIssues(
  list: readonly { field: string; expected: string; value: unknown }[],
  names: ReadonlyMap<string, { name: string; raw: string }>,
  issues: Issues,
): void {
  for (const i of list) {
    let key = i.field.replace(/\[\d+\]/g, '');
    let found = names.get(key);
    while (!found && key.includes('.')) {
      key = key.slice(0, key.lastIndexOf('.'));
      found = names.get(key);
    }
    const item = /\[\d+\]/.test(i.field) && i.value !== found?.raw ? ` (${quote(i.value)} is not)` : '';
    if (found) issues.add(found.name, `${i.expected}${item}`, found.raw);
    else issues.add(i.field, i.expected, i.value);
  }
}

export type { Static, TSchema };
