/**
 * Config entries → one {@link RoutingChain} per service, as Consul's discovery-chain compiler
 * does it (`agent/consul/discoverychain/compile.go`, summarised in consul-api.md §7):
 * the service's own router (with the implicit catch-all route last) → splitters (recursive,
 * flattened: weights multiplied) → resolvers (`Redirect`, then `DefaultSubset`; a missing
 * resolver is a default one with a 5 s connect timeout; `Failover` per subset or `*`). A
 * flattened split keeps the outer split's header edits (`ServiceSplit.MergeParent`).
 *
 * Rules that need more than one entry are checked here with Consul's messages: the L7 protocol
 * gate, one protocol per chain, subsets that must exist, splitter and redirect loops. Failover is
 * not recursive (compile.go `detectCircularReferences`): a resolver's failover targets are a flat
 * list, a target's own failover is never followed, so resolvers failing over to each other
 * (a → b, b → a) are valid, as in Consul.
 */
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
import { type EntryIssue, EntryIssues, goDurationMs } from './entry-issues.js';
import { mapLoadBalancer } from './load-balancer.js';
import { type CheckedEntries, type ConfigEntrySet, checkConfigEntries } from './validate.js';

/** Protocols that allow routers and splitters (Consul: `http`, `http2`, `grpc`). */
export const L7_PROTOCOLS: readonly string[] = Object.freeze(['http', 'http2', 'grpc']);

/** Connect timeout of a resolver that sets none (Consul's default). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;

export interface CompileOptions {
  /** Datacenter the chains are compiled for. @defaultValue 'dc1' */
  readonly datacenter?: string;
}

/** Entries validated and compiled: one chain per service, the default chain for any other. */
export interface RoutingConfig {
  readonly entries: ConfigEntrySet;
  readonly datacenter: string;
  /** Services that have at least one entry, sorted. */
  readonly services: readonly string[];
  /** The chain of `service` (compiled on first use for services without entries). */
  chain(service: string): RoutingChain;
}

interface Origin {
  readonly entry: string;
  readonly path: string;
}

/** A chain not compiled further: its problem is recorded (or was, with the entry it reached). */
class Abort extends Error {}

const KIND_OF = {
  routers: 'service-router',
  splitters: 'service-splitter',
  resolvers: 'service-resolver',
  defaults: 'service-defaults',
} as const;

type EntryOf<K extends keyof ConfigEntrySet> =
  ConfigEntrySet[K] extends ReadonlyMap<string, infer V> ? V : never;

const NONE: ReadonlySet<string> = new Set();

/** The protocol of a service: its `service-defaults` `Protocol`, else `tcp` (lower-cased). */
export function protocolOf(set: ConfigEntrySet, service: string): string {
  return (set.defaults.get(service)?.Protocol || 'tcp').toLowerCase();
}

