import { createBalancer } from '@proxyless/balancer';
import type { Clock, Logger, Random } from '@proxyless/core';
import { type BreakerState, createPolicyStack } from '@proxyless/resilience';
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
}

/**
 * Build a destination's balancer and filters from its effective config (layers already merged:
 * built-in defaults → options.defaults → environment → options.services[s] → file defaults →
 * file services[s]).
 */
export function buildPolicy(service: string, config: EffectiveConfig, deps: PolicyDeps): DestinationPolicy {
  const { balancer: balancerConfig, resilience: resilienceConfig } = config;
  const key = JSON.stringify([balancerConfig, resilienceConfig]);
  const balancer = createBalancer(balancerConfig, {
    service,
    clock: deps.clock,
    random: deps.random,
    logger: deps.logger,
  });
  const onBreaker = deps.onBreakerStateChange;
  const stack = createPolicyStack(resilienceConfig, {
    service,
    clock: deps.clock,
    random: deps.random,
    logger: deps.logger,
    ...(onBreaker ? { onBreakerStateChange: (state: BreakerState) => onBreaker(service, state) } : {}),
  });
  return {
    key,
    balancer,
    filters: stack.filters,
    roles: stack.roles,
    maxConnections: resilienceConfig.circuitBreaker?.maxConnections,
    circuitBreakerState: () => stack.circuitBreakerState(),
    close() {
      balancer.close();
      stack.close();
    },
  };
}
