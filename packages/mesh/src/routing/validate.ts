/**
 * Validation of config entries one by one: the schema of their kind (unknown kinds and fields
 * are errors), then the rules Consul's `Validate()` methods apply on write
 * (`agent/structs/config_entry_discoverychain.go`), with Consul's messages. Rules that need the
 * other entries (protocol gate, subsets of other services, loops) are checked when chains are
 * compiled (`compile.ts`).
 */
import { closestName, Issues, type Validator, validator, withoutUnknownKeys } from '@proxyless/core';
import {
  CONFIG_ENTRY_KINDS,
  CONFIG_ENTRY_SCHEMAS,
  type ConfigEntry,
  type ConfigEntryKind,
  type HeaderModifiers,
  type HttpMatch,
  RETRY_ON_CONDITIONS,
  ROUTE_METHODS,
  type RouteDestination,
  type ServiceDefaultsEntry,
  type ServiceResolverEntry,
  type ServiceRouterEntry,
  type ServiceSplitterEntry,
} from './entries.js';
import { checkDuration, checkTenancy, EntryIssues } from './entry-issues.js';
import { re2Error } from './regex.js';
import { checkResolver } from './validate-resolver.js';

/** Validated entries by kind, keyed by `Name`. */
export interface ConfigEntrySet {
  readonly routers: ReadonlyMap<string, ServiceRouterEntry>;
  readonly splitters: ReadonlyMap<string, ServiceSplitterEntry>;
  readonly resolvers: ReadonlyMap<string, ServiceResolverEntry>;
  readonly defaults: ReadonlyMap<string, ServiceDefaultsEntry>;
}

type Checker = Validator<unknown>;
let checkers: Record<ConfigEntryKind, Checker> | undefined;

/** The validator of a kind's schema; all are made at the first entry (not at import: start-up). */
function checkerOf(kind: ConfigEntryKind): Checker {
  checkers ??= Object.fromEntries(
    CONFIG_ENTRY_KINDS.map((k) => [k, validator(CONFIG_ENTRY_SCHEMAS[k])]),
  ) as Record<ConfigEntryKind, Checker>;
  return checkers[kind];
}

const UNKNOWN_KEY = /^no such field( \(did you mean "([^"]*)"\?\))?/;

/** `<Kind>/<Name>` of a raw entry, or `entries[<i>]` when it has none. */
export function entryLabel(raw: unknown, index: number): string {
  if (typeof raw === 'object' && raw !== null) {
    const o = raw as Record<string, unknown>;
    if (typeof o.Kind === 'string' && typeof o.Name === 'string' && o.Name !== '')
      return `${o.Kind}/${o.Name}`;
    if (typeof o.Kind === 'string') return `${o.Kind}/entries[${index}]`;
  }
  return `entries[${index}]`;
}

/**
 * Validate one entry, recording problems in `issues`. Returns the entry normalised as Consul
 * stores it (protocol lower-cased, methods upper-cased, weights rounded to 0.01), or `undefined`.
 */
export function validateConfigEntry(raw: unknown, issues: EntryIssues, index = 0): ConfigEntry | undefined {
  const before = issues.list.length;
  const entry = checkEntry(raw, issues, index);
  return issues.list.length > before ? undefined : entry;
}

/**
 * One entry checked: its schema, then its own rules. Returns the entry normalised when its schema
 * holds (even if its rules do not: a chain can still be compiled through it, so the chain's
 * problems are reported with the entry's own), `undefined` when its shape is wrong.
 */
