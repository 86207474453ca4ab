/**
 * The discovery-chain compiler of one service (`compile.ts` says what it follows): router →
 * splitters → resolvers, with the rules that span entries, and the arithmetic of flattened splits
 * and merged header edits.
 */

import { DEFAULT_CONNECT_TIMEOUT_MS as RESILIENCE_DEFAULT_CONNECT_TIMEOUT_MS } from '@proxyless/resilience';
import { type BexprPredicate, compileBexpr } from './bexpr.js';
import {
  buildChain,
  type ChainNext,
  type ChainSplit,
  type ChainTarget,
  type RoutingChain,
  type TargetResolver,
  targetId,
} from './chain.js';
import type { HeaderModifiers, RouteDestination, ServiceResolverEntry, ServiceRoute } from './entries.js';
import { type EntryIssues, goDurationMs } from './entry-issues.js';
import { mapLoadBalancer } from './load-balancer.js';
import type { ConfigEntrySet } from './validate.js';

/** Protocols that allow routers and splitters (Consul: `http`, `http2`, `grpc`). */
export const L7_PROTOCOLS: readonly string[] = Object.freeze(['http', 'http2', 'grpc']);

/**
 * Connect timeout of a resolver that sets none: Consul's default, 5 s, which is also the
 * `connectTimeout` default of a service ({@link RESILIENCE_DEFAULT_CONNECT_TIMEOUT_MS}).
 */
export const DEFAULT_CONNECT_TIMEOUT_MS: number = RESILIENCE_DEFAULT_CONNECT_TIMEOUT_MS;

interface Origin {
  readonly entry: string;
  readonly path: string;
}

/** A chain not compiled further: its problem is recorded (or was, with the entry it reached). */
export class Abort extends Error {}

const KIND_OF = {
  routers: 'service-router',
  splitters: 'service-splitter',
  resolvers: 'service-resolver',
  defaults: 'service-defaults',
} as const;

type EntryOf<K extends keyof ConfigEntrySet> =
  ConfigEntrySet[K] extends ReadonlyMap<string, infer V> ? V : never;

export const NONE: ReadonlySet<string> = new Set();

/** The protocol of a service: its `service-defaults` `Protocol`, else `tcp` (lower-cased). */
export function protocolOf(set: ConfigEntrySet, service: string): string {
  return (set.defaults.get(service)?.Protocol || 'tcp').toLowerCase();
}
/** Compiles the chain of one service (see compile.ts); a problem is recorded, then {@link Abort} thrown. */
export class ChainCompiler {
  readonly targets = new Map<string, ChainTarget>();
  readonly resolvers = new Map<string, TargetResolver>();
  /** The service of each target this chain resolved (a target ID does not say it unambiguously). */
  readonly #targetService = new Map<string, string>();
  /** `undefined` when its `service-defaults` was left out for its shape: no protocol rule is checked. */
  readonly protocol: string | undefined;

  constructor(
    readonly set: ConfigEntrySet,
    readonly service: string,
    readonly dc: string,
    readonly issues: EntryIssues,
    /** Entries left out for their shape ({@link CheckedEntries.unusable}). */
    readonly unusable: ReadonlySet<string> = NONE,
    /**
     * The entries have problems of their own (already reported): a filter that does not compile
     * matches nothing here rather than throw, so the chain's other problems are still found.
     */
    readonly lenient = false,
  ) {
    this.protocol = this.protocolOf(service);
  }

  /** Whether the entry of a kind named `name` was left out for its shape (or may have been). */
  unusableEntry(kind: keyof ConfigEntrySet, name: string): boolean {
    const u = this.unusable;
    return u.size > 0 && (u.has('*') || u.has(`${KIND_OF[kind]}/*`) || u.has(`${KIND_OF[kind]}/${name}`));
  }

  /**
   * The entry of a kind named `name`. A chain that reaches an entry left out for its shape stops
   * there without a problem of its own: whatever it would report follows from that entry's.
   */
  entry<K extends keyof ConfigEntrySet>(kind: K, name: string): EntryOf<K> | undefined {
    if (this.unusableEntry(kind, name)) throw new Abort();
    return this.set[kind].get(name) as EntryOf<K> | undefined;
  }

  /** A service's protocol; `undefined` (unknown) when its `service-defaults` was left out. */
  protocolOf(service: string): string | undefined {
    return this.unusableEntry('defaults', service) ? undefined : protocolOf(this.set, service);
  }

