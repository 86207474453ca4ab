/**
 * The routing decision for one request: the first route whose matcher holds wins (Consul's
 * implicit catch-all is last, so a router always decides), then its splitter draws a split by
 * weight, giving the target. A chain without a router goes straight to its splitter or resolver.
 *
 * Cost: O(routes) matcher checks; no allocation unless a route needs the path without its query
 * (regex paths) or the parsed query, and then once per request. The decision itself is
 * precomputed and shared.
 */
import {
  type DispatchHeaders,
  forEachHeader,
  hasHeader,
  hasSafeIterator,
  pairsToFlat,
  type Random,
} from '@proxyless/core';
import { assertUndiciHeaders } from '../request.js';
import type { HeaderOps, RouteDecision, RoutingChain } from './chain.js';
import { MatchScratch, matches, type RouteRequest } from './match.js';

export type { RouteRequest } from './match.js';

function pick(decisions: readonly RouteDecision[], thresholds: Int32Array, random: Random): RouteDecision {
  if (decisions.length === 1) return decisions[0]!;
  // Weights are in 1/100 % (Consul rounds them to 0.01), so draw an integer in [0, 10000).
  const r = Math.floor(random.next() * 10_000);
  for (let i = 0; i < thresholds.length; i++) if (r < thresholds[i]!) return decisions[i]!;
  return decisions[decisions.length - 1]!;
}

/**
 * Route one request through a compiled chain.
 *
 * @example
 * const d = route(chain, { method: 'GET', path: '/v2/items?x=1', headers: { 'x-canary': '1' } }, random);
 * d.target.service; d.target.subset; d.requestTimeoutMs;
 */
export function route(chain: RoutingChain, request: RouteRequest, random: Random): RouteDecision {
  const routes = chain.routes;
  if (routes.length === 0) return pick(chain.startDecisions, chain.startThresholds, random);
  const q = request.path.indexOf('?');
  const pathEnd = q < 0 ? request.path.length : q;
  let scratch: MatchScratch | undefined;
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i]!;
    const m = r.matcher;
    if (scratch === undefined && (m.pathRegex !== undefined || m.query.length > 0))
      scratch = new MatchScratch(request);
    if (matches(m, request, pathEnd, scratch)) return pick(r.decisions, r.thresholds, random);
  }
  // Unreachable with a chain built from Consul or our compiler (the catch-all matches all), kept
  // for hand-built chains: no match falls through to the splitter or resolver.
  return pick(chain.startDecisions, chain.startThresholds, random);
}

/** The request target after the decision's `PrefixRewrite` (Envoy `prefix_rewrite`). */
export function rewritePath(decision: RouteDecision, path: string): string {
  const from = decision.rewriteFrom;
  if (from === undefined || decision.prefixRewrite === undefined || !path.startsWith(from)) return path;
  return decision.prefixRewrite + path.slice(from.length);
}

/**
 * Apply header ops to a header record (lower-case names) in place: remove, then set, then add
 * (an added value joins an existing one, as repeated headers do).
 */
export function applyHeaderOps(
  headers: Record<string, string | string[] | undefined>,
  ops: HeaderOps | undefined,
): void {
  if (!ops) return;
  for (const name of ops.remove) delete headers[name];
  for (const [name, value] of ops.set) headers[name] = value;
  for (const [name, value] of ops.add) {
    const cur = headers[name];
    if (cur === undefined) headers[name] = value;
    else if (Array.isArray(cur)) cur.push(value);
    else headers[name] = [cur, value];
  }
}

/**
 * The caller's request headers with a route's edits, in undici's flat `[name, value, …]` form:
 * names as the caller wrote them, values as given (undici reads both forms with the same rules,
 * so what it refuses it still refuses; a header the route drops is checked as undici would), repeated headers in their order. `host` is added when the
 * caller set none; then `remove`, `set` (replacing every header of that name, any case) and `add`
 * apply, as {@link applyHeaderOps} does to a record. The caller's headers as they are when there is
 * nothing to do.
 */
