/**
 * `proxyless/testing` — the one import a service needs to test its use of the mesh: virtual time,
 * seeded randomness, scripted upstreams, call records and {@link runPolicy}, so policies can be
 * unit-tested with no sockets and no real time. Only `proxyless` has to be installed.
 *
 * @example
 * import { runPolicy } from 'proxyless/testing';
 * const rec = await runPolicy({ retry: { maxRetries: 2 } }, ['503', '503', 200]);
 * rec.attempts.map((a) => a.outcome); // [503, 503, 200]
 */
import { parseBalancerPatch } from '@proxyless/balancer';
import { Issues } from '@proxyless/core';
import type { ScriptStep } from '@proxyless/core/testing';
import { parseEndpointList } from '@proxyless/discovery';
import {
  isPolicyDocument,
  type PolicyInput,
  type PolicyRecord,
  type RunPolicyOptions,
  runPolicy as resilienceRunPolicy,
} from '@proxyless/resilience/testing';
import { unknownPolicyKeys } from './config/layers.js';

/** The issue list `parseResiliencePatch` records into (`throwIfAny` turns it into `MESH_CONFIG_INVALID`). */
export { Issues } from '@proxyless/core';
export {
  flushPromises,
  type Random,
  recordingObserver,
  type ScriptedCall,
  type ScriptedUpstream,
  type ScriptStep,
  scriptedUpstream,
  seededRandom,
  type TestContextOptions,
  testContext,
  testEndpoints,
  VirtualClock,
  type VirtualClockOptions,
} from '@proxyless/core/testing';
export { type ManualResolver, manualResolver } from '@proxyless/discovery/testing';
// Every single-policy filter of docs/policies.md "Using a policy alone", so a project that installs
// only `proxyless` can compose them itself.
export {
  createCircuitBreakerFilter,
  createConcurrencyLimitFilter,
  createDeadlineFilter,
  createFaultInjectionFilter,
  createHedgeFilter,
  createPerTryTimeoutFilter,
  createPolicyStack,
  createRateLimitFilter,
  createRetryFilter,
  DestinationBreaker,
  type PolicyStack,
  parseResiliencePatch,
  resolveResilienceConfig,
  withPolicies,
} from '@proxyless/resilience';
export {
  type AttemptRecord,
  type PolicyInput,
  type PolicyRecord,
  type RunPolicyOptions,
  recordAttempts,
} from '@proxyless/resilience/testing';

/**
 * {@link resilienceRunPolicy | runPolicy} of `@proxyless/resilience/testing`, with the whole service
 * entry validated as `createMesh` validates it: the balancer sections (`loadBalancer`,
 * `outlierDetection`, `healthCheck`) too, though one call through the policy stack does not use them.
 *
 * @throws MeshError `MESH_CONFIG_INVALID` naming each bad field and value.
 * @example
 * const rec = await runPolicy({ retry: { maxRetries: 2 } }, ['503', '503', 200]);
 */
export async function runPolicy(
  config: PolicyInput,
  script: readonly ScriptStep[],
  options?: RunPolicyOptions,
): Promise<PolicyRecord> {
  if (isPolicyDocument(config)) {
    const issues = new Issues();
    // Unknown keys against every section of a service entry (the suggestion and the list of known
    // keys then name the balancer's sections too), as createMesh reports them.
    // `endpoints` is a key of a service entry too (the scripted upstream answers in their place):
    // accepted, and checked as createMesh checks it.
    const entry = config as Record<string, unknown>;
    unknownPolicyKeys(entry, 'policy', issues, true);
    if (entry.endpoints !== undefined) parseEndpointList(entry.endpoints, 'policy.endpoints', issues);
    parseBalancerPatch(entry, 'policy', issues);
    issues.throwIfAny('runPolicy: invalid policy');
  }
  return resilienceRunPolicy(config, script, options);
}
