/**
 * What every destination of the mesh (a service's own, or a routing target's) is wired to: its
 * policy built from its effective config, the mesh's clock and telemetry, and its events — fired
 * through the mesh's emitter while the destination is still in the table.
 */

import type { BalancerEvent, HealthCheckHub, ObservableBalancer } from '@proxyless/balancer';
import type { Clock, EndpointSet, Filter, Logger, MeshError } from '@proxyless/core';
import type { EarlierCalls, TokenBucket } from '@proxyless/resilience';
import type { MeshEvent } from './api.js';
import type { EffectiveConfig } from './config/effective.js';
import type { Destination } from './destination.js';
import type { DestinationTableDeps } from './destination-table.js';
import type { PoolEventSink } from './endpoint-pools.js';
import { buildPolicy, buildRoutePolicy, type PolicyDeps, type RoutePolicy } from './policy.js';
import type { RouteOverrides } from './routing-targets.js';
import type { StackParts } from './stack.js';

/** What a destination needs from the mesh that owns it. */
export interface DestinationDeps {
  /** The call's and each attempt's telemetry stages, when telemetry is on (placed by `MESH_STACK`). */
  telemetry: StackParts['telemetry'];
  clock: Clock;
  logger: Logger;
  connectionsPerEndpoint: number | undefined;
  /** A routing target's `ConnectTimeout` for its pools; unset, the service's `connectTimeout`. */
  connectTimeoutMs?: number;
  /** The routing target's ID, for a destination over a subset: named when it has nothing to pick. */
  target?: string;
  resolveTimeoutMs: number;
  /**
   * Build the per-service policy (balancer + filters). Called again when config changes, with the
   * policy in force: what the change does not touch is taken over from it (see `buildPolicy`).
   */
  policy: (service: string, previous?: DestinationPolicy, earlier?: EarlierCalls) => DestinationPolicy;
  /** Build the stack of a route's timeout and retry settings over the policy in force (`buildRoutePolicy`). */
  routePolicy: (service: string, route: RouteOverrides, base: DestinationPolicy) => RoutePolicy;
  onSetChange: (service: string, set: EndpointSet) => void;
  onResolverError: (service: string, error: MeshError) => void;
  /** Panic, locality, ejection and health-check events of the balancer in force. */
  onBalancerEvent: (event: BalancerEvent) => void;
  /** The connection events of the destination's pools (the mesh dispatcher emits them). */
  poolEvent?: PoolEventSink;
  /** The destination was built, or a config change gave it a new policy (metrics start from it). */
  onPolicy?: (destination: Destination) => void;
}

/** The per-service policy objects: on a config change, only the parts it touches are built anew. */
export interface DestinationPolicy {
  /** A key that changes exactly when the config changes (e.g. its JSON). */
  readonly key: string;
  readonly balancer: ObservableBalancer;
  readonly filters: readonly Filter[];
  /** The roles of the stages in force, outermost first (`deadline`, `retry`, `circuitBreaker`, …). */
  readonly roles: readonly string[];
  /** The parts built for this policy (`balancer`, `retry`, …); the rest came from the previous one. */
  readonly rebuilt: readonly string[];
  /** `circuitBreaker.maxConnections`: connections to the whole destination, if capped. */
  readonly maxConnections: number | undefined;
  /** `connectTimeout`, ms: how long a new connection may take to open. */
  readonly connectTimeoutMs: number;
  /** The circuit breaker's state (`closed`, `open`, `half-open`), when there is one. */
  circuitBreakerState(): 'closed' | 'open' | 'half-open' | undefined;
  /** The rate limit's token bucket, when there is one: kept by the mesh when the destination is evicted. */
  rateLimitBucket(): TokenBucket | undefined;
  close(): void;
  /** Release what `next` (built from this policy) did not take over. */
  retire(next: DestinationPolicy): void;
}

/** What the destination table shares with every destination it builds. */
export interface DestinationWiring {
  readonly table: DestinationTableDeps;
  /** Active health checks, one checker per service and config, shared by its destinations. */
  readonly healthChecks: HealthCheckHub;
  /**
   * Registry failures already reported, with the services they were reported for: a service's
   * resolver hands one failure to every destination watching it (the service's own, its routing
   * targets'), and it is one failure of that service.
   */
  readonly reportedErrors: WeakMap<object, Set<string>>;
}

/** What one destination adds to the wiring. */
export interface DestinationOwnDeps {
  /** The effective config of a service, from the layers this destination reads. */
  readonly config: (service: string) => EffectiveConfig;
  /** The effective config of a route's calls: this destination's, with the route's settings on top. */
  readonly routeConfig: (service: string, route: RouteOverrides) => EffectiveConfig;
  /** Whether its events are still fired (false once it is evicted). */
  readonly reporting: () => boolean;
  /** The bucket kept of the destination evicted before it, for its first policy. */
  readonly rateLimitBucket?: TokenBucket | undefined;
  /**
   * The routing target's ID, for the destination of a target that is a subset (its endpoint sets
   * are part of the service's).
   */
  readonly target?: string | undefined;
}

/** The dependencies of one destination (`new Destination(service, resolver, deps)`). */
export function destinationDeps(
  wiring: DestinationWiring,
  own: DestinationOwnDeps,
): ConstructorParameters<typeof Destination>[2] {
  const { table, healthChecks, reportedErrors } = wiring;
  const { config, routeConfig, reporting, rateLimitBucket, target } = own;
  const { telemetry, clock, random, logger } = table;
  const events = {
    fire: (event: MeshEvent): void => {
      if (reporting()) table.events.fire(event);
    },
  };
  const policyDeps: PolicyDeps = {
    clock,
    random,
    logger,
    onBreakerStateChange: (service, state) =>
      events.fire({ type: 'circuit_breaker', service, state, ...(target ? { target } : {}) }),
    healthChecks,
  };
  return {
    telemetry: telemetry
      ? { call: telemetry.callInterceptor, attempt: telemetry.attemptInterceptor }
      : undefined,
    clock,
    logger,
    connectionsPerEndpoint: table.connectionsPerEndpoint,
    ...(table.poolEvent ? { poolEvent: table.poolEvent } : {}),
    resolveTimeoutMs: table.resolveTimeoutMs,
    policy: (s, previous, earlierCalls) =>
      buildPolicy(
        s,
        config(s),
        {
          ...policyDeps,
          ...(previous === undefined && rateLimitBucket ? { rateLimitBucket } : {}),
          ...(earlierCalls ? { earlierCalls } : {}),
        },
        previous,
      ),
    routePolicy: (s, route, base) => buildRoutePolicy(s, routeConfig(s, route), policyDeps, base),
    ...(target ? { target } : {}),
    onSetChange: (s, set) =>
      events.fire({ type: 'endpoints_changed', service: s, set, ...(target ? { target } : {}) }),
    onBalancerEvent: (event) =>
      events.fire({ type: 'balancer', service: event.service, event, ...(target ? { target } : {}) }),
    onResolverError: (s, error) => {
      if (!reporting()) return;
      // Once per service: one failure of a source that serves several (a rejected config
      // file marks all of its services stale with one error) is reported for each of them.
      const services = reportedErrors.get(error) ?? new Set<string>();
      if (services.has(s)) return;
      services.add(s);
      reportedErrors.set(error, services);
      logger.warn('registry refresh failed; keeping the last known endpoints', { service: s, error });
      events.fire({ type: 'resolver_error', service: s, error });
    },
  };
}
