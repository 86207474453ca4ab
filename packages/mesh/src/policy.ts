import { type BalancerConfig, createBalancer, type HealthCheckHub } from '@proxyless/balancer';
import type { Clock, Filter, Logger, Random } from '@proxyless/core';
import {
  type BreakerState,
  createPolicyStack,
  type EarlierCalls,
  type PolicyStack,
  type ResilienceConfig,
  sameSettings,
  type TokenBucket,
} from '@proxyless/resilience';
import type { EffectiveConfig } from './config/effective.js';
import type { DestinationPolicy } from './destination.js';

export {
  checkMergedPolicy,
  type PolicyPatch,
  parsePolicyPatch,
  policyPatchFromEnv,
} from './config/layers.js';
export { POLICY_KEYS } from './config/schema.js';

export interface PolicyDeps {
  clock: Clock;
  random: Random;
  logger: Logger;
  onBreakerStateChange?: (service: string, state: BreakerState) => void;
  /** The mesh's shared active health checks (one checker per service and config). */
  healthChecks?: HealthCheckHub;
  /**
   * The rate-limit bucket of the destination released before this one for the same service (idle
   * eviction): the first build goes on with its tokens (see `PolicyStackDeps.rateLimitBucket`).
   */
  rateLimitBucket?: TokenBucket;
  /** The calls in flight through the destination's earlier stacks (see `PolicyStackDeps.earlierCalls`). */
  earlierCalls?: EarlierCalls;
}

/**
 * Build a destination's balancer and filters from its effective config (layers already merged:
 * built-in defaults → options.defaults → environment → file defaults → options.services[s] →
 * file services[s]).
 *
 * With `previous` (the policy in force), only what the change touches is built: the balancer
 * when `loadBalancer`, `outlierDetection` or `healthCheck` changed, and the stages of the stack
 * whose settings changed (`POLICY_STAGES` of @proxyless/resilience says which settings each
 * stage reads). Everything else is taken over with its state: the balancer keeps its endpoints,
 * latency EWMAs and ejections, the breaker its state and counts, the limits their in-flight
 * calls and tokens (a new `concurrencyLimit` or `rateLimit` is applied to them in place). A balancer built anew starts from the one it replaces (`createBalancer`'s `previous`):
 * its endpoints' counts, EWMAs, slow-start age and ejections (for the time they had left) go on,
 * or, with `outlierDetection` turned off, the ejected are readmitted with a `readmit` event.
 * The same config builds nothing. Release what was replaced with `previous.retire(next)`.
 */
export function buildPolicy(
  service: string,
  config: EffectiveConfig,
  deps: PolicyDeps,
  previous?: DestinationPolicy,
): DestinationPolicy {
  const { balancer: balancerConfig, resilience: resilienceConfig } = config;
  const key = JSON.stringify([balancerConfig, resilienceConfig]);
  const prior = previous === undefined ? undefined : internals.get(previous);
  const keepBalancer = prior !== undefined && sameSettings(prior.balancerConfig, balancerConfig);
  const balancer =
    keepBalancer && previous !== undefined
      ? previous.balancer
      : createBalancer(
          balancerConfig,
          {
            service,
            clock: deps.clock,
            random: deps.random,
            logger: deps.logger,
            ...(deps.healthChecks ? { healthChecks: deps.healthChecks } : {}),
          },
          previous?.balancer,
        );
  const onBreaker = deps.onBreakerStateChange;
  const stack = createPolicyStack(
    resilienceConfig,
    {
      service,
      clock: deps.clock,
      random: deps.random,
      logger: deps.logger,
      ...(onBreaker ? { onBreakerStateChange: (state: BreakerState) => onBreaker(service, state) } : {}),
      ...(prior === undefined && deps.rateLimitBucket ? { rateLimitBucket: deps.rateLimitBucket } : {}),
      ...(deps.earlierCalls ? { earlierCalls: deps.earlierCalls } : {}),
    },
    prior?.stack,
  );
  const policy: DestinationPolicy = {
    key,
    balancer,
    filters: stack.filters,
    roles: stack.roles,
    rebuilt: keepBalancer ? stack.rebuilt : ['balancer', ...stack.rebuilt],
    maxConnections: resilienceConfig.circuitBreaker?.maxConnections,
    connectTimeoutMs: resilienceConfig.connectTimeoutMs,
    circuitBreakerState: () => stack.circuitBreakerState(),
    rateLimitBucket: () => stack.rateLimitBucket(),
    close() {
      balancer.close();
      stack.close();
    },
    retire(next) {
      const n = internals.get(next);
      if (next.balancer !== balancer) balancer.close();
      if (n) stack.retire(n.stack);
      else stack.close();
    },
  };
  internals.set(policy, { balancerConfig, resilienceConfig, stack });
  return policy;
}

/** The stack of one route's settings over a destination's policy (see {@link buildRoutePolicy}). */
export interface RoutePolicy {
  readonly filters: readonly Filter[];
  /** The roles of `filters`, outermost first. */
  readonly roles: readonly string[];
  /** Release the stages this route built (its own); the destination's shared ones stay. */
  close(): void;
}

/** The settings a route may set over its target's (Consul: `RequestTimeout`, `NumRetries`, `RetryOn…`). */
const ROUTE_SETTINGS = ['timeoutMs', 'retry'] as const;

/**
 * The stack a route's timeout and retry settings make over a destination's `base` policy: the
 * route's own deadline and retry stages (and a hedge, where whether retries are on changes who
 * counts its calls), over the same instances of every other stage — the breaker with its state,
 * the limits with their calls in flight, the retry budget and the `maxRetries` gate. As in Envoy,
 * where a route's timeout and retry policy act over the one cluster it names: the route shares
 * the cluster's circuit breakers and outlier state (the balancer and pools are the destination's
 * anyway). `config` is the destination's with the route's layer on top.
 * @throws TypeError when `config` differs from the base's in more than the route settings.
 */
export function buildRoutePolicy(
  service: string,
  config: EffectiveConfig,
  deps: PolicyDeps,
  base: DestinationPolicy,
): RoutePolicy {
  const prior = internals.get(base);
  if (prior === undefined) throw new TypeError('a route policy is built over a policy buildPolicy made');
  if (!sameSettings(withoutRouteSettings(config.resilience), withoutRouteSettings(prior.resilienceConfig)))
    throw new TypeError(`a route of "${service}" sets more than its timeout and retry settings`);
  // No breaker is built here (the settings that read it are the base's): it is the base's, events and all.
  const { clock, random, logger } = deps;
  const stack = createPolicyStack(config.resilience, { service, clock, random, logger }, prior.stack);
  const shared = prior.stack;
  return {
    filters: stack.filters,
    roles: stack.roles,
    // The stages the base stack does not hold are this route's own.
    close: () => stack.retire(shared),
  };
}

function withoutRouteSettings(c: ResilienceConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { ...c };
  for (const k of ROUTE_SETTINGS) delete out[k];
  return out;
}

/** What a later build takes over from a policy. */
const internals = new WeakMap<
  DestinationPolicy,
  { balancerConfig: BalancerConfig; resilienceConfig: ResilienceConfig; stack: PolicyStack }
>();