function checkEntry(raw: unknown, issues: EntryIssues, index: number): ConfigEntry | undefined {
  const label = entryLabel(raw, index);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return issues.add(label, '', 'a config entry must be a JSON object', raw);
  }
  const kind = (raw as { Kind?: unknown }).Kind;
  if (kind === undefined) {
    return issues.add(label, 'Kind', 'Payload does not contain a kind/Kind key at the top level');
  }
  if (typeof kind !== 'string' || !(CONFIG_ENTRY_KINDS as readonly string[]).includes(kind)) {
    const hint = typeof kind === 'string' ? closestName(kind, CONFIG_ENTRY_KINDS) : undefined;
    return issues.add(
      label,
      'Kind',
      `invalid config entry kind; supported: ${CONFIG_ENTRY_KINDS.join(', ')}${hint ? ` (did you mean "${hint}"?)` : ''}`,
      kind,
    );
  }
  const checker = checkerOf(kind as ConfigEntryKind);
  // The check is fast; the explaining walk runs only for an invalid entry.
  const found = new Issues();
  if (!checker.validate(raw, '', found) && found.list.length > 0) {
    let misspelt = true;
    for (const e of found.list) {
      const unknown = UNKNOWN_KEY.exec(e.expected);
      if (!unknown) misspelt = false;
      const message = unknown
        ? `invalid config key ${JSON.stringify(e.field.split(/[.[]/).pop())}${unknown[2] ? ` (did you mean "${unknown[2]}"?)` : ''}`
        : `expected ${e.expected}`;
      issues.add(label, e.field, message, e.value);
    }
    // Only misspelt keys: the entry's own rules are checked on the rest too, so that one report
    // lists every problem (a bad ConnectTimeout beside a misspelt DefaultSubset). The entry is
    // refused either way.
    const rest = misspelt ? withoutUnknownKeys(checker.schema, raw) : undefined;
    if (rest === undefined || !checker.check(rest)) return undefined;
    checkRules(rest as ConfigEntry, label, issues);
    return undefined;
  }
  const entry = structuredClone(raw) as ConfigEntry;
  return checkRules(entry, label, issues) ? entry : undefined;
}

/**
 * The rules of an entry whose schema holds (Consul's `Validate`), recorded in `issues`; false
 * when the entry is refused outright (no `Name`).
 */
function checkRules(entry: ConfigEntry, label: string, issues: EntryIssues): boolean {
  if (entry.Name === '') {
    issues.add(label, 'Name', 'Name is required');
    return false;
  }
  checkTenancy(entry, label, '', issues);
  switch (entry.Kind) {
    case 'service-router':
      checkRouter(entry, label, issues);
      break;
    case 'service-splitter':
      checkSplitter(entry, label, issues);
      break;
    case 'service-resolver':
      checkResolver(entry, label, issues);
      break;
    case 'service-defaults':
      if (entry.Name === '*') issues.add(label, 'Name', 'service-defaults Name must be a service, not "*"');
      if (entry.Protocol !== undefined) entry.Protocol = entry.Protocol.toLowerCase();
      break;
  }
  return true;
}

/**
 * Entries checked one by one, for a document whose chains are then checked too: the entries
 * whose schema holds (with the problems of their own rules in `issues`), and what a chain must
 * not be compiled through, since its problems would only follow from an entry already reported.
 */
export interface CheckedEntries {
  /** Every entry whose schema holds, by kind and `Name`: the first of a name given twice. */
  readonly set: ConfigEntrySet;
  /** Each entry's own problems, in the order of the entries. */
  readonly issues: EntryIssues;
  /**
   * `<Kind>/<Name>` of each entry left out for its shape; `<Kind>/*` when such an entry has no
   * name (it may be meant for any service), `*` when it has no kind either.
   */
  readonly unusable: ReadonlySet<string>;
}

/** Check every entry of a document on its own (see {@link CheckedEntries}). */
export function checkConfigEntries(raw: readonly unknown[]): CheckedEntries {
  const issues = new EntryIssues();
  const unusable = new Set<string>();
  const set = {
    routers: new Map<string, ServiceRouterEntry>(),
    splitters: new Map<string, ServiceSplitterEntry>(),
    resolvers: new Map<string, ServiceResolverEntry>(),
    defaults: new Map<string, ServiceDefaultsEntry>(),
  };
  raw.forEach((r, i) => {
    const e = checkEntry(r, issues, i);
    if (!e) {
      unusable.add(unusableKey(r));
      return;
    }
    const map: Map<string, ConfigEntry> =
      e.Kind === 'service-router'
        ? set.routers
        : e.Kind === 'service-splitter'
          ? set.splitters
          : e.Kind === 'service-resolver'
            ? set.resolvers
            : set.defaults;
    if (map.has(e.Name)) issues.add(`${e.Kind}/${e.Name}`, '', 'defined more than once');
    else map.set(e.Name, e);
  });
  return { set, issues, unusable };
}

