/**
 * The compiled routing model: one `RoutingChain` per service, whatever the source. For Consul it
 * is parsed from `/v1/discovery-chain/<service>` (Consul compiles the entries itself); for the file
 * and etcd it is compiled from the entries by `compile.ts`. Both build it through
 * {@link buildChain}, so the two paths cannot differ in how a chain behaves.
 *
 * A chain is immutable and holds every routing decision precomputed (one per route × split),
 * so routing a request allocates nothing: `route()` returns one of these frozen decisions.
 */
import type { LoadBalancerPatch } from '@proxyless/balancer';
import type { BexprPredicate } from './bexpr.js';
import type { HashPolicy, HeaderModifiers, ServiceRoute } from './entries.js';
import { compileMatch, type RouteMatcher } from './match.js';

/** Header edits: `add` appends a value, `set` replaces, `remove` deletes. Names lower-cased. */
export interface HeaderOps {
  readonly add: readonly (readonly [string, string])[];
  readonly set: readonly (readonly [string, string])[];
  readonly remove: readonly string[];
}

/** Route-level retry settings; they replace the service's retry policy for the route. */
export interface RetryOverride {
  readonly numRetries: number | undefined;
  readonly retryOnConnectFailure: boolean;
  readonly retryOn: readonly string[];
  readonly retryOnStatusCodes: readonly number[];
}

/** One target: a service (in a datacenter), optionally narrowed to a subset of its endpoints. */
export interface ChainTarget {
  /** Consul's target ID: `[<subset>.]<service>.<namespace>.<partition>.<datacenter>`. */
  readonly id: string;
  readonly service: string;
  /** `''` when the target is the whole service. */
  readonly subset: string;
  readonly datacenter: string;
  /** The subset's bexpr filter, `''` when none. */
  readonly filter: string;
  /** Compiled {@link filter}; `undefined` selects every endpoint. */
  readonly predicate: BexprPredicate | undefined;
  /** `OnlyPassing`: warning endpoints are excluded too. */
  readonly onlyPassing: boolean;
  readonly connectTimeoutMs: number;
}

/** How a target is resolved: its timeouts, balancer and failover order (a resolver node). */
export interface TargetResolver {
  readonly target: ChainTarget;
  /** True when no `service-resolver` entry exists for the service (Consul's default resolver). */
  readonly isDefault: boolean;
  readonly connectTimeoutMs: number;
  readonly requestTimeoutMs: number | undefined;
  /** Failover targets in order; the target itself never appears. */
  readonly failover: readonly ChainTarget[];
  /** The resolver's `LoadBalancer`, mapped onto the balancer's settings. */
  readonly loadBalancer: LoadBalancerPatch | undefined;
  /** `LoadBalancer.HashPolicies` as written (the balancer applies the first header/cookie/source one). */
  readonly hashPolicies: readonly HashPolicy[];
}

/** The outcome of routing one request. Frozen and shared: never mutate it. */
export interface RouteDecision {
  /** Index of the matched route; -1 when the service has no router. */
  readonly routeIndex: number;
  /** Index of the split taken; -1 when no splitter chose the target. */
  readonly splitIndex: number;
  readonly target: ChainTarget;
  readonly resolver: TargetResolver;
  /** Replace {@link rewriteFrom} (the matched prefix or exact path) with this; `undefined`: no rewrite. */
  readonly prefixRewrite: string | undefined;
  readonly rewriteFrom: string | undefined;
  /** Route, then split header edits, merged. */
  readonly requestHeaders: HeaderOps | undefined;
  readonly responseHeaders: HeaderOps | undefined;
  /** The route's `RequestTimeout`, else the target resolver's; `undefined`: the service policy. */
  readonly requestTimeoutMs: number | undefined;
  readonly idleTimeoutMs: number | undefined;
  /** The route's retry settings; `undefined`: the service policy. */
  readonly retry: RetryOverride | undefined;
}

/** A splitter's splits as the chain holds them (already flattened). */
export interface ChainSplit {
  readonly weight: number;
  readonly target: ChainTarget;
  readonly requestHeaders: HeaderModifiers | undefined;
  readonly responseHeaders: HeaderModifiers | undefined;
}

