/**
 * The environment side of the schemas: each field's variable (`x-env`) read into a document of the
 * section's shape, which then goes through the same validator as a document, and the docs row of
 * each variable.
 */
import { Kind, type TSchema } from '@sinclair/typebox';
import { type Env, type EnvVarSpec, JSON_NUMBER, jsonNumberNote } from './env.js';
import { quote } from './errors.js';
import { Issues } from './issues.js';
import { booleanWord } from './parse.js';
import { describe, type EnvBinding, kEnv, validator } from './schema.js';
import { isPlain, type Schema } from './schema-check.js';

/** One env binding found in a schema, with the document path it sets. */
export interface EnvField {
  readonly path: readonly string[];
  readonly schema: TSchema;
  readonly binding: EnvBinding;
}

/** The env bindings of each schema read whole, once (a schema does not change once declared). */
const fieldsOf = new WeakMap<TSchema, readonly EnvField[]>();

/**
 * Every env binding declared in `schema` (depth first, declaration order). A whole schema's list is
 * kept: the environment is read through it at every `createMesh` and every config check.
 */
export function envFields(schema: TSchema, path: readonly string[] = []): EnvField[] {
  return path.length > 0 ? collectEnvFields(schema, path) : [...envFieldsOf(schema)];
}

function envFieldsOf(schema: TSchema): readonly EnvField[] {
  let fields = fieldsOf.get(schema);
  if (fields === undefined) {
    fields = Object.freeze(collectEnvFields(schema, []));
    fieldsOf.set(schema, fields);
  }
  return fields;
}

function collectEnvFields(schema: TSchema, path: readonly string[]): EnvField[] {
  const s = schema as Schema;
  const out: EnvField[] = [];
  const binding = (schema as unknown as { [kEnv]?: EnvBinding })[kEnv];
  if (binding) out.push({ path, schema, binding });
  if (s[Kind] === 'Object') {
    for (const [k, p] of Object.entries(s.properties as Record<string, TSchema>))
      out.push(...collectEnvFields(p, [...path, k]));
  } else if (s[Kind] === 'Union') {
    for (const v of s.anyOf as TSchema[]) out.push(...collectEnvFields(v, path));
  }
  return out;
}

/** The docs row of an env binding. */
export function envSpec(field: EnvField): EnvVarSpec {
  const s = field.schema as Schema;
  const b = field.binding;
  const def = b.defaultValue ?? (s.default === undefined ? '—' : formatDefault(s, s.default));
  const spec = { name: b.name, type: b.type ?? describe(s), defaultValue: def, description: b.description };
  return field.path.length > 0 ? { ...spec, field: field.path.join('.') } : spec;
}

/** A default as written in docs: durations in their unit (`10s`), lists comma-separated. */
export function formatDefault(schema: TSchema, value: unknown): string {
  const s = schema as Schema;
  // A duration-or-something field (`hedge.delay`: a duration or a percentile) is a duration too.
  const duration =
    s[Kind] === 'Duration' ||
    (s[Kind] === 'Union' && (s.anyOf as Schema[]).some((v) => v[Kind] === 'Duration'));
  if (duration && typeof value === 'number') {
    if (value >= 1000 && value % 1000 === 0) return `${value / 1000}s`;
    return `${value}ms`;
  }
  if (Array.isArray(value)) return value.join(',');
  return String(value);
}

/** Words that turn a section off from its variable (`MESH_RATE_LIMIT=off`), whatever its kind. */
export const OFF_WORDS: ReadonlySet<string> = new Set(['off', 'none', 'false', 'no', 'disabled']);

/** What a boolean variable takes, in messages (the words every boolean variable reads). */
export const BOOLEAN_NOTATION = 'a boolean (true/false, 1/0, yes/no, on/off)';

/** What each word of a variable's notation (`duration | pNN | off`) stands for, in messages. */
const NOTATION: Record<string, string> = {
  duration: 'a duration (e.g. 250ms, 5s, 1m30s or plain milliseconds)',
  pNN: 'pNN (a latency percentile 1..99.9, e.g. p95)',
  boolean: BOOLEAN_NOTATION,
  off: 'off (or none, false, no, disabled)',
};

/** A variable an env-built document was read from, for messages about its field. */
export interface EnvName {
  readonly name: string;
  readonly raw: string;
  /** The variable's own notation, where its field takes several forms (`duration | pNN | off`). */
  readonly expected?: string;
  /** Its off words turn the section off (`MESH_RETRIES=off`): a refused value says so too. */
  readonly orOff?: boolean;
}

/**
 * The message of a bad value of a variable whose document field takes several forms (a section
 * switch, a duration or a percentile): in the variable's own notation, not the document's shapes
 * (`{ percentile: … }` cannot be written in a variable).
 */
function notationText(type: string): string {
  const words = type.split('|').map((w) => NOTATION[w.trim()] ?? w.trim());
  return words.length === 1 ? (words[0] as string) : `${words.slice(0, -1).join(', ')} or ${words.at(-1)}`;
}

