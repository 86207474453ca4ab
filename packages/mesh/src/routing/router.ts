/**
 * The routing decision for one request: the first route whose matcher holds wins (Consul's
 * implicit catch-all is last, so a router always decides), then its splitter draws a split by
 * weight, giving the target. A chain without a router goes straight to its splitter or resolver.
 *
 * Cost: O(routes) matcher checks; no allocation unless a route needs the path without its query
 * (regex paths) or the parsed query, and then once per request. The decision itself is
 * precomputed and shared.
 */
import type { Random } from '@proxyless/core';
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

type HeaderRecord = Record<string, string | string[] | undefined>;

function put(out: HeaderRecord, name: string, value: string): void {
  const k = name.toLowerCase();
  const cur = out[k];
  if (cur === undefined) out[k] = value;
  else if (Array.isArray(cur)) cur.push(value);
  else out[k] = [cur, value];
}

/**
 * Build the routing view of a request from undici dispatch options' `method`, `path` and
 * `headers` in any of undici's forms: a record (used as is when every name is lower-case), a flat
 * `[name, value, …]` array, or an iterable of `[name, value]` pairs (`Headers`).
 */
export function routeRequestOf(method: string, path: string, headers: unknown): RouteRequest {
  if (headers === undefined || headers === null) return { method, path, headers: {} };
  if (Array.isArray(headers)) {
    const out: HeaderRecord = {};
    for (let i = 0; i + 1 < headers.length; i += 2) put(out, String(headers[i]), String(headers[i + 1]));
    return { method, path, headers: out };
  }
  if (typeof headers === 'object' && Symbol.iterator in headers) {
    const out: HeaderRecord = {};
    for (const [k, v] of headers as Iterable<[string, string]>) put(out, k, v);
    return { method, path, headers: out };
  }
  const rec = headers as Record<string, string | readonly string[] | undefined>;
  for (const k in rec) {
    if (k !== k.toLowerCase()) {
      const out: HeaderRecord = {};
      for (const [name, v] of Object.entries(rec)) {
        if (v === undefined) continue;
        if (typeof v === 'string') put(out, name, v);
        else for (const x of v) put(out, name, x);
      }
      return { method, path, headers: out };
    }
  }
  return { method, path, headers: rec };
}
