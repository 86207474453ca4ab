/**
 * The interpreter behind every config validator: whether a value satisfies a TypeBox schema, with
 * TypeBox's semantics (its default policy: optional properties may hold `undefined`, arrays are not
 * objects, numbers are finite) plus this package's own kinds, durations and ratios. `schema.ts`
 * explains failures on top of it; a property test checks it against TypeBox's compiler.
 */
import { Kind, type TSchema } from '@sinclair/typebox';
import { knownDuration, parseDuration, parseRatio } from './parse.js';

export type Schema = TSchema & Record<string, unknown>;

/** `a.b` path join (the root is ''). */
export function at(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

/**
 * The own keys of `value` that `known` does not declare, or `undefined` when there is none (no
 * array for the usual case: this runs for every section of every service of a document).
 */
export function unknownKeys(value: Record<string, unknown>, known: object): string[] | undefined {
  let out: string[] | undefined;
  for (const k in value) {
    if (!Object.hasOwn(value, k) || Object.hasOwn(known, k)) continue;
    if (out === undefined) out = [];
    out.push(k);
  }
  return out;
}

export function isPlain(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function kindOf(s: Schema): string {
  if (s['x-enum'] === true) return 'Enum';
  return s[Kind] as string;
}

export function isSchema(v: unknown): v is Schema {
  return typeof v === 'object' && v !== null;
}

interface RecordInfo {
  readonly pattern: string;
  readonly re: RegExp;
  readonly item: Schema;
}
const records = new WeakMap<Schema, RecordInfo>();
const patterns = new WeakMap<Schema, RegExp>();

export function recordOf(s: Schema): RecordInfo {
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
/**
 * `x-absent`: keys of the other members of a union of objects (`hashOn: { header } | { cookie }`),
 * which the TypeScript type allows as `undefined` (`{ header, cookie: undefined }` compiles): such a
 * key with no value is as if left out. With a value it is refused, as any key not declared.
 */
export function absentAllowed(s: Schema, key: string, value: unknown): boolean {
  return value === undefined && Array.isArray(s['x-absent']) && (s['x-absent'] as string[]).includes(key);
}

export function accepts(s: Schema, value: unknown): boolean {
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
        const names = Object.getOwnPropertyNames(value);
        for (let i = 0; i < names.length; i++) {
          const k = names[i]!;
          if (Object.hasOwn(props, k) || absentAllowed(s, k, value[k])) continue;
          if (extra === false || !accepts(extra, value[k])) return false;
        }
      }
      return true;
    }
    case 'Record': {
      if (!isPlain(value)) return false;
      const { re, item } = recordOf(s);
      const extra = s.additionalProperties;
      const names = Object.getOwnPropertyNames(value);
      for (let i = 0; i < names.length; i++) {
        const k = names[i]!;
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
      // Index loops: no iterator per call in code V8 has not compiled yet (a document's first run).
      for (let i = 0; i < value.length; i++) if (!accepts(item, value[i])) return false;
      return true;
    }
    case 'Union':
    case 'Enum': {
      const members = s.anyOf as Schema[];
      for (let i = 0; i < members.length; i++) if (accepts(members[i]!, value)) return true;
      return false;
    }
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

/**
 * What is wrong with `value` as a duration of `schema`, in `parseDuration`'s words (a value too
 * large to be held exactly says so), or `undefined` when it is one.
 */
export function durationProblem(schema: Record<string, unknown>, value: unknown): string | undefined {
  const min = schema['x-min-ms'] as number | undefined;
  const max = schema['x-max-ms'] as number | undefined;
  // A duration parsed before, within range: no range object, no try (most of a document's).
  const known = knownDuration(value);
  if (known !== undefined && (min === undefined || known >= min) && (max === undefined || known <= max))
    return undefined;
  try {
    parseDuration(value, '', { min, max });
    return undefined;
  } catch (error) {
    const issue = (error as { details?: { issues?: Array<{ expected?: string }> } }).details?.issues?.[0];
    return issue?.expected ?? 'a duration';
  }
}

/** The checks of this module's own kinds (JSON Schema alone cannot say them). */
export const CUSTOM_KINDS = {
  Duration(schema: Record<string, unknown>, value: unknown): boolean {
    return durationProblem(schema, value) === undefined;
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
export function assertSupported(s: Schema, path: string): void {
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
