/**
 * Route matchers, compiled once per config version (regexes precompiled), with Envoy's
 * semantics as Consul configures it (`agent/xds/routes.go`, Envoy's `RouteMatch`): all
 * case-sensitive; `PathPrefix` (`prefix`) is a plain string prefix of the whole `:path`, query
 * string included, so `/s?x=` matches `/s?x=1`; `PathExact` (`path`) and `PathRegex`
 * (`safe_regex`) compare the path once the query string is removed; regexes match the whole
 * value; a header matcher on an absent header fails unless it is `Present` + `Invert`; several
 * values of one header are joined with `,`; a query parameter's first value is compared as sent,
 * not percent-decoded and `+` not read as a space (Envoy's `QueryParamsMulti::parseQueryString`).
 */
import type { HttpMatch } from './entries.js';
import { compileRe2 } from './regex.js';

/** The request fields routing reads. Header names must be lower-case (as undici and Node give them). */
export interface RouteRequest {
  readonly method: string;
  /** The request target: path, optionally followed by `?query`. */
  readonly path: string;
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>>;
}

/** 0 none, 1 exact, 2 prefix, 3 regex. */
type PathKind = 0 | 1 | 2 | 3;
const PathKind = { None: 0, Exact: 1, Prefix: 2, Regex: 3 } as const;
/** 0 present, 1 exact, 2 prefix, 3 suffix, 4 regex. */
type ValueKind = 0 | 1 | 2 | 3 | 4;
const ValueKind = { Present: 0, Exact: 1, Prefix: 2, Suffix: 3, Regex: 4 } as const;

export interface ValueMatcher {
  readonly name: string;
  readonly kind: ValueKind;
  readonly value: string;
  readonly regex: RegExp | undefined;
  readonly invert: boolean;
}

/** A compiled `Match.HTTP`. */
export interface RouteMatcher {
  readonly pathKind: PathKind;
  readonly path: string;
  readonly pathRegex: RegExp | undefined;
  readonly methods: readonly string[] | undefined;
  readonly headers: readonly ValueMatcher[];
  readonly query: readonly ValueMatcher[];
}

/** Compile a route's `Match.HTTP` (missing or empty: matches every request). */
export function compileMatch(http: HttpMatch | undefined): RouteMatcher {
  let pathKind: PathKind = PathKind.None;
  let path = '';
  let pathRegex: RegExp | undefined;
  if (http?.PathExact) {
    pathKind = PathKind.Exact;
    path = http.PathExact;
  } else if (http?.PathPrefix) {
    pathKind = PathKind.Prefix;
    path = http.PathPrefix;
  } else if (http?.PathRegex) {
    pathKind = PathKind.Regex;
    pathRegex = compileRe2(http.PathRegex, true);
  }
  const headers = (http?.Header ?? []).map(
    (h): ValueMatcher =>
      Object.freeze(
        h.Present
          ? {
              name: h.Name.toLowerCase(),
              kind: ValueKind.Present,
              value: '',
              regex: undefined,
              invert: h.Invert === true,
            }
          : h.Exact !== undefined
            ? {
                name: h.Name.toLowerCase(),
                kind: ValueKind.Exact,
                value: h.Exact,
                regex: undefined,
                invert: h.Invert === true,
              }
            : h.Prefix !== undefined
              ? {
                  name: h.Name.toLowerCase(),
                  kind: ValueKind.Prefix,
                  value: h.Prefix,
                  regex: undefined,
                  invert: h.Invert === true,
                }
              : h.Suffix !== undefined
                ? {
                    name: h.Name.toLowerCase(),
                    kind: ValueKind.Suffix,
                    value: h.Suffix,
                    regex: undefined,
                    invert: h.Invert === true,
                  }
                : {
                    name: h.Name.toLowerCase(),
                    kind: ValueKind.Regex,
                    value: h.Regex ?? '',
                    regex: compileRe2(h.Regex ?? '', true),
                    invert: h.Invert === true,
                  },
      ),
  );
  const query = (http?.QueryParam ?? []).map(
    (q): ValueMatcher =>
      Object.freeze(
        q.Present
          ? { name: q.Name, kind: ValueKind.Present, value: '', regex: undefined, invert: false }
          : q.Exact !== undefined
            ? { name: q.Name, kind: ValueKind.Exact, value: q.Exact, regex: undefined, invert: false }
            : {
                name: q.Name,
                kind: ValueKind.Regex,
                value: q.Regex ?? '',
                regex: compileRe2(q.Regex ?? '', true),
                invert: false,
              },
      ),
  );
  const methods = http?.Methods?.length ? Object.freeze(http.Methods.map((m) => m.toUpperCase())) : undefined;
  return Object.freeze({
    pathKind,
    path,
    pathRegex,
    methods,
    headers: Object.freeze(headers),
    query: Object.freeze(query),
  });
}

