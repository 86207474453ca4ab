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
import { createGate, createRetryFilter, type RetryGate } from './retry.js';

/**
 * The order of the policy stages, outermost first: the one place it is written. The overall
 * deadline covers every attempt; fault injection and the limits act once per call; retry and hedge
 * make attempts; the breaker and the per-try timeout (with the deadline header) see each attempt.
 * {@link createPolicyStack} orders its filters by it, and the mesh's call stack places telemetry
 * around it.
 */
export const POLICY_ROLES = [
  'deadline',
  'faultInjection',
  'rateLimit',
  'concurrencyLimit',
  'retry',
  'hedge',
  'circuitBreaker',
  'perTryTimeout',
] as const;

/** A role of a policy stage (`deadline`, `retry`, `circuitBreaker`, …). */
export type PolicyRole = (typeof POLICY_ROLES)[number];

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
  /** The interceptors, outermost first (in {@link POLICY_ROLES} order). */
  readonly filters: Filter[];
  /** The role of each interceptor in `filters`, in the same order. */
  readonly roles: PolicyRole[];
  /**
   * The stages built anew for this stack (`retry`, `circuitBreaker`, and the shared state `budget`
   * and `retryGate`); every other stage is the previous stack's own instance, state included.
   * All of them when there was no previous stack.
   */
  readonly rebuilt: readonly PolicyStage[];
  /** The circuit breaker's state, when the destination has one. */
  circuitBreakerState(): BreakerState | undefined;
  /** Release every stage's timers. */
  close(): void;
  /** Release the stages that `next` (built from this stack) did not take over. */
  retire(next: PolicyStack): void;
}

/**
 * What each stage of a destination's stack reads of its config: the one table that says which
 * settings rebuild which stage. A stage is built anew exactly when what it reads changes (plain
 * data, compared by value) or a stage it `uses` is built anew; otherwise the next stack takes
 * over its instance with its state (breaker state and counts, limits' in-flight counts, the
 * retry budget, the hedge's latency window). Settings with another owner are left out of what
 * a stage reads: `circuitBreaker.maxRetries` is the retry gate's, `maxPendingRequests` the
 * concurrency limit's queue, `maxConnections` the destination's pools.
 */
export const POLICY_STAGES = {
  deadline: { reads: (c: ResilienceConfig) => c.timeoutMs },
  faultInjection: { reads: (c: ResilienceConfig) => c.faultInjection },
  rateLimit: { reads: (c: ResilienceConfig) => c.rateLimit },
  concurrencyLimit: { reads: (c: ResilienceConfig) => concurrencyLimitOf(c) },
  budget: { reads: (c: ResilienceConfig) => (c.retry ?? DEFAULT_RETRY).budget },
  retryGate: { reads: (c: ResilienceConfig) => c.circuitBreaker?.maxRetries },
  retry: {
    reads: (c: ResilienceConfig) => (retrying(c) ? c.retry : undefined),
    uses: ['budget', 'retryGate'],
  },
  hedge: { reads: (c: ResilienceConfig) => c.hedge && [c.hedge, retrying(c)], uses: ['budget'] },
  circuitBreaker: { reads: (c: ResilienceConfig) => breakerOf(c) },
  perTryTimeout: { reads: (c: ResilienceConfig) => c.perTryTimeoutMs },
} as const satisfies Record<string, { reads: (c: ResilienceConfig) => unknown; uses?: readonly string[] }>;

/** A stage of a destination's stack, or state its stages share (`budget`, `retryGate`). */
export type PolicyStage = keyof typeof POLICY_STAGES;

function retrying(c: ResilienceConfig): boolean {
  return c.retry !== undefined && c.retry.maxRetries > 0;
}

function concurrencyLimitOf(c: ResilienceConfig) {
  if (c.concurrencyLimit === undefined) return undefined;
  const queue = Math.min(
    c.concurrencyLimit.queue,
    c.circuitBreaker?.maxPendingRequests ?? Number.POSITIVE_INFINITY,
  );
  return { ...c.concurrencyLimit, queue };
}

function breakerOf(c: ResilienceConfig) {
  if (c.circuitBreaker === undefined) return undefined;
  const { maxRetries: _r, maxPendingRequests: _p, maxConnections: _c, ...own } = c.circuitBreaker;
  return own;
}

/** One built stage: what it read, its instance, and how to release it. */
interface Part {
  readonly reads: unknown;
  readonly value: unknown;
  readonly close: (() => void) | undefined;
}

const partsOf = new WeakMap<PolicyStack, ReadonlyMap<PolicyStage, Part>>();

/**
 * Build the filters of one destination service from its resolved config, outermost first in
 * {@link POLICY_ROLES} order. Disabled policies add no filter. State (budget, breaker,
 * limits) is shared by every call through the returned filters.
 *
 * With `previous` (the destination's stack in force), only the stages whose settings changed are
 * built (see {@link POLICY_STAGES}); the others are taken over as they are. The same config builds
 * nothing, so arms no timer. Afterwards call `previous.retire(next)` (or `next.close()` to drop it).
 */