const NUMERIC_KINDS = new Set(['Integer', 'Number', 'Ratio', 'Duration']);
/** Kinds that hold an exact count: an integer, or a duration in ms. */
const COUNT_KINDS = new Set(['Integer', 'Duration']);

/**
 * Plain milliseconds as a duration's notation writes them (`250`, `1.5`, `.5`, `010`): a duration
 * variable takes these besides a JSON number (`1e3`), as `MESH_TIMEOUT=.5` always did.
 */
const MILLISECONDS = /^-?(\d+(\.\d+)?|\.\d+)$/;

/** Whether `t` (trimmed) is a number in the notation of a field of this kind. */
function numberIn(kind: string, t: string): boolean {
  return JSON_NUMBER.test(t) || (kind === 'Duration' && MILLISECONDS.test(t));
}

/**
 * A number beyond ±{@link Number.MAX_SAFE_INTEGER}: read as a number it is not the one written
 * (`99999999999999999999` would be 100000000000000000000), so for a field that holds a count
 * (an integer, or a duration in ms) it is an error, never rounded. A plain number field (a rate)
 * reads it as a config document does: as the number JSON gives for the same text.
 */
function unsafeDecimal(t: string): boolean {
  return (JSON_NUMBER.test(t) || MILLISECONDS.test(t)) && Math.abs(Number(t)) > Number.MAX_SAFE_INTEGER;
}

/** Whether `t` is a number a count field of this schema (or a form of its union) cannot hold exactly. */
function unsafeCount(s: Schema, t: string): boolean {
  const kind = s[Kind] as string;
  if (kind === 'Union') return (s.anyOf as Schema[]).some((v) => unsafeCount(v, t));
  return COUNT_KINDS.has(kind) && numberIn(kind, t) && unsafeDecimal(t);
}

/** Whether `t` is a number in the notation of this schema (or of a numeric form of its union). */
function numberFor(s: Schema, t: string): boolean {
  const kind = s[Kind] as string;
  if (kind === 'Union') return (s.anyOf as Schema[]).some((v) => numberFor(v, t));
  return NUMERIC_KINDS.has(kind) && numberIn(kind, t);
}