function valueMatches(m: ValueMatcher, v: string): boolean {
  switch (m.kind) {
    case ValueKind.Present:
      return true;
    case ValueKind.Exact:
      return v === m.value;
    case ValueKind.Prefix:
      return v.startsWith(m.value);
    case ValueKind.Suffix:
      return v.endsWith(m.value);
    case ValueKind.Regex:
      return m.regex!.test(v);
  }
}

/**
 * The query string's parameters as Envoy's route matcher reads them: split on `&`, then on the
 * first `=` (none: the value is `''`), names and values raw (no percent-decoding, `+` kept);
 * the first value of a repeated name.
 */
export function rawQueryParams(query: string): Map<string, string> {
  const out = new Map<string, string>();
  let start = 0;
  while (start < query.length) {
    let end = query.indexOf('&', start);
    if (end < 0) end = query.length;
    const eq = query.indexOf('=', start);
    const [name, value] =
      eq >= 0 && eq < end
        ? [query.slice(start, eq), query.slice(eq + 1, end)]
        : [query.slice(start, end), ''];
    if (!out.has(name)) out.set(name, value);
    start = end + 1;
  }
  return out;
}

/**
 * Per-request scratch: the path without its query and the parsed query, computed at most once
 * per request and only when a matcher needs them.
 */
export class MatchScratch {
  private pathOnly: string | undefined;
  private params: Map<string, string> | undefined;
  private qIndex = -2;
  constructor(readonly req: RouteRequest) {}
  queryIndex(): number {
    if (this.qIndex === -2) this.qIndex = this.req.path.indexOf('?');
    return this.qIndex;
  }
  path(): string {
    if (this.pathOnly === undefined) {
      const q = this.queryIndex();
      this.pathOnly = q < 0 ? this.req.path : this.req.path.slice(0, q);
    }
    return this.pathOnly;
  }
  query(): Map<string, string> {
    if (this.params === undefined) {
      const q = this.queryIndex();
      this.params = rawQueryParams(q < 0 ? '' : this.req.path.slice(q + 1));
    }
    return this.params;
  }
}

/**
 * True when the request satisfies every criterion of the matcher. `pathEnd` is the length of the
 * path part of `req.path` (the index of `?`, else its length): computed once per request.
 */
export function matches(
  m: RouteMatcher,
  req: RouteRequest,
  pathEnd: number,
  scratch: MatchScratch | undefined,
): boolean {
  const target = req.path;
  const kind = m.pathKind;
  if (kind === 1) {
    // Exact: the path part has the same length and starts with it; no slicing.
    if (pathEnd !== m.path.length || !target.startsWith(m.path)) return false;
  } else if (kind === 2) {
    // Prefix: Envoy's `prefix` runs against the whole `:path`, query string included.
    if (!target.startsWith(m.path)) return false;
  } else if (kind === 3) {
    const path = (scratch ?? new MatchScratch(req)).path();
    if (!m.pathRegex!.test(path)) return false;
  }
  const methods = m.methods;
  if (methods !== undefined && !methods.includes(req.method) && !methods.includes(req.method.toUpperCase())) {
    return false;
  }
  const headers = m.headers;
  for (let i = 0; i < headers.length; i++) {
    const h = headers[i]!;
    const raw = req.headers[h.name];
    if (raw === undefined) {
      if (!(h.kind === ValueKind.Present && h.invert)) return false;
      continue;
    }
    const v = typeof raw === 'string' ? raw : raw.join(',');
    if (valueMatches(h, v) === h.invert) return false;
  }
  if (m.query.length > 0) {
    const params = (scratch ?? new MatchScratch(req)).query();
    for (let i = 0; i < m.query.length; i++) {
      const q = m.query[i]!;
      const v = params.get(q.name);
      if (v === undefined || !valueMatches(q, v)) return false;
    }
  }
  return true;
}
