/**
 * The mesh's destination table: one `Destination` per named service and per routing target,
 * the host and dispatch-origin lookups that name them, the idle-eviction sweep, and the
 * `/config_dump` view of what is live.
 */

import { HealthCheckHub, type LoadBalancerPatch } from '@proxyless/balancer';
import {
  type Clock,
  type Emitter,
  isIPv4,
  isIPv6,
  type Logger,
  MeshError,
  type Random,
  type Resolver,
  type Timer,
} from '@proxyless/core';
import type { MeshMetrics, Telemetry } from '@proxyless/telemetry';
import type { MeshEvent } from './api.js';
import { effectiveConfig } from './config/effective.js';
import type { Layer } from './config/layers.js';
import type { ConfigStore } from './config/store.js';
import { closedError, Destination } from './destination.js';
import { type DestinationWiring, destinationDeps } from './destination-deps.js';
import type { PoolEventSink } from './endpoint-pools.js';
import { KeptBuckets, type RateLimitOf } from './kept-buckets.js';
import type { ResolverSet } from './resolvers.js';
import type { ChainTarget, RoutingChain } from './routing/index.js';
import {
  entryLayer,
  isLocalWholeService,
  routeLayer,
  subsetResolver,
  targetIdOf,
} from './routing-targets.js';

/** What the table needs from the mesh that owns it. */
export interface DestinationTableDeps {
  resolvers: ResolverSet;
  config: ConfigStore;
  telemetry: Telemetry | undefined;
  events: Emitter<MeshEvent>;
  clock: Clock;
  random: Random;
  logger: Logger;
  connectionsPerEndpoint: number | undefined;
  resolveTimeoutMs: number;
  /** `destinationIdleTimeoutMs`; 0 never evicts. */
  idleTimeoutMs: number;
  /** Whether the mesh is closing: no destination is built then. */
  closing(): boolean;
  /** A service destination was built: traffic management watches the service's chain. */
  watchChain(service: string): void;
  /** The destination was released (idle, or no longer named): its chain watch stops too. */
  unwatchChain(service: string): void;
  /** Connection events of every destination's pools. */
  poolEvent?: PoolEventSink;
}

/**
 * The mesh's destinations: one per service named so far and one per routing target, found by
 * host name and by dispatch origin, and evicted after an idle period.
 */
export class DestinationTable {
  readonly #deps: DestinationTableDeps;
  /** Active health checks, one checker per service and config, shared by its destinations. */
  readonly healthChecks: HealthCheckHub;
  #destinations = new Map<string, Destination>();
  #byHost = new Map<string, Destination>();
  /**
   * Dispatch origins (`http://payments:8080`) already named, so the hot path skips parsing. The
   * call path reads and fills it (at most 1024 origins); the table evicts and clears it.
   */
  readonly byOrigin = new Map<string, Destination>();
  /**
   * Destinations taken out of the table (evicted, or their service no longer named) whose calls
   * are still draining: the mesh's `close({ timeout })` and `destroy()` must reach those calls too.
   */
  readonly #retiring = new Set<Destination>();
  #idleSweep: Timer | undefined;
  /** The rate-limit buckets of destinations evicted before their bucket was full again. */
  readonly #buckets = new KeptBuckets();
  // ---- traffic management (routing-stage.ts, routing-sources.ts) ----
  #targetDests = new Map<string, Destination>();
  /**
   * Registry failures already reported, with the services they were reported for: a service's
   * resolver hands one failure to every destination watching it (the service's own, its routing
   * targets'), and it is one failure of that service.
   */
  readonly #reportedErrors = new WeakMap<object, Set<string>>();
  // ---- end traffic management ----
  /** What every destination this table builds is wired to (see `destination-deps.ts`). */
  readonly #wiring: DestinationWiring;

  constructor(deps: DestinationTableDeps) {
    this.#deps = deps;
    this.healthChecks = new HealthCheckHub({ clock: deps.clock, random: deps.random, logger: deps.logger });
    this.#wiring = { table: deps, healthChecks: this.healthChecks, reportedErrors: this.#reportedErrors };
  }