function unusableKey(raw: unknown): string {
  const o = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>) : {};
  const kind = o.Kind;
  if (typeof kind !== 'string' || !(CONFIG_ENTRY_KINDS as readonly string[]).includes(kind)) return '*';
  return typeof o.Name === 'string' && o.Name !== '' ? `${kind}/${o.Name}` : `${kind}/*`;
}

/**
 * Validate a list of entries as one document: each entry, then duplicates (same `Kind` and
 * `Name` twice). Chain-level rules are checked by `compileRoutingConfig`, which reports them
 * with these.
 *
 * @throws MeshError `MESH_CONFIG_INVALID` listing every problem by entry and field path.
 */
export function validateConfigEntries(raw: readonly unknown[], what = 'config entries'): ConfigEntrySet {
  const checked = checkConfigEntries(raw);
  checked.issues.throwIfAny(what);
  return checked.set;
}

function checkHeaderMods(
  h: HeaderModifiers | undefined,
  label: string,
  path: string,
  issues: EntryIssues,
): void {
  if (!h) return;
  for (const k of ['Add', 'Set'] as const) {
    for (const name of Object.keys(h[k] ?? {})) {
      if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name))
        issues.add(label, `${path}.${k}`, 'invalid header name', name);
    }
  }
}

function checkRouter(r: ServiceRouterEntry, label: string, issues: EntryIssues): void {
  (r.Routes ?? []).forEach((route, i) => {
    const at = `Routes[${i}]`;
    const http: HttpMatch | undefined = route.Match?.HTTP;
    if (http) checkHttpMatch(http, i, label, `${at}.Match.HTTP`, issues);
    const d: RouteDestination | undefined = route.Destination;
    if (!d) return;
    checkTenancy(d, label, `${at}.Destination.`, issues);
    if (d.PrefixRewrite !== undefined && d.PrefixRewrite !== '' && !http?.PathExact && !http?.PathPrefix) {
      issues.add(
        label,
        `${at}.Destination.PrefixRewrite`,
        `Route[${i}] cannot make use of PrefixRewrite without configuring either PathExact or PathPrefix`,
      );
    }
    checkDuration(d.RequestTimeout, label, `${at}.Destination.RequestTimeout`, issues);
    checkDuration(d.IdleTimeout, label, `${at}.Destination.IdleTimeout`, issues);
    (d.RetryOn ?? []).forEach((c, j) => {
      if (!RETRY_ON_CONDITIONS.includes(c)) {
        issues.add(
          label,
          `${at}.Destination.RetryOn[${j}]`,
          `Route[${i}] contains an invalid retry condition: "${c}"`,
        );
      }
    });
    checkHeaderMods(d.RequestHeaders, label, `${at}.Destination.RequestHeaders`, issues);
    checkHeaderMods(d.ResponseHeaders, label, `${at}.Destination.ResponseHeaders`, issues);
  });
}