export function createPolicyStack(
  config: ResilienceConfig,
  deps: PolicyStackDeps,
  previous?: PolicyStack,
): PolicyStack {
  const before = previous === undefined ? undefined : partsOf.get(previous);
  const parts = new Map<PolicyStage, Part>();
  const rebuilt: PolicyStage[] = [];
  const stage = <T>(name: PolicyStage, make: () => T, close?: (value: T) => void): T => {
    const spec: { reads: (c: ResilienceConfig) => unknown; uses?: readonly string[] } = POLICY_STAGES[name];
    const reads = spec.reads(config);
    const old = before?.get(name);
    if (
      old !== undefined &&
      sameSettings(old.reads, reads) &&
      !(spec.uses ?? []).some((u) => rebuilt.includes(u as PolicyStage))
    ) {
      parts.set(name, old);
      return old.value as T;
    }
    const value = make();
    parts.set(name, { reads, value, close: close ? () => close(value) : undefined });
    rebuilt.push(name);
    return value;
  };
  const byRole = new Map<PolicyRole, Filter>();
  const add = (role: PolicyRole, f: Filter): void => {
    byRole.set(role, f);
  };
  const { service, clock } = deps;
  // Always present: it also enforces a deadline propagated from the incoming request.
  add(
    'deadline',
    stage(
      'deadline',
      () => createDeadlineFilter({ timeoutMs: config.timeoutMs, service }),
      (f) => f.close(),
    ),
  );
  const fault = config.faultInjection;
  if (fault !== undefined)
    add(
      'faultInjection',
      stage('faultInjection', () => createFaultInjectionFilter(fault, { service })),
    );
  const rate = config.rateLimit;
  if (rate !== undefined)
    add(
      'rateLimit',
      stage('rateLimit', () => createRateLimitFilter(rate, { clock, service })),
    );
  const limit = concurrencyLimitOf(config);
  if (limit !== undefined)
    add(
      'concurrencyLimit',
      stage('concurrencyLimit', () => createConcurrencyLimitFilter(limit, { service })),
    );
  const budget = stage('budget', () => new RetryBudget((config.retry ?? DEFAULT_RETRY).budget, clock));
  const cb = config.circuitBreaker;
  const gate = stage('retryGate', (): RetryGate | undefined =>
    cb !== undefined ? createGate(cb.maxRetries) : undefined,
  );
  const retry = config.retry;
  if (retry !== undefined && retrying(config))
    add(
      'retry',
      stage('retry', () => createRetryFilter(retry, { budget, ...(gate ? { gate } : {}) })),
    );
  const hedge = config.hedge;
  if (hedge !== undefined)
    add(
      'hedge',
      stage('hedge', () => createHedgeFilter(hedge, retrying(config) ? { budget } : { clock })),
    );
  let breaker: DestinationBreaker | undefined;
  if (cb !== undefined) {
    const built = stage(
      'circuitBreaker',
      () => {
        const b = new DestinationBreaker(cb, {
          clock,
          service,
          logger: deps.logger,
          ...(deps.onBreakerStateChange ? { onStateChange: deps.onBreakerStateChange } : {}),
        });
        return { breaker: b, filter: b.filter() };
      },
      (x) => x.breaker.close(),
    );
    breaker = built.breaker;
    add('circuitBreaker', built.filter);
  }
  add(
    'perTryTimeout',
    stage('perTryTimeout', () =>
      createPerTryTimeoutFilter({ perTryTimeoutMs: config.perTryTimeoutMs, service }),
    ),
  );
  const breakerRef = breaker;
  const roles = POLICY_ROLES.filter((role) => byRole.has(role));
  const filters = roles.map((role) => byRole.get(role) as Filter);
  const stack: PolicyStack = {
    filters,
    roles,
    rebuilt,
    circuitBreakerState: () => breakerRef?.state,
    close() {
      for (const p of parts.values()) p.close?.();
    },
    retire(next) {
      const kept = new Set(partsOf.get(next)?.values());
      for (const p of parts.values()) if (!kept.has(p)) p.close?.();
    },
  };
  partsOf.set(stack, parts);
  return stack;
}

/**
 * Equality of resolved settings: plain objects and arrays by value, anything else (a budget, a
 * gate) by identity.
 */
export function sameSettings(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  const proto = Object.getPrototypeOf(a) as unknown;
  if (proto !== Object.getPrototypeOf(b)) return false;
  if (Array.isArray(a)) {
    const y = b as unknown[];
    return a.length === y.length && a.every((v, i) => sameSettings(v, y[i]));
  }
  if (proto !== Object.prototype && proto !== null) return false;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  const kx = Object.keys(x).filter((k) => x[k] !== undefined);
  const ky = Object.keys(y).filter((k) => y[k] !== undefined);
  return kx.length === ky.length && kx.every((k) => sameSettings(x[k], y[k]));
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
