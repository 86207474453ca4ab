import {
  type CallContext,
  type CallResult,
  type Clock,
  compose,
  type Filter,
  type Logger,
  type Random,
} from '@proxyless/core';
import { type BreakerState, DestinationBreaker } from './breaker.js';
import { RetryBudget } from './budget.js';
import { DEFAULT_RETRY, type ResilienceConfig } from './config.js';
import { createDeadlineFilter, createPerTryTimeoutFilter } from './deadline.js';
import { createFaultInjectionFilter } from './fault.js';
import { createHedgeFilter } from './hedge.js';
import { createConcurrencyLimitFilter, createRateLimitFilter } from './limits.js';
import { createGate, createRetryFilter } from './retry.js';

/** What {@link createPolicyStack} needs about the destination. */
export interface PolicyStackDeps {
  readonly service: string;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  /** Circuit-breaker state changes of this destination. */
  readonly onBreakerStateChange?: (state: BreakerState) => void;
}

/** The filters of one destination, outermost first, and a way to release their timers. */
export interface PolicyStack {
  /** The interceptors, outermost first. */
  readonly filters: Filter[];
  /** The role of each interceptor in `filters`, in the same order. */
  readonly roles: string[];
  /** The circuit breaker's state, when the destination has one. */
  circuitBreakerState(): BreakerState | undefined;
  close(): void;
}

/**
 * Build the filters of one destination service from its resolved config, outermost first:
 * deadline → fault injection → rate limit → concurrency limit → retry → hedge → circuit breaker →
 * per-try timeout (+ deadline header). Disabled policies add no filter. State (budget, breaker,
 * limits) is shared by every call through the returned filters.
 */
export function createPolicyStack(config: ResilienceConfig, deps: PolicyStackDeps): PolicyStack {
  const filters: Filter[] = [];
  const roles: string[] = [];
  const add = (role: string, f: Filter): void => {
    roles.push(role);
    filters.push(f);
  };
  const closers: Array<() => void> = [];
  let breakerRef: DestinationBreaker | undefined;
  const { service, clock } = deps;
  const deadline = createDeadlineFilter({ timeoutMs: config.timeoutMs, service });
  // Always present: it also enforces a deadline propagated from the incoming request.
  add('deadline', deadline);
  closers.push(() => deadline.close());
  if (config.faultInjection !== undefined)
    add('faultInjection', createFaultInjectionFilter(config.faultInjection, { service }));
  if (config.rateLimit !== undefined)
    add('rateLimit', createRateLimitFilter(config.rateLimit, { clock, service }));
  if (config.concurrencyLimit !== undefined) {
    const queue = Math.min(
      config.concurrencyLimit.queue,
      config.circuitBreaker?.maxPendingRequests ?? Number.POSITIVE_INFINITY,
    );
    add('concurrencyLimit', createConcurrencyLimitFilter({ ...config.concurrencyLimit, queue }, { service }));
  }
  const budget = new RetryBudget((config.retry ?? DEFAULT_RETRY).budget, clock);
  const retrying = config.retry !== undefined && config.retry.maxRetries > 0;
  if (config.retry !== undefined && retrying) {
    const gate =
      config.circuitBreaker !== undefined ? createGate(config.circuitBreaker.maxRetries) : undefined;
    add('retry', createRetryFilter(config.retry, { budget, ...(gate ? { gate } : {}) }));
  }
  if (config.hedge !== undefined)
    add('hedge', createHedgeFilter(config.hedge, retrying ? { budget } : { clock }));
  if (config.circuitBreaker !== undefined) {
    const breaker = new DestinationBreaker(config.circuitBreaker, {
      clock,
      service,
      logger: deps.logger,
      ...(deps.onBreakerStateChange ? { onStateChange: deps.onBreakerStateChange } : {}),
    });
    breakerRef = breaker;
    add('circuitBreaker', breaker.filter());
    closers.push(() => breaker.close());
  }
  add('perTryTimeout', createPerTryTimeoutFilter({ perTryTimeoutMs: config.perTryTimeoutMs, service }));
  return {
    filters,
    roles,
    circuitBreakerState: () => breakerRef?.state,
    close() {
      for (const c of closers) c();
    },
  };
}

/**
 * Wrap any async function with filters: `withPolicies([createRetryFilter()], (ctx) => call(ctx))`.
 * The function receives each attempt's context (use `ctx.signal`).
 */
export function withPolicies(
  filters: readonly Filter[],
  fn: (ctx: CallContext) => Promise<CallResult>,
): (ctx: CallContext) => Promise<CallResult> {
  return compose(filters, fn);
}