function checkHttpMatch(http: HttpMatch, i: number, label: string, at: string, issues: EntryIssues): void {
  const paths = [http.PathExact, http.PathPrefix, http.PathRegex].filter((p) => p !== undefined && p !== '');
  if (paths.length > 1) {
    issues.add(
      label,
      at,
      `Route[${i}] should only contain at most one of PathExact, PathPrefix, or PathRegex`,
    );
  }
  for (const k of ['PathExact', 'PathPrefix'] as const) {
    const p = http[k];
    if (p !== undefined && p !== '' && !p.startsWith('/')) {
      issues.add(label, `${at}.${k}`, `Route[${i}] ${k} doesn't start with '/': ${JSON.stringify(p)}`, p);
    }
  }
  if (http.PathRegex) regex(http.PathRegex, label, `${at}.PathRegex`, issues);
  (http.Header ?? []).forEach((h, j) => {
    const p = `${at}.Header[${j}]`;
    if (h.Name === '') issues.add(label, `${p}.Name`, `Route[${i}] Header[${j}] missing required Name field`);
    // As Consul counts them: an empty string is Go's unset value (`Exact: ""` is no matcher).
    const n = [h.Present === true, h.Exact, h.Prefix, h.Suffix, h.Regex].filter(
      (v) => v === true || (typeof v === 'string' && v !== ''),
    ).length;
    if (n !== 1) {
      issues.add(
        label,
        p,
        `Route[${i}] Header[${j}] should only contain one of Present, Exact, Prefix, Suffix, or Regex`,
      );
    }
    if (h.Regex !== undefined) regex(h.Regex, label, `${p}.Regex`, issues);
  });
  (http.QueryParam ?? []).forEach((q, j) => {
    const p = `${at}.QueryParam[${j}]`;
    if (q.Name === '')
      issues.add(label, `${p}.Name`, `Route[${i}] QueryParam[${j}] missing required Name field`);
    const n = [q.Present === true, q.Exact, q.Regex].filter(
      (v) => v === true || (typeof v === 'string' && v !== ''),
    ).length;
    if (n !== 1)
      issues.add(
        label,
        p,
        `Route[${i}] QueryParam[${j}] should only contain one of Present, Exact, or Regex`,
      );
    if (q.Regex !== undefined) regex(q.Regex, label, `${p}.Regex`, issues);
  });
  if (http.Methods) {
    const seen = new Set<string>();
    http.Methods = http.Methods.map((m, j) => {
      const up = m.toUpperCase();
      if (!ROUTE_METHODS.includes(up)) {
        issues.add(label, `${at}.Methods[${j}]`, `Route[${i}] Methods contains an invalid method "${up}"`);
      } else if (seen.has(up)) {
        issues.add(label, `${at}.Methods[${j}]`, `Route[${i}] Methods contains "${up}" more than once`);
      }
      seen.add(up);
      return up;
    });
  }
}

function regex(pattern: string, label: string, path: string, issues: EntryIssues): void {
  const err = re2Error(pattern);
  if (err) issues.add(label, path, `regular expression does not compile: ${err}`, pattern);
}

function checkSplitter(s: ServiceSplitterEntry, label: string, issues: EntryIssues): void {
  const splits = s.Splits ?? [];
  if (splits.length === 0) {
    issues.add(label, 'Splits', 'no splits configured');
    return;
  }
  let sum = 0;
  const seen = new Set<string>();
  splits.forEach((sp, i) => {
    const at = `Splits[${i}]`;
    checkTenancy(sp, label, `${at}.`, issues);
    if (sp.Weight < 0) issues.add(label, `${at}.Weight`, 'split weight must not be negative', sp.Weight);
    // Consul rounds each weight to 0.01 on write and checks the rounded sum is exactly 100.
    sp.Weight = Math.round(sp.Weight * 100) / 100;
    sum += Math.round(sp.Weight * 100);
    const svc = sp.Service || s.Name;
    const key = `service="${svc}", subset="${sp.ServiceSubset ?? ''}", namespace="default", partition="default"`;
    if (seen.has(key)) issues.add(label, at, `split destination occurs more than once: ${key}`);
    seen.add(key);
    checkHeaderMods(sp.RequestHeaders, label, `${at}.RequestHeaders`, issues);
    checkHeaderMods(sp.ResponseHeaders, label, `${at}.ResponseHeaders`, issues);
  });
  if (sum !== 10_000) {
    issues.add(label, 'Splits', `the sum of all split weights must be 100, not ${formatWeight(sum / 100)}`);
  }
}

function formatWeight(w: number): string {
  return Number.isInteger(w) ? String(w) : w.toFixed(2).replace(/0$/, '');
}