  /** The destination of each named service, by service name. */
  get byService(): ReadonlyMap<string, Destination> {
    return this.#destinations;
  }

  /** The destination of each routing target, by target ID, subset and balancer settings. */
  get targets(): ReadonlyMap<string, Destination> {
    return this.#targetDests;
  }

  /**
   * Services with a live destination over their whole endpoint set: their own, or for a service
   * reached only through another's routes (`web` /admin/ → `admin`), a routing target of the
   * whole service, which takes its calls.
   */
  services(): string[] {
    const names = new Set(this.#destinations.keys());
    for (const d of this.#targetDests.values()) if (d.target === undefined) names.add(d.service);
    return [...names];
  }

  /** The destination over a service's whole endpoint set (see {@link services}). */
  serviceDestination(service: string): Destination | undefined {
    const own = this.#destinations.get(service);
    if (own !== undefined) return own;
    for (const d of this.#targetDests.values()) if (d.service === service && d.target === undefined) return d;
    return undefined;
  }

  // ---- naming ----------------------------------------------------------------------------------

  destinationFor(hostname: string): Destination | undefined {
    const cached = this.#byHost.get(hostname);
    if (cached !== undefined) return cached;
    const named = this.#serviceOf(hostname);
    // Refused at once while the mesh is closing, naming what the call was for: the service, or
    // the host of a call that would have passed through.
    if (this.#deps.closing()) {
      if (named !== undefined) throw closedError(named.service, 'the mesh is closed; no new call to');
      throw new MeshError('MESH_CLOSED', `the mesh is closed; no new call to "${hostname}" (pass-through)`, {
        details: { host: hostname },
      });
    }
    if (named === undefined) return undefined;
    const dest = this.#ownDestination(named.service, named.resolver);
    this.#byHost.set(hostname, dest);
    return dest;
  }

  /** The service's own destination, built at its first call (directly or through a route). */
  #ownDestination(service: string, resolver: Resolver): Destination {
    const kept = this.#destinations.get(service);
    if (kept !== undefined) return kept;
    let built: Destination | undefined;
    const config = this.#deps.config;
    built = new Destination(service, resolver, {
      ...destinationDeps(this.#wiring, {
        config: (s) => config.effective(s),
        routeConfig: (s, route) => effectiveConfig(s, [...config.layersFor(s), routeLayer(route)]),
        reporting: () => built?.evicted !== true,
        rateLimitBucket: this.#buckets.take(service),
      }),
      // The service's series (breaker, panic, endpoint states) follow its own destination.
      ...seriesHook(this.#deps.telemetry?.metrics),
    });
    this.#deps.watchChain(service);
    this.#destinations.set(service, built);
    this.#armIdleSweep();
    return built;
  }

  /** Whether a routing target's entry is the service's own destination (see {@link targetDestination}). */
  #isOwn(d: Destination): boolean {
    return this.#destinations.get(d.service) === d;
  }

  /** The service a host names and the resolver that names it; `undefined`: the call passes through. */
  #serviceOf(hostname: string): { service: string; resolver: Resolver } | undefined {
    let host = hostname.toLowerCase();
    if (host.startsWith('[')) return undefined; // IPv6 literal: an address, not a service name
    if (host.endsWith('.')) host = host.slice(0, -1);
    if (isIPv4(host) || isIPv6(host)) return undefined;
    // RFC 6761: `localhost` names are never services, whatever a registry matches.
    if (host === 'localhost' || host.endsWith('.localhost')) return undefined;
    for (const resolver of this.#deps.resolvers.list) {
      const service = resolver.match(host);
      if (service !== undefined) return { service, resolver };
    }
    return undefined;
  }

