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
  type CircuitBreakerOptions,
  type CircuitBreakerPatch,
  type ConcurrencyLimitConfig,
  type ConcurrencyLimitOptions,
  type ConcurrencyLimitPatch,
  circuitBreakerSection,
  concurrencyLimitSection,
  connectTimeoutSection,
  DEFAULT_CIRCUIT_BREAKER,
  DEFAULT_CONCURRENCY_LIMIT,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_HEDGE,
  DEFAULT_RESILIENCE_CONFIG,
  DEFAULT_RETRY,
  type FaultInjectionConfig,
  type FaultInjectionOptions,
  type FaultInjectionPatch,
  faultInjectionSection,
  type HedgeConfig,
  type HedgeOptions,
  type HedgePatch,
  hedgeSection,
  parseResiliencePatch,
  perTryTimeoutSection,
  type RateLimitConfig,
  type RateLimitOptions,
  type RateLimitPatch,
  RESILIENCE_CONFIG_KEYS,
  RETRY_ON_VALUES,
  type ResilienceConfig,
  type ResilienceOptions,
  type ResiliencePatch,
  type RetryBudgetConfig,
  type RetryConfig,
  type RetryOn,
  type RetryOptions,
  type RetryPatch,
  rateLimitSection,
  resilienceEnvVars,
  resiliencePatchFromEnv,
  resiliencePatchOf,
  resilienceProperties,
  resilienceSchema,
  resilienceWarnings,
  resolveParsedPatches,
  resolveResilienceConfig,
  retrySection,
  type TimeoutOptions,
  timeoutSection,
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
export { createHedgeFilter, type HedgeDeps, LatencyTracker } from './hedge.js';
export {
  createConcurrencyLimitFilter,
  createRateLimitFilter,
  type EarlierCalls,
  TokenBucket,
} from './limits.js';
export { cancelQueued, cancelQueuedCall, holdQueued, kQueuedHold, type QueuedHold } from './queued.js';
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
export {
  createPolicyStack,
  POLICY_ROLES,
  POLICY_STAGES,
  type PolicyRole,
  type PolicyStack,
  type PolicyStackDeps,
  type PolicyStage,
  sameSettings,
  withPolicies,
} from './stack.js';