  /**
   * A resolver's `DefaultSubset`. One that names no subset is the resolver's own problem, already
   * reported (a write rule): the chain goes on without it rather than report it again.
   */
  defaultSubset(r: ServiceResolverEntry | undefined): string {
    const d = r?.DefaultSubset || '';
    return d !== '' && !Object.hasOwn(r?.Subsets ?? {}, d) ? '' : d;
  }

  /** Record a problem; the chain is compiled on, so that its other problems are found too. */
  report(origin: Origin, message: string): void {
    const known = this.issues.list.some(
      (i) => i.entry === origin.entry && i.path === origin.path && i.message === message,
    );
    if (!known) this.issues.add(origin.entry, origin.path, message);
  }

  /** Record a problem the chain cannot be compiled past (a loop). */
  fail(origin: Origin, message: string): never {
    this.report(origin, message);
    throw new Abort();
  }

  compile(): RoutingChain {
    const svc = this.service;
    const router = this.entry('routers', svc);
    const splitter = this.entry('splitters', svc);
    if ((router || splitter) && this.protocol !== undefined && !L7_PROTOCOLS.includes(this.protocol)) {
      const entry = router ? `service-router/${svc}` : `service-splitter/${svc}`;
      this.report(
        { entry, path: '' },
        `discovery chain "${svc}" uses a protocol "${this.protocol}" that does not permit advanced routing or splitting behavior`,
      );
    }
    const routes: { definition: ServiceRoute; next: ChainNext }[] = [];
    if (router) {
      const all: ServiceRoute[] = [
        ...(router.Routes ?? []),
        { Match: { HTTP: { PathPrefix: '/' } }, Destination: { Service: svc } },
      ];
      all.forEach((definition, i) => {
        const origin = { entry: `service-router/${svc}`, path: `Routes[${i}].Destination` };
        routes.push({ definition, next: this.routeNext(definition.Destination, origin) });
      });
    }
    const start = this.splitterOrResolver(svc, { entry: `service-resolver/${svc}`, path: '' }, []);
    const isDefault = !router && !splitter && this.entry('resolvers', svc) === undefined;
    return buildChain(
      {
        service: svc,
        protocol: this.protocol ?? 'tcp',
        datacenter: this.dc,
        isDefault,
        routes,
        start,
        targets: this.targets,
        resolvers: this.resolvers,
      },
      goDurationMs,
    );
  }

  routeNext(d: RouteDestination | undefined, origin: Origin): ChainNext {
    const svc = d?.Service || this.service;
    if (d?.ServiceSubset)
      return { type: 'resolver', target: this.resolve(svc, d.ServiceSubset, this.dc, origin, []) };
    return this.splitterOrResolver(svc, origin, []);
  }

  splitterOrResolver(svc: string, origin: Origin, stack: readonly string[]): ChainNext {
    const splitter = this.entry('splitters', svc);
    if (!splitter) return { type: 'resolver', target: this.resolve(svc, '', this.dc, origin, []) };
    if (stack.includes(svc)) {
      // One loop, however many chains enter it: named from its least member (`loopRing`).
      const ring = loopRing(stack.slice(stack.indexOf(svc)));
      this.fail(
        { entry: `service-splitter/${ring[0]}`, path: 'Splits' },
        `detected circular reference: [${[...ring, ring[0]].join(' -> ')}]`,
      );
    }
    this.checkProtocol(svc, origin);
    const splits: ChainSplit[] = [];
    splitter.Splits?.forEach((s, i) => {
      const at: Origin = { entry: `service-splitter/${svc}`, path: `Splits[${i}]` };
      const splitSvc = s.Service || svc;
      if (!s.ServiceSubset && splitSvc !== svc && this.entry('splitters', splitSvc) !== undefined) {
        const inner = this.splitterOrResolver(splitSvc, at, [...stack, svc]);
        if (inner.type !== 'splitter') throw new Error('internal: expected a splitter');
        // Flattened as Consul does (`flattenAdjacentSplitterNodes`): the inner split's target,
        // its weight scaled by the outer one and rounded to 0.01, the outer split's header edits
        // merged in (`ServiceSplit.MergeParent`).
        for (const x of inner.splits) {
          splits.push({
            target: x.target,
            weight: flattenedWeight(s.Weight, x.weight),
            // Requests pass the outer split first: the inner one's edits win on the same name.
            requestHeaders: mergeHeaderModifiers(s.RequestHeaders, x.requestHeaders),
            // Responses pass the inner split first: the outer one's edits win.
            responseHeaders: mergeHeaderModifiers(x.responseHeaders, s.ResponseHeaders),
          });
        }
        return;
      }
      splits.push({
        weight: s.Weight,
        target: this.resolve(splitSvc, s.ServiceSubset ?? '', this.dc, at, []),
        requestHeaders: s.RequestHeaders,
        responseHeaders: s.ResponseHeaders,
      });
    });
    return { type: 'splitter', name: `${svc}.default.default`, splits };
  }