  /**
   * Evict destinations idle past `destinationIdleTimeoutMs` with nothing in flight: their watch,
   * policy timers and pools are released, and the next call builds them again (#9.11). One whose
   * breaker is open or that has an endpoint ejected stays until that has run out (see
   * {@link isIdle}). A sweep runs only while destinations exist.
   */
  #armIdleSweep(): void {
    const idleTimeoutMs = this.#deps.idleTimeoutMs;
    if (idleTimeoutMs <= 0 || this.#idleSweep !== undefined || this.#deps.closing()) return;
    const period = Math.max(1000, Math.min(60_000, Math.floor(idleTimeoutMs / 2)));
    this.#idleSweep = this.#deps.clock.setTimer(period, () => {
      this.#idleSweep = undefined;
      const now = this.#deps.clock.now();
      this.#buckets.dropFull();
      const { config } = this.#deps;
      for (const [service, d] of this.#destinations) {
        // A routed service's own destination counts its routed calls in flight (wherever its routes
        // sent them): a download streaming for minutes through `v2` keeps `web` built and listed.
        if (!isIdle(d, now, idleTimeoutMs)) continue;
        if (
          !this.#buckets.keep(
            service,
            d.service,
            d.rateLimitBucket,
            () => config.effective(service).resilience.rateLimit,
          )
        )
          continue;
        this.#evict(service, d);
      }
      // Routing targets (traffic management) idle as long are released too: a target an old config
      // version used is not kept forever; the next request to it builds it again.
      const released = new Set<string>();
      for (const [key, d] of this.#targetDests) {
        // The service's own destination as a target goes with the service (above).
        if (this.#isOwn(d) || !isIdle(d, now, idleTimeoutMs)) continue;
        const rateLimit = this.#targetRateLimit.get(d);
        if (
          rateLimit !== undefined &&
          !this.#buckets.keep(`target:${key}`, d.service, d.rateLimitBucket, rateLimit)
        )
          continue;
        this.#targetDests.delete(key);
        this.#retireTarget(key, d);
        released.add(d.service);
      }
      this.#removeTargetOnly(released);
      if (this.#destinations.size > 0 || this.#targetDests.size > 0) this.#armIdleSweep();
    });
  }

  // ---- rate limits of routing targets, for the buckets kept when they are evicted ---------------

  /** The rate limit of each routing-target destination, read from its own config layers. */
  readonly #targetRateLimit = new WeakMap<Destination, RateLimitOf>();

  /**
   * Release the destinations of services no registry names any more (a service removed from the
   * config document): their calls in flight finish on the pools they have, and the name is unknown
   * again — a new call passes through or fails `MESH_UNKNOWN_SERVICE`, as for a cluster Envoy no
   * longer has — instead of failing `MESH_NO_ENDPOINTS` until idle eviction. Called once per
   * config version applied, so the rate-limit buckets kept of evicted destinations take the new
   * settings here too.
   */
  dropUnnamed(): void {
    const resolvers = this.#deps.resolvers.list;
    const named = (service: string): boolean => resolvers.some((r) => r.match(service) !== undefined);
    this.#buckets.apply(named);
    // Routing targets of such a service go too (a new one could not be built): their calls in
    // flight finish, and their events (an empty endpoint set) no longer speak for the service.
    const released = new Set<string>();
    for (const [key, d] of this.#targetDests) {
      // A service's own destination taken as a target: looked up again at the next call, as the
      // config version may have given the service settings the target does not share.
      if (this.#isOwn(d)) {
        this.#targetDests.delete(key);
        continue;
      }
      if (named(d.service)) continue;
      this.#targetDests.delete(key);
      this.#retireTarget(key, d);
      released.add(d.service);
    }
    // Before the services' own destinations go: a service that has one gets its one
    // `service_removed` from its eviction, not a second one as a target-only service.
    this.#removeTargetOnly(released);
    for (const [service, d] of this.#destinations) {
      if (!named(service)) this.#evict(service, d);
    }
  }

  /**
   * A service reached only through routing targets (no destination of its own) whose last target
   * was released is removed as one with its own destination is: `service_removed` (its series go,
   * the call series once the targets' calls in flight end).
   */
  #removeTargetOnly(services: ReadonlySet<string>): void {
    for (const service of services) {
      if (this.#destinations.has(service) || this.#hasTargets(service)) continue;
      this.#deps.events.fire({ type: 'service_removed', service });
    }
  }

  /** Whether a routing target's destination of `service` is in the table. */
  #hasTargets(service: string): boolean {
    for (const d of this.#targetDests.values()) if (d.service === service) return true;
    return false;
  }

  #evict(service: string, d: Destination): void {
    for (const [k, v] of this.#targetDests) if (v === d) this.#targetDests.delete(k);
    this.#destinations.delete(service);
    for (const [k, v] of this.#byHost) if (v === d) this.#byHost.delete(k);
    for (const [k, v] of this.byOrigin) if (v === d) this.byOrigin.delete(k);
    this.#deps.unwatchChain(service);
    // The service's call series count its calls still in flight, then go as the last one ends.
    // While a routing target of the service is still in the table (its calls in flight, or not idle
    // yet), the service is not removed: the last target to go removes it (#removeTargetOnly), so
    // one `service_removed` is fired, and never while the service still takes calls.
    this.#retire(d, () => {
      if (!this.#hasTargets(service)) this.#deps.events.fire({ type: 'service_removed', service });
    });
  }

  /**
   * Retire a routing target's destination taken out of the table; the last one of its target ID
   * (a subset or load balancer a new config version redefines has another) takes the target's breaker and
   * panic series with it.
   */
  #retireTarget(key: string, d: Destination): void {
    this.#retire(d);
    const id = targetIdOf(key);
    for (const [k, other] of this.#targetDests)
      if (other.service === d.service && targetIdOf(k) === id) return;
    this.#deps.telemetry?.metrics?.forgetTarget(d.service, id);
  }

  /**
   * Close a destination taken out of the table. From now on it reports no event (endpoint set,
   * balancer, breaker, resolver): a late one would bring back the series of a removed service,
   * or overwrite those of the service's new destination. `removed` runs while its call series
   * are held for its calls in flight.
   */
  #retire(d: Destination, removed?: () => void): void {
    d.evicted = true;
    this.#retiring.add(d);
    void d.close().finally(() => this.#retiring.delete(d));
    const release = this.#deps.telemetry?.metrics?.holdCallSeries(d.service);
    removed?.();
    if (release) d.whenIdle(release);
  }

  // ---- traffic management: target destinations -------------------------------------------------

  /**
   * The destination of one routing target (service + subset): its own balancer, outlier state,
   * breaker and pools over the subset's endpoints — Envoy's cluster of the target. The routes that
   * send to it with timeout or retry settings of their own share all of that (see
   * `Destination.dispatch`'s `route`), as Envoy's routes share the cluster they name.
   */
  targetDestination(
    target: ChainTarget,
    loadBalancer: LoadBalancerPatch | undefined,
    chain: RoutingChain,
  ): Destination {
    // The subset's filter and health rule are part of the key: a new config version that redefines
    // a subset under the same name gets a destination over the new subset.
    const base = `${target.id}|${target.filter}|${target.onlyPassing}|${target.connectTimeoutMs}`;
    const key = loadBalancer ? `${base}|${JSON.stringify(loadBalancer)}` : base;
    const cached = this.#targetDests.get(key);
    if (cached !== undefined) return cached;
    if (this.#deps.closing()) {
      throw new MeshError(
        'MESH_CLOSED',
        `the mesh is closed; no new call to "${target.service}" (routing target ${target.id})`,
        { details: { service: target.service } },
      );
    }
    const config = this.#deps.config;
    for (const resolver of this.#deps.resolvers.list) {
      const service = resolver.match(target.service);
      if (service === undefined) continue;
      // The whole service, local, with no resolver setting on its endpoints or connections: the
      // service's own destination is its cluster — a direct call and a routed one share its
      // breaker, outlier state and pools, as they share Envoy's one cluster for the service.
      if (
        isLocalWholeService(chain, target, loadBalancer) &&
        target.connectTimeoutMs === config.effective(service).resilience.connectTimeoutMs
      ) {
        const own = this.#ownDestination(service, resolver);
        this.#targetDests.set(key, own);
        return own;
      }
      // Over the target service's own layers: the resolver's LoadBalancer (and for a route's calls,
      // the route's settings over that).
      const extra: Layer[] = loadBalancer
        ? [entryLayer({ balancer: { loadBalancer }, resilience: undefined })]
        : [];
      let built: Destination | undefined;
      const configOf = (s: string) =>
        extra.length === 0 ? config.effective(s) : effectiveConfig(s, [...config.layersFor(s), ...extra]);
      // A subset's sets are part of the service's; a whole-service target's are the service's.
      const subsetOf = target.subset !== '' ? target.id : undefined;
      const dest = new Destination(service, subsetResolver(resolver, target), {
        ...destinationDeps(this.#wiring, {
          config: configOf,
          routeConfig: (s, route) =>
            effectiveConfig(s, [...config.layersFor(s), ...extra, routeLayer(route)]),
          reporting: () => built?.evicted !== true,
          rateLimitBucket: this.#buckets.take(`target:${key}`),
          target: subsetOf,
        }),
        // A subset's breaker and panic series (labelled `target`) start from its state, as the
        // service's own do; so do a whole-service target's, which are the service's, when the
        // service has no destination of its own (reached only through routes) to set them.
        ...seriesHook(
          this.#deps.telemetry?.metrics,
          subsetOf,
          (d) => d.evicted || (subsetOf === undefined && this.#destinations.has(d.service)),
        ),
        // The target's `ConnectTimeout` (Envoy's cluster connect_timeout) bounds its pools' connects.
        connectTimeoutMs: target.connectTimeoutMs,
      });
      built = dest;
      this.#targetRateLimit.set(dest, () => configOf(service).resilience.rateLimit);
      this.#targetDests.set(key, dest);
      this.#armIdleSweep();
      return dest;
    }
    throw new MeshError(
      'MESH_NO_ENDPOINTS',
      `no registry knows "${target.service}" (routing target ${target.id})`,
      {
        details: { service: target.service },
      },
    );
  }

  // ---- end traffic management ----

  /** Stop the idle sweep (the mesh is closing). */
  stopSweep(): void {
    this.#idleSweep?.cancel();
  }

  /**
   * Empty the table (the mesh is closing); the destinations it held, and those retired whose calls
   * still drain, to close or destroy.
   */
  clear(): Destination[] {
    const dests = [
      ...new Set([...this.#destinations.values(), ...this.#targetDests.values(), ...this.#retiring]),
    ];
    this.#targetDests.clear();
    this.#destinations.clear();
    this.#buckets.clear();
    this.#byHost.clear();
    this.byOrigin.clear();
    return dests;
  }
}

/**
 * The `onPolicy` hook that starts a destination's breaker and panic series (and, for a service's
 * own, its endpoint states) from its state when it is built or given a new policy: `target` for a
 * subset's series; `skip` for a destination that is not the one to set them.
 */
function seriesHook(
  metrics: MeshMetrics | undefined,
  target?: string,
  skip?: (d: Destination) => boolean,
): { onPolicy?: (d: Destination) => void } {
  if (metrics === undefined) return {};
  return {
    onPolicy: (d) => {
      if (skip?.(d)) return;
      const breaker = d.circuitBreakerState;
      metrics.onDestination(
        d.service,
        { ...d.balancer.stats(), ...(breaker ? { circuitBreaker: breaker } : {}) },
        target,
      );
    },
  };
}

/**
 * Whether the idle sweep may evict `d`: nothing in flight, no call for `idleTimeoutMs`, and no state
 * the destination built again would not have — an open breaker or an ejected endpoint (as a rate
 * limit's bucket is kept, an eviction never lets a call through that the breaker or outlier
 * detection would have kept off). Once that has run out, the next sweep evicts it.
 */
function isIdle(d: Destination, now: number, idleTimeoutMs: number): boolean {
  return d.inFlight === 0 && now - d.lastUsed >= idleTimeoutMs && !d.holdsState;
}