/** Where a route (or a chain without router) leads: a splitter or one target. */
export type ChainNext =
  | { readonly type: 'splitter'; readonly name: string; readonly splits: readonly ChainSplit[] }
  | { readonly type: 'resolver'; readonly target: ChainTarget };

/** One route of a router, compiled. */
export interface ChainRoute {
  readonly index: number;
  /** The route as written (with Consul's implicit catch-all last). */
  readonly definition: ServiceRoute;
  readonly matcher: RouteMatcher;
  readonly next: ChainNext;
  /** One decision per split of `next` (one when `next` is a resolver). */
  readonly decisions: readonly RouteDecision[];
  /** Cumulative split weights in 1/100 % (0..10000), parallel to `decisions`. */
  readonly thresholds: Int32Array;
}

/** The compiled chain of one service. */
export interface RoutingChain {
  readonly service: string;
  readonly protocol: string;
  readonly datacenter: string;
  /** True when no config entry shapes this chain: the service's own default resolver only. */
  readonly isDefault: boolean;
  /** Routes in order, Consul's implicit catch-all last; empty when the service has no router. */
  readonly routes: readonly ChainRoute[];
  /** Where requests go when there are no routes. */
  readonly start: ChainNext;
  readonly startDecisions: readonly RouteDecision[];
  readonly startThresholds: Int32Array;
  /** Every target the chain can reach (failover targets included), by ID. */
  readonly targets: ReadonlyMap<string, ChainTarget>;
  /** Resolver of every target a route or split leads to, by target ID. */
  readonly resolvers: ReadonlyMap<string, TargetResolver>;
}

/** What {@link buildChain} needs: the shape both the compiler and the Consul parser produce. */
export interface ChainSpec {
  readonly service: string;
  readonly protocol: string;
  readonly datacenter: string;
  readonly isDefault: boolean;
  readonly routes: readonly { readonly definition: ServiceRoute; readonly next: ChainNext }[];
  readonly start: ChainNext;
  readonly targets: ReadonlyMap<string, ChainTarget>;
  readonly resolvers: ReadonlyMap<string, TargetResolver>;
}

/** `'<subset>.<service>.default.default.<dc>'`, Consul's target ID (CE: default namespace and partition). */
export function targetId(service: string, subset: string, datacenter: string): string {
  return `${subset ? `${subset}.` : ''}${service}.default.default.${datacenter}`;
}

/**
 * Header modifiers as written, each applied after the ones before it (a later `Remove` or `Set` of
 * a name replaces the earlier edits of that name), → header ops (names lower-cased); `undefined`
 * when empty.
 */
export function headerOps(...mods: (HeaderModifiers | undefined)[]): HeaderOps | undefined {
  let add: [string, string][] = [];
  let set: [string, string][] = [];
  const remove: string[] = [];
  for (const m of mods) {
    if (!m) continue;
    // Applied after the ones before: what it removes or sets replaces their edits of that name.
    const replaced = new Set([...(m.Remove ?? []), ...Object.keys(m.Set ?? {})].map((k) => k.toLowerCase()));
    if (replaced.size > 0) {
      add = add.filter(([k]) => !replaced.has(k));
      set = set.filter(([k]) => !replaced.has(k));
    }
    for (const [k, v] of Object.entries(m.Add ?? {})) add.push([k.toLowerCase(), v]);
    for (const [k, v] of Object.entries(m.Set ?? {})) set.push([k.toLowerCase(), v]);
    for (const k of m.Remove ?? []) remove.push(k.toLowerCase());
  }
  if (add.length === 0 && set.length === 0 && remove.length === 0) return undefined;
  return Object.freeze({ add: Object.freeze(add), set: Object.freeze(set), remove: Object.freeze(remove) });
}