/** The default decoding of a raw env string by the kind of the field it sets. */
function decodeBy(schema: TSchema, raw: string): unknown {
  const s = schema as Schema;
  const t = raw.trim();
  switch (s[Kind]) {
    case 'Integer':
      // Too large a number stays a string, which an integer refuses (as any other non-number).
      return JSON_NUMBER.test(t) && !unsafeDecimal(t) ? Number(t) : t;
    case 'Number':
    case 'Ratio':
      // As JSON reads the same text (`1e3`, `0.5`); `010`, `.5`, `5.`, `+5` stay text and are refused.
      return JSON_NUMBER.test(t) ? Number(t) : t;
    case 'Duration':
      // A duration string of digits is milliseconds: too large a one would be read rounded, so it
      // becomes a value no duration is (the issue shows the variable's value as written).
      if (!numberIn('Duration', t)) return t;
      return unsafeDecimal(t) ? Number.NaN : Number(t);
    case 'Boolean':
      return booleanWord(t) ?? t;
    case 'Union':
      if (unsafeCount(s, t)) return Number.NaN;
      // A number is a number where the field takes one (`MESH_TIMEOUT=1` is 1 ms, as `timeout: 1`
      // in a document), never the boolean word `1` (which would be `true`, refused as a duration).
      if (numberFor(s, t)) return Number(t);
      // A switch (`MESH_CIRCUIT_BREAKER`, `MESH_TIMEOUT`): every off word turns it off.
      if ((s.anyOf as Schema[]).some((v) => v[Kind] === 'Boolean' || v.const === false))
        return OFF_WORDS.has(t.toLowerCase()) ? false : (booleanWord(t) ?? t);
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
): {
  document: Record<string, unknown> | undefined;
  names: Map<string, EnvName>;
  dropped: EnvDropped[];
  /**
   * Problems of variables whose section another variable turns off, by document path: a value
   * that does not parse is an error even where it would not apply (give them to `envIssues`).
   */
  offFieldIssues: Issues['list'];
} {
  const doc: Record<string, unknown> = {};
  const names = new Map<string, EnvName>();
  const decoded = new Map<string, { field: EnvField; value: unknown }>();
  const offSections = new Set<string>();
  let any = false;
  for (const f of envFieldsOf(schema)) {
    const raw = source[f.binding.name];
    if (raw === undefined || raw.trim() === '') continue;
    any = true;
    const kind = (f.schema as Schema)[Kind];
    const notation =
      // (Not a list of names, `x-enum`: its own message lists them and suggests the nearest.)
      f.binding.type !== undefined && kind === 'Union' && (f.schema as Schema)['x-enum'] !== true
        ? { expected: notationText(f.binding.type) }
        : kind === 'Boolean'
          ? { expected: NOTATION.boolean as string }
          : {};
    const orOff = f.binding.offTurnsSectionOff === true && notation.expected === undefined;
    names.set(f.path.join('.'), { name: f.binding.name, raw, ...notation, ...(orOff ? { orOff } : {}) });
    if (f.binding.offTurnsSectionOff && OFF_WORDS.has(raw.trim().toLowerCase())) {
      offSections.add(f.path[0] as string);
      continue;
    }
    // A number the field takes is read by the field's kind, as every other variable's (`1e3`,
    // too large a count refused alike); a field's own decoder reads the rest (`p95`).
    const value =
      f.binding.decode && !numberFor(f.schema as Schema, raw.trim())
        ? f.binding.decode(raw)
        : decodeBy(f.schema, raw);
    decoded.set(f.path.join('.'), { field: f, value });
    setAt(doc, f.path, value);
  }
  for (const s of offSections) {
    doc[s] = false;
    names.set(
      s,
      names.get(s) ?? [...names].find(([p]) => p.startsWith(`${s}.`))?.[1] ?? { name: s, raw: 'off' },
    );
  }
  // Variables setting fields of a section another variable turns off: a document cannot say both
  // (`circuitBreaker: false` has no fields), so they are dropped, and said to be.
  // A value that does not parse is still an error: the section being off must not hide it until
  // the day the off switch is removed.
  const dropped: EnvDropped[] = [];
  const offIssues = new Issues();
  for (const [path, v] of names) {
    const section = path.split('.')[0] as string;
    if (path === section || doc[section] !== false) continue;
    const off = names.get(section);
    if (off === undefined || off.name === v.name) continue;
    const field = decoded.get(path);
    if (field !== undefined && !validator(field.field.schema).validate(field.value, path, offIssues))
      continue;
    dropped.push({ name: v.name, raw: v.raw, section, off });
  }
  return { document: any ? doc : undefined, names, dropped, offFieldIssues: offIssues.list };
}

/** A variable whose value is dropped because another variable turns its section off. */
export interface EnvDropped {
  readonly name: string;
  readonly raw: string;
  /** The section (`circuitBreaker`, `rateLimit`, …). */
  readonly section: string;
  /** The variable that turns it off. */
  readonly off: { readonly name: string; readonly raw: string };
}

/** The warning for a dropped variable: named, with its value and the variable that wins. */
export function envDroppedIssue(d: EnvDropped): { field: string; expected: string; value: unknown } {
  return {
    field: d.name,
    expected: `a value that applies: ${d.off.name}=${d.off.raw} turns ${d.section} off, so ${d.name} is ignored (a layer that turns ${d.section} back on does not bring it back); unset one of them`,
    value: d.raw,
  };
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
  names: ReadonlyMap<string, EnvName>,
  issues: Issues,
): void {
  // One problem said once: `MESH_RETRY_ON=,` has two empty items, one message.
  const said = new Set<string>();
  for (const i of list) {
    let key = i.field.replace(/\[\d+\]/g, '');
    let found = names.get(key);
    // The variable's own notation, for a value refused at the variable's own field (or inside
    // the form it was read into: `MESH_HEDGE_DELAY=p100` is refused at `hedge.delay.percentile`),
    // with its off words where they turn the section off (`MESH_RETRIES=11`).
    const exact = found !== undefined;
    while (!found && key.includes('.')) {
      key = key.slice(0, key.lastIndexOf('.'));
      found = names.get(key);
    }
    const notation =
      found?.expected ?? (exact && found?.orOff ? `${i.expected} or ${NOTATION.off}` : undefined);
    const item = /\[\d+\]/.test(i.field) && i.value !== found?.raw ? ` (${quote(i.value)} is not)` : '';
    // Say why a number that looks in range is not: it is beyond what a number holds exactly.
    const written = typeof i.value === 'string' ? i.value.trim() : found?.raw.trim();
    // (A number field read it as a number: it was refused for another reason, its range.)
    const unsafe =
      written === undefined ||
      !unsafeDecimal(written) ||
      (typeof i.value === 'number' && !Number.isNaN(i.value))
        ? ''
        : written.startsWith('-')
          ? `; ${written} is beyond ${Number.MIN_SAFE_INTEGER}, the smallest integer a number holds exactly`
          : `; ${written} is beyond ${Number.MAX_SAFE_INTEGER}, the largest integer a number holds exactly`;
    // A number JSON does not write (`.5`, `010`): how to write it.
    const loose = typeof i.value === 'string' ? jsonNumberNote(i.value) : '';
    const [field, expected, value] = found
      ? [found.name, `${notation ?? i.expected}${item}${unsafe}${loose}`, found.raw]
      : [i.field, i.expected, i.value];
    const once = JSON.stringify([field, expected, value]);
    if (said.has(once)) continue;
    said.add(once);
    issues.add(field, expected, value);
  }
}
