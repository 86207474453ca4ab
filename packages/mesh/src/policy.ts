import { type BalancerConfig, createBalancer, type HealthCheckHub } from '@proxyless/balancer';
import type { Clock, Logger, Random } from '@proxyless/core';
import {
  type BreakerState,
  createPolicyStack,
  type EarlierCalls,
  type PolicyStack,
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
  internals.set(policy, { balancerConfig, stack });
  return policy;
}

/** What a later build takes over from a policy. */
const internals = new WeakMap<DestinationPolicy, { balancerConfig: BalancerConfig; stack: PolicyStack }>();