function decisionsFor(
  next: ChainNext,
  routeIndex: number,
  route: ServiceRoute | undefined,
  resolvers: ReadonlyMap<string, TargetResolver>,
  durationMs: (v: unknown) => number | undefined,
): { decisions: RouteDecision[]; thresholds: Int32Array } {
  const d = route?.Destination;
  const http = route?.Match?.HTTP;
  const rewriteFrom = d?.PrefixRewrite ? (http?.PathExact ?? http?.PathPrefix) : undefined;
  // Consul's `ServiceRouteDestination.HasRetryFeatures`: a `NumRetries` of 0 is unset (Go's zero
  // value; Envoy's default of one retry then applies) and `RetryOnConnectFailure: false` is no
  // retry setting at all, so an entry means the same from a file, etcd or Consul, which drops
  // zero values.
  const hasRetry =
    d !== undefined &&
    ((d.NumRetries ?? 0) > 0 ||
      d.RetryOnConnectFailure === true ||
      (d.RetryOn ?? []).length > 0 ||
      (d.RetryOnStatusCodes ?? []).length > 0);
  const retry: RetryOverride | undefined = hasRetry
    ? Object.freeze({
        numRetries: (d?.NumRetries ?? 0) > 0 ? d?.NumRetries : undefined,
        retryOnConnectFailure: d?.RetryOnConnectFailure ?? false,
        retryOn: Object.freeze([...(d?.RetryOn ?? [])]),
        retryOnStatusCodes: Object.freeze([...(d?.RetryOnStatusCodes ?? [])]),
      })
    : undefined;
  const routeTimeout = durationMs(d?.RequestTimeout);
  const idle = durationMs(d?.IdleTimeout);
  const make = (target: ChainTarget, splitIndex: number, split: ChainSplit | undefined): RouteDecision => {
    const resolver = resolvers.get(target.id);
    if (!resolver) throw new Error(`internal: no resolver for target ${target.id}`);
    return Object.freeze({
      routeIndex,
      splitIndex,
      target,
      resolver,
      prefixRewrite: rewriteFrom !== undefined ? d?.PrefixRewrite : undefined,
      rewriteFrom,
      // Envoy applies a weighted cluster's (the split's) edits before the route's: on one name, the
      // route's win (`request_headers_to_add` of a `WeightedCluster`).
      requestHeaders: headerOps(split?.requestHeaders, d?.RequestHeaders),
      responseHeaders: headerOps(split?.responseHeaders, d?.ResponseHeaders),
      requestTimeoutMs:
        routeTimeout !== undefined && routeTimeout > 0 ? routeTimeout : resolver.requestTimeoutMs,
      idleTimeoutMs: idle,
      retry,
    });
  };
  if (next.type === 'resolver') {
    return { decisions: [make(next.target, -1, undefined)], thresholds: Int32Array.of(10_000) };
  }
  const thresholds = new Int32Array(next.splits.length);
  let cum = 0;
  const decisions = next.splits.map((s, i) => {
    cum += Math.round(s.weight * 100);
    thresholds[i] = cum;
    return make(s.target, i, s);
  });
  return { decisions, thresholds };
}

/**
 * Freeze a chain spec into a routing chain: compile matchers (regexes once), precompute every
 * decision. `durationMs` turns the route's timeout fields into milliseconds.
 */
export function buildChain(spec: ChainSpec, durationMs: (v: unknown) => number | undefined): RoutingChain {
  const routes = spec.routes.map((r, index): ChainRoute => {
    const { decisions, thresholds } = decisionsFor(r.next, index, r.definition, spec.resolvers, durationMs);
    return Object.freeze({
      index,
      definition: r.definition,
      matcher: compileMatch(r.definition.Match?.HTTP),
      next: r.next,
      decisions: Object.freeze(decisions),
      thresholds,
    });
  });
  const start = decisionsFor(spec.start, -1, undefined, spec.resolvers, durationMs);
  return Object.freeze({
    service: spec.service,
    protocol: spec.protocol,
    datacenter: spec.datacenter,
    isDefault: spec.isDefault,
    routes: Object.freeze(routes),
    start: spec.start,
    startDecisions: Object.freeze(start.decisions),
    startThresholds: start.thresholds,
    targets: spec.targets,
    resolvers: spec.resolvers,
  });
}