  checkProtocol(svc: string, origin: Origin): void {
    const p = this.protocolOf(svc);
    if (p !== this.protocol && p !== undefined && this.protocol !== undefined) {
      this.report(
        origin,
        `discovery chain "${this.service}" uses inconsistent protocols; service "${svc}.default.default" has "${p}" which is not "${this.protocol}"`,
      );
    }
  }

  /** Apply redirects and the default subset; build the target and its resolver node. */
  resolve(
    svc: string,
    subset: string,
    dc: string,
    origin: Origin,
    redirects: readonly string[],
  ): ChainTarget {
    const at = this.redirected(svc, subset, dc, origin, redirects);
    this.checkProtocol(at.svc, at.origin);
    const r = this.entry('resolvers', at.svc);
    const effective = at.subset || this.defaultSubset(r);
    const target = this.target(at.svc, effective, at.dc, r, at.origin);
    if (!this.resolvers.has(target.id)) this.resolvers.set(target.id, this.resolverNode(target, r));
    return target;
  }

  /**
   * Where a service, subset and datacenter end up once resolvers' `Redirect`s are followed (loops
   * detected), as Consul's `getResolverNode` does for a chain's targets and for each failover
   * target alike; the origin is the last redirect's.
   */
  redirected(
    svc: string,
    subset: string,
    dc: string,
    origin: Origin,
    redirects: readonly string[],
  ): { svc: string; subset: string; dc: string; origin: Origin } {
    const r = this.entry('resolvers', svc);
    const here = targetId(svc, subset, dc);
    this.#targetService.set(here, svc);
    if (r?.Redirect) {
      const rd = r.Redirect;
      const nextSvc = rd.Service || svc;
      const nextSubset = rd.ServiceSubset || (nextSvc === svc ? subset : '');
      const nextDc = rd.Datacenter || dc;
      const next = targetId(nextSvc, nextSubset, nextDc);
      if (next !== here) {
        if (redirects.includes(next)) {
          // One loop, however many chains enter it: named from its least member, and reported at
          // the resolver whose redirect closes it.
          const ring = loopRing([...redirects.slice(redirects.indexOf(next)), here]);
          const closer = ring[ring.length - 1] as string;
          this.fail(
            { entry: `service-resolver/${this.#targetService.get(closer) ?? svc}`, path: 'Redirect' },
            `detected circular resolver redirect: [${[...ring, ring[0]].join(' -> ')}]`,
          );
        }
        if (redirects.length > 32) this.fail(origin, 'too many resolver redirects');
        return this.redirected(
          nextSvc,
          nextSubset,
          nextDc,
          { entry: `service-resolver/${svc}`, path: 'Redirect' },
          [...redirects, here],
        );
      }
    }
    return { svc, subset, dc, origin };
  }

  target(
    svc: string,
    subset: string,
    dc: string,
    r: ServiceResolverEntry | undefined,
    origin: Origin,
  ): ChainTarget {
    const id = targetId(svc, subset, dc);
    const known = this.targets.get(id);
    if (known) return known;
    const def = subset ? r?.Subsets?.[subset] : undefined;
    // Reported once, where first reached; the chain goes on to a target that is never used.
    if (subset && !def) this.report(origin, `service "${svc}" does not have a subset named "${subset}"`);
    const filter = def?.Filter ?? '';
    const t: ChainTarget = Object.freeze({
      id,
      service: svc,
      subset,
      datacenter: dc,
      filter,
      predicate: filter ? this.predicate(filter) : undefined,
      onlyPassing: def?.OnlyPassing === true,
      connectTimeoutMs: connectTimeout(r),
    });
    this.targets.set(id, t);
    return t;
  }

  predicate(filter: string): BexprPredicate {
    try {
      return compileBexpr(filter);
    } catch (error) {
      if (this.lenient) return () => false;
      throw error;
    }
  }