class ChainCompiler {
  readonly targets = new Map<string, ChainTarget>();
  readonly resolvers = new Map<string, TargetResolver>();
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
      this.fail(
        { entry: `service-splitter/${svc}`, path: 'Splits' },
        `detected circular reference: [${[...stack, svc].join(' -> ')}]`,
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
    const r = this.entry('resolvers', svc);
    const here = targetId(svc, subset, dc);
    if (r?.Redirect) {
      const rd = r.Redirect;
      const nextSvc = rd.Service || svc;
      const nextSubset = rd.ServiceSubset || (nextSvc === svc ? subset : '');
      const nextDc = rd.Datacenter || dc;
      const next = targetId(nextSvc, nextSubset, nextDc);
      if (next !== here) {
        if (redirects.includes(next)) {
          this.fail(
            { entry: `service-resolver/${svc}`, path: 'Redirect' },
            `detected circular resolver redirect: [${[...redirects, here, next].join(' -> ')}]`,
          );
        }
        if (redirects.length > 32) this.fail(origin, 'too many resolver redirects');
        return this.resolve(
          nextSvc,
          nextSubset,
          nextDc,
          { entry: `service-resolver/${svc}`, path: 'Redirect' },
          [...redirects, here],
        );
      }
    }
    this.checkProtocol(svc, origin);
    const effective = subset || this.defaultSubset(r);
    const target = this.target(svc, effective, dc, r, origin);
    if (!this.resolvers.has(target.id)) this.resolvers.set(target.id, this.resolverNode(target, r));
    return target;
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
        const fr = this.entry('resolvers', x.svc);
        const subset = x.subset || (x.svc !== target.service ? this.defaultSubset(fr) : '');
        const t = this.target(x.svc, subset, x.dc, fr, origin);
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

function connectTimeout(r: ServiceResolverEntry | undefined): number {
  const ms = goDurationMs(r?.ConnectTimeout);
  return ms ? ms : DEFAULT_CONNECT_TIMEOUT_MS;
}

/**
 * Compile the chain of one service from validated entries.
 *
 * @throws MeshError `MESH_CONFIG_INVALID` naming the entry and field (protocol gate, missing
 * subset, loops).
 */
export function compileChain(
  set: ConfigEntrySet,
  service: string,
  options: CompileOptions = {},
): RoutingChain {
  const issues = new EntryIssues();
  const chain = tryCompile(set, service, options.datacenter ?? 'dc1', issues);
  issues.throwIfAny(`discovery chain "${service}"`);
  return chain!;
}

/**
 * Compile one chain, recording its problems. With `lenient` (entries that have problems of their
 * own), any failure is taken for one that follows from those: the set is refused all the same.
 */
function tryCompile(
  set: ConfigEntrySet,
  service: string,
  dc: string,
  issues: EntryIssues,
  unusable: ReadonlySet<string> = NONE,
  lenient = false,
): RoutingChain | undefined {
  try {
    return new ChainCompiler(set, service, dc, issues, unusable, lenient).compile();
  } catch (error) {
    if (error instanceof Abort || lenient) return undefined;
    throw error;
  }
}

/**
 * Entries checked one by one, then every chain through them: `issues` lists the entries' own
 * problems first (in their order), then each chain's (in the order of the services), each once:
 * a chain error can surface in several chains (a redirect shared by two services). A chain is
 * compiled through an entry that breaks its own rules, not through one whose shape is wrong.
 * `before`: problems found ahead of these (an etcd key), listed first.
 */
export function checkEntriesAndChains(
  checked: CheckedEntries,
  dc = 'dc1',
  before: readonly EntryIssue[] = [],
): { issues: EntryIssues; chains: Map<string, RoutingChain>; services: Set<string> } {
  const { set, unusable } = checked;
  const lenient = before.length > 0 || !checked.issues.ok;
  const found = new EntryIssues();
  const services = new Set<string>([
    ...set.routers.keys(),
    ...set.splitters.keys(),
    ...set.resolvers.keys(),
    ...set.defaults.keys(),
  ]);
  const chains = new Map<string, RoutingChain>();
  for (const name of services) {
    const c = tryCompile(set, name, dc, found, unusable, lenient);
    if (c) chains.set(name, c);
  }
  const seen = new Set<string>();
  const issues = new EntryIssues();
  for (const i of [...before, ...checked.issues.list, ...found.list]) {
    const k = `${i.entry}\u0000${i.path}\u0000${i.message}`;
    if (!seen.has(k)) {
      seen.add(k);
      issues.add(i.entry, i.path, i.message, i.value);
    }
  }
  return { issues, chains, services };
}
/**
 * Validate raw entries (or take a validated set) and compile the chain of every service that has
 * an entry, so that every chain-level error is found before anything is applied.
 *
 * @example
 * const config = compileRoutingConfig(doc.configEntries, { datacenter: 'dc1' });
 * const decision = route(config.chain('payments'), request, random);
 * @throws MeshError `MESH_CONFIG_INVALID` listing every problem by `Kind/Name` and field path, at
 * once: each entry's own (shape, write rules) and those of the chains through them.
 */
export function compileRoutingConfig(
  entries: readonly unknown[] | ConfigEntrySet,
  options: CompileOptions = {},
): RoutingConfig {
  const checked: CheckedEntries = Array.isArray(entries)
    ? checkConfigEntries(entries)
    : { set: entries as ConfigEntrySet, issues: new EntryIssues(), unusable: NONE };
  const set = checked.set;
  const dc = options.datacenter ?? 'dc1';
  // Every problem at once: each entry's own, then those of the chains through them.
  const { issues, chains, services: names } = checkEntriesAndChains(checked, dc);
  issues.throwIfAny('config entries');
  const services = Object.freeze([...names].sort());
  return Object.freeze({
    entries: set,
    datacenter: dc,
    services,
    chain(service: string): RoutingChain {
      let c = chains.get(service);
      if (!c) {
        c = compileChain(set, service, { datacenter: dc });
        chains.set(service, c);
      }
      return c;
    },
  });
}
