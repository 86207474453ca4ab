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
  runPolicy,
} from '@proxyless/resilience/testing';
