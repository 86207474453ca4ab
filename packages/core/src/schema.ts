import {
  Kind,
  type SchemaOptions,
  type Static,
  type TLiteral,
  type TObject,
  type TProperties,
  type TSchema,
  type TUnion,
  type TUnsafe,
  Type,
  TypeRegistry,
} from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { Env, EnvVarSpec } from './env.js';
import { quote } from './errors.js';
import type { Issues } from './issues.js';
import { closestName, parseDuration, parseRatio } from './parse.js';

/**
 * Config sections are TypeBox schemas: one declaration per section gives the TypeScript type
 * (`Static<typeof section>`), the compiled validator, the JSON Schema (the schema object itself),
 * the defaults (`default`, with the rationale in `description`) and the environment variable of
 * each field (`x-env`). This module adds what JSON Schema cannot say: durations and ratios in our
 * notation, error messages that name the path and quote the value, and the env mapping.
 */

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

function registerKinds(): void {
  if (TypeRegistry.Has('Duration')) return;
  TypeRegistry.Set('Duration', (schema: Record<string, unknown>, value) => {
    try {
      parseDuration(value, '', {
        min: schema['x-min-ms'] as number | undefined,
        max: schema['x-max-ms'] as number | undefined,
      });
      return true;
    } catch {
      return false;
    }
  });
  TypeRegistry.Set('Ratio', (_schema, value) => {
    try {
      parseRatio(value, '');
      return true;
    } catch {
      return false;
    }
  });
}

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
  registerKinds();
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
  registerKinds();
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

/** Compile `schema` once (TypeBox's compiler); errors are explained by walking the schema. */
export function validator<S extends TSchema>(schema: S): Validator<Static<S>> {
  registerKinds();
  let compiled: ReturnType<typeof TypeCompiler.Compile<S>> | undefined;
  const check = (value: unknown): value is Static<S> => {
    compiled ??= TypeCompiler.Compile(schema);
    return compiled.Check(value);
  };
  return {
    schema,
    check,
    validate(value, path, issues): value is Static<S> {
      if (check(value)) return true;
      const before = issues.list.length;
      walk(schema, value, path, issues);
      if (issues.list.length === before) {
        // The walk and the compiled check disagree: report the compiler's first error.
        const first = compiled?.Errors(value).First();
        issues.add(joinPointer(path, first?.path ?? ''), first?.message ?? describe(schema), first?.value);
      }
      return false;
    },
  };
}

function joinPointer(path: string, pointer: string): string {
  const parts = pointer.split('/').filter((p) => p !== '');
  return parts.reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : at(acc, p)), path);
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
      return s.pattern !== undefined ? `a string matching ${s.pattern as string}` : 'a non-empty string';
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
      const [pattern, item] = Object.entries(s.patternProperties as Record<string, TSchema>)[0] ?? [];
      const re = pattern === undefined ? undefined : new RegExp(pattern);
      for (const [k, v] of Object.entries(value)) {
        if (re && !re.test(k))
          issues.add(at(path, k), (s['x-key-expected'] as string) ?? `a key matching ${pattern}`, k);
        else if (item) walk(item, v, at(path, k), issues);
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
      return;
    }
    case 'Union': {
      const variants = s.anyOf as Schema[];
      if (variants.some((v) => TypeCompiler.Compile(v).Check(value))) return;
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
      if (!TypeCompiler.Compile(s).Check(value)) issues.add(path, describe(s), value);
  }
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
/** TypeBox's builder, for section declarations in the other packages (one copy of TypeBox, bundled here). */
/** TypeBox's compiler, for validators that report TypeBox's own errors (mesh's config entries). */
export { Type, TypeCompiler };