  resolverNode(target: ChainTarget, r: ServiceResolverEntry | undefined): TargetResolver {
    const failover: ChainTarget[] = [];
    const fo = r?.Failover?.[target.subset] ?? r?.Failover?.['*'];
    if (fo) {
      const key = r?.Failover?.[target.subset] ? target.subset : '*';
      const origin = {
        entry: `service-resolver/${target.service}`,
        path: `Failover[${JSON.stringify(key)}]`,
      };
      const refs: { svc: string; subset: string; dc: string }[] = [];
      const ref = (service: string | undefined, subset: string | undefined, dc: string | undefined) => {
        const s = service || target.service;
        refs.push({
          svc: s,
          subset: subset || (s === target.service ? target.subset : ''),
          dc: dc || target.datacenter,
        });
      };
      if (fo.Targets?.length) for (const t of fo.Targets) ref(t.Service, t.ServiceSubset, t.Datacenter);
      else if (fo.Datacenters?.length) for (const dc of fo.Datacenters) ref(fo.Service, fo.ServiceSubset, dc);
      else ref(fo.Service, fo.ServiceSubset, undefined);
      for (const x of refs) {
        // The failover target's own resolver applies: its `Redirect`, then its `DefaultSubset`
        // (Consul resolves each failover target as a chain's, only not failing it over again).
        const at = this.redirected(x.svc, x.subset, x.dc, origin, []);
        const fr = this.entry('resolvers', at.svc);
        const subset = at.subset || (at.svc !== target.service ? this.defaultSubset(fr) : '');
        const t = this.target(at.svc, subset, at.dc, fr, at.origin);
        if (t.id !== target.id && !failover.includes(t)) failover.push(t);
      }
    }
    const requestTimeout = goDurationMs(r?.RequestTimeout);
    return Object.freeze({
      target,
      isDefault: r === undefined,
      connectTimeoutMs: connectTimeout(r),
      requestTimeoutMs: requestTimeout ? requestTimeout : undefined,
      failover: Object.freeze(failover),
      loadBalancer: mapLoadBalancer(r?.LoadBalancer),
      hashPolicies: Object.freeze([...(r?.LoadBalancer?.HashPolicies ?? [])]),
    });
  }
}

/**
 * The weight of an inner split after flattening: `outer × inner / 100`, rounded to 0.01 as
 * Consul's `NormalizeServiceSplitWeight` does. Computed in hundredths so that float error cannot
 * move a tie (`33.33 × 50 / 100` is 16.67).
 */
export function flattenedWeight(outer: number, inner: number): number {
  return Math.round((Math.round(outer * 100) * Math.round(inner * 100)) / 10_000) / 100;
}

/**
 * Consul's `MergeHTTPHeaderModifiers(base, overrides)`: `overrides`' `Add` and `Set` replace
 * `base`'s value of the same name (each field on its own: an `Add` never replaces a `Set`),
 * `Remove` is the union (base first, duplicates dropped). `undefined` when both are empty.
 */
export function mergeHeaderModifiers(
  base: HeaderModifiers | undefined,
  overrides: HeaderModifiers | undefined,
): HeaderModifiers | undefined {
  const empty = (m: HeaderModifiers | undefined) =>
    !m ||
    (Object.keys(m.Add ?? {}).length === 0 &&
      Object.keys(m.Set ?? {}).length === 0 &&
      (m.Remove ?? []).length === 0);
  if (empty(base)) return empty(overrides) ? undefined : overrides;
  if (empty(overrides)) return base;
  const add = { ...base?.Add, ...overrides?.Add };
  const set = { ...base?.Set, ...overrides?.Set };
  const remove = [...new Set([...(base?.Remove ?? []), ...(overrides?.Remove ?? [])])];
  return Object.freeze({
    ...(Object.keys(add).length ? { Add: add } : {}),
    ...(Object.keys(set).length ? { Set: set } : {}),
    ...(remove.length ? { Remove: remove } : {}),
  });
}

export function connectTimeout(r: ServiceResolverEntry | undefined): number {
  const ms = goDurationMs(r?.ConnectTimeout);
  return ms ? ms : DEFAULT_CONNECT_TIMEOUT_MS;
}

/**
 * The members of a loop (each once, in the order followed) rotated to start at the least: the same
 * for every chain that enters the loop, wherever it enters.
 */
function loopRing(members: readonly string[]): string[] {
  let start = 0;
  for (let i = 1; i < members.length; i++) if ((members[i] as string) < (members[start] as string)) start = i;
  return [...members.slice(start), ...members.slice(0, start)];
}
