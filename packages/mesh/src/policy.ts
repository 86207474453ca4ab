import {
  BALANCER_CONFIG_KEYS,
  type BalancerPatch,
  balancerPatchFromEnv,
  createBalancer,
  parseBalancerPatch,
  resolveBalancerConfig,
} from '@proxyless/balancer';
import { type Clock, type Env, type Issues, type Logger, MeshError, type Random } from '@proxyless/core';
import {
  type BreakerState,
  createPolicyStack,
  parseResiliencePatch,
  RESILIENCE_CONFIG_KEYS,
  type ResiliencePatch,
  resiliencePatchFromEnv,
  resolveResilienceConfig,
} from '@proxyless/resilience';
import type { DestinationPolicy } from './destination.js';

/** Keys a service entry (in options or the config document) may hold besides `endpoints`. */
export const POLICY_KEYS: readonly string[] = Object.freeze([
  ...BALANCER_CONFIG_KEYS,
  ...RESILIENCE_CONFIG_KEYS,
]);

/** The policy settings one layer contributes, parsed and validated. */
export interface PolicyPatch {
  balancer: BalancerPatch | undefined;
  resilience: ResiliencePatch | undefined;
}

const EMPTY: PolicyPatch = Object.freeze({ balancer: undefined, resilience: undefined });

/** Parse the policy keys of one service entry (or a `defaults` block); issues are collected by path. */
export function parsePolicyPatch(
  entry: Record<string, unknown> | undefined,
  path: string,
  issues: Issues,
): PolicyPatch {
  if (!entry) return EMPTY;
  return {
    balancer: parseBalancerPatch(entry, path, issues),
    resilience: parseResiliencePatch(entry, path, issues),
  };
}

/** Policy settings from environment variables (mesh-wide defaults). */
export function policyPatchFromEnv(env: Env, issues: Issues): PolicyPatch {
  return {
    balancer: issues.try(() => balancerPatchFromEnv(env)),
    resilience: issues.try(() => resiliencePatchFromEnv(env)),
  };
}

/** Resolve the merged policy of one service, recording cross-layer problems under `where`. */
export function checkMergedPolicy(layers: readonly PolicyPatch[], where: string, issues: Issues): void {
  const run = (fn: () => unknown): void => {
    try {
      fn();
    } catch (error) {
      if (!MeshError.is(error, 'MESH_CONFIG_INVALID')) throw error;
      for (const i of error.details.issues ?? [{ field: '', expected: error.message, value: undefined }]) {
        issues.add(`${where} (all layers merged): ${i.field}`, i.expected, i.value);
      }
    }
  };
  run(() => resolveBalancerConfig(...layers.flatMap((l) => (l.balancer ? [l.balancer] : []))));
  run(() => resolveResilienceConfig(...layers.flatMap((l) => (l.resilience ? [l.resilience] : []))));
}

export interface PolicyDeps {
  clock: Clock;
  random: Random;
  logger: Logger;
  onBreakerStateChange?: (service: string, state: BreakerState) => void;
}

/**
 * Build a destination's balancer and filters from its layers, earliest first (later wins):
 * built-in defaults → options.defaults → environment → options.services[s] → file defaults →
 * file services[s].
 */
export function buildPolicy(
  service: string,
  layers: readonly PolicyPatch[],
  deps: PolicyDeps,
): DestinationPolicy {
  const balancerConfig = resolveBalancerConfig(...layers.flatMap((l) => (l.balancer ? [l.balancer] : [])));
  const resilienceConfig = resolveResilienceConfig(
    ...layers.flatMap((l) => (l.resilience ? [l.resilience] : [])),
  );
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