export function editRequestHeaders(
  headers: DispatchHeaders,
  ops: HeaderOps | undefined,
  host: string | undefined,
): DispatchHeaders {
  const addHost = host !== undefined && !hasHeader(headers, 'host');
  if (ops === undefined && !addHost) return headers;
  let flat: unknown[];
  if (headers == null) flat = [];
  else if (Array.isArray(headers)) flat = headers.slice();
  else if (typeof headers === 'object' && hasSafeIterator(headers))
    flat = pairsToFlat(headers as Iterable<unknown>) as unknown as unknown[];
  else {
    flat = [];
    const rec = headers as Record<string, unknown>;
    for (const key of Object.keys(rec)) flat.push(key, rec[key]);
  }
  if (addHost) flat.push('host', host);
  if (ops === undefined) return flat as unknown as DispatchHeaders;
  const drop = new Set([...ops.remove, ...ops.set.map(([k]) => k)]);
  const out: unknown[] = [];
  let dropped = false;
  for (let i = 0; i + 1 < flat.length; i += 2) {
    if (drop.has(String(flat[i]).toLowerCase())) {
      dropped = true;
      continue;
    }
    out.push(flat[i], flat[i + 1]);
  }
  // A header dropped before undici reads it: what undici would refuse of the caller's headers, it
  // still refuses, with undici's own error for the first it would meet (`processHeader`'s rules).
  // (Checked as read into `flat`: an iterable given may be one-shot.)
  if (dropped) assertUndiciHeaders(flat);
  for (const [k, v] of ops.set) out.push(k, v);
  for (const [k, v] of ops.add) out.push(k, v);
  return out as unknown as DispatchHeaders;
}

type HeaderRecord = Record<string, string | string[] | undefined>;

function put(out: HeaderRecord, name: string, value: string): void {
  const k = name.toLowerCase();
  const cur = out[k];
  if (cur === undefined) out[k] = value;
  else if (Array.isArray(cur)) cur.push(value);
  else out[k] = [cur, value];
}

/**
 * A header value as the server reads it: as undici sends it (`processHeader`: `null` empty,
 * anything else as text), without the whitespace around it that HTTP parsers drop (RFC 9110
 * §5.5: Envoy and Node's server both match and show `x-canary: ' 1'` as `1`).
 */
function sent(value: unknown): string {
  const text = value === null ? '' : typeof value === 'string' ? value : String(value);
  return hasOws(text) ? text.replace(/^[ \t]+|[ \t]+$/g, '') : text;
}

/** Whether a value starts or ends with optional whitespace (SP, HTAB). */
function hasOws(v: string): boolean {
  const a = v.charCodeAt(0);
  const z = v.charCodeAt(v.length - 1);
  return a === 32 || a === 9 || z === 32 || z === 9;
}

/**
 * Build the routing view of a request from undici dispatch options' `method`, `path` (with
 * `query` added as undici adds it) and `headers` in any of undici's forms — a record, a flat
 * `[name, value, …]` array, or an iterable of `[name, value]` pairs — with names lower-cased and
 * values as the server reads them: a number as its text, `null` empty, `undefined` left out, the
 * whitespace around a value dropped. (An all-lower-case record of strings without such whitespace
 * is used as is.) Malformed headers are undici's to refuse.
 */
export function routeRequestOf(method: string, path: string, headers: unknown): RouteRequest {
  if (headers === undefined || headers === null) return { method, path, headers: {} };
  if (!Array.isArray(headers) && typeof headers === 'object' && !hasSafeIterator(headers)) {
    const rec = headers as Record<string, unknown>;
    let plain = true;
    for (const k in rec) {
      if (!Object.hasOwn(rec, k)) continue;
      const v = rec[k];
      if (k !== k.toLowerCase() || (v !== undefined && (typeof v !== 'string' || hasOws(v)))) {
        plain = false;
        break;
      }
    }
    if (plain) return { method, path, headers: rec as HeaderRecord };
  }
  const out: HeaderRecord = {};
  try {
    forEachHeader(headers as DispatchHeaders, (name, v) => {
      if (v === undefined) return;
      if (Array.isArray(v)) for (const x of v) put(out, name, sent(x));
      else put(out, name, sent(v));
    });
  } catch {
    // Malformed: routed as it stands; undici refuses the request when it is sent.
  }
  return { method, path, headers: out };
}
