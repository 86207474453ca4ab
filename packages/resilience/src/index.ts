/**
 * `@proxyless/resilience`: every resilience policy of the mesh as a `Filter` — deadlines and
 * per-try timeouts with propagation, retries with budgets, hedging, circuit breaking, concurrency
 * and rate limits, fault injection — plus the configuration they read. See docs/policies.md.
 */
export { type BreakerState, createCircuitBreakerFilter, DestinationBreaker } from './breaker.js';
export { RetryBudget } from './budget.js';
export {
  type BackoffConfig,
  type CircuitBreakerConfig,
  type CircuitBreakerPatch,
  type ConcurrencyLimitConfig,
  type ConcurrencyLimitPatch,
  DEFAULT_CIRCUIT_BREAKER,
  DEFAULT_HEDGE,
  DEFAULT_RESILIENCE_CONFIG,
  DEFAULT_RETRY,
  type FaultInjectionConfig,
  type FaultInjectionPatch,
  type HedgeConfig,
  type HedgePatch,
  parseResiliencePatch,
  type RateLimitConfig,
  type RateLimitPatch,
  RESILIENCE_CONFIG_KEYS,
  RETRY_ON_VALUES,
  type ResilienceConfig,
  type ResiliencePatch,
  type RetryBudgetConfig,
  type RetryConfig,
  type RetryOn,
  type RetryPatch,
  resilienceEnvVars,
  resiliencePatchFromEnv,
  resolveResilienceConfig,
} from './config.js';
export {
  createDeadlineFilter,
  createPerTryTimeoutFilter,
  DEADLINE_HEADER,
  deadlineFromHeaders,
  remainingIncomingDeadline,
  runWithIncomingDeadline,
  type TimeoutLimit,
} from './deadline.js';
export { createFaultInjectionFilter, parseFaultHeader } from './fault.js';
export { createHedgeFilter, LatencyTracker } from './hedge.js';
export { createConcurrencyLimitFilter, createRateLimitFilter, TokenBucket } from './limits.js';
export {
  backoffDelay,
  createGate,
  createRetryFilter,
  nextAttemptNumber,
  parseRetryAfter,
  type RetryDeps,
  type RetryGate,
  retryReason,
  unsafeToReplay,
} from './retry.js';
export { createPolicyStack, type PolicyStack, type PolicyStackDeps, withPolicies } from './stack.js';
