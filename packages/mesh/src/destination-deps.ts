/**
 * What every destination of the mesh (a service's own, or a routing target's) is wired to: its
 * policy built from its effective config, the mesh's clock and telemetry, and its events — fired
 * through the mesh's emitter while the destination is still in the table.
 */

import type { HealthCheckHub } from '@proxyless/balancer';
import type { TokenBucket } from '@proxyless/resilience';
import type { MeshEvent } from './api.js';
import type { EffectiveConfig } from './config/effective.js';
import type { Destination } from './destination.js';
import type { DestinationTableDeps } from './destination-table.js';
import { buildPolicy, buildRoutePolicy, type PolicyDeps } from './policy.js';
import type { RouteOverrides } from './routing-targets.js';

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
