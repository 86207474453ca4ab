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
import {
  createConcurrencyLimitFilter,
  createRateLimitFilter,
  type EarlierCalls,
  type RateLimitFilter,
  type TokenBucket,
} from './limits.js';
import { createGate, createRetryFilter } from './retry.js';

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
  /**
   * The destination's random source. The stages draw jitter and fault decisions from each call's
   * `ctx.random` (the mesh gives every call this same source; in a test, give the calls one
   * `seededRandom` through `testContext({ random })` for percentages over many calls).
   */
  readonly random: Random;
  readonly logger: Logger;
  /** Circuit-breaker state changes of this destination. */
  readonly onBreakerStateChange?: (state: BreakerState) => void;
  /**
   * The rate-limit bucket of a stack released for the same destination (evicted while idle): a
   * rate-limit stage built without a previous one goes on with its tokens, brought to its settings.
   */
  readonly rateLimitBucket?: TokenBucket;
  /**
   * The calls in flight through the destination's earlier stacks: a concurrency limit or a
   * breaker a reload turns on counts them against its threshold until they end.
   */
  readonly earlierCalls?: EarlierCalls;
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
  /** The rate limit's token bucket, when the destination has one (to hand to a later stack). */
  rateLimitBucket(): TokenBucket | undefined;
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
 * retry budget, the hedge's latency window). The limits (and the breaker's `maxRequests`, the
 * retry gate) are changed in place instead: `concurrencyLimit` keeps its slots and queue,
 * `rateLimit` its tokens. Settings with another owner are left out of what a stage reads:
 * `circuitBreaker.maxRetries` is the retry gate's, `maxPendingRequests` the concurrency limit's
 * queue, `maxConnections` the destination's pools.
 */
export const POLICY_STAGES = {
  deadline: { reads: (c: ResilienceConfig) => c.timeoutMs },
  faultInjection: { reads: (c: ResilienceConfig) => c.faultInjection },
  rateLimit: { reads: (c: ResilienceConfig) => c.rateLimit },
  concurrencyLimit: { reads: (c: ResilienceConfig) => concurrencyLimitOf(c) },
  // Retries off (`retry: false`), hedges still take from it: the budget's defaults.
  budget: { reads: (c: ResilienceConfig) => (c.retry ?? DEFAULT_RETRY).budget },
  retryGate: { reads: (c: ResilienceConfig) => c.circuitBreaker?.maxRetries },
  retry: {
    reads: (c: ResilienceConfig) => (retrying(c) ? c.retry : undefined),
    uses: ['budget', 'retryGate'],
  },
  // Whether retries are on says who counts the calls for the budget: the retry filter or the hedge.
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

type BreakerReads = ReturnType<typeof breakerOf>;

/** What the breaker's error-rate state machine reads: all it reads but its `maxRequests` threshold. */
function errorRateOf(reads: BreakerReads) {
  if (reads === undefined) return undefined;
  const { maxRequests: _m, ...rest } = reads;
  return rest;
}

/** One built stage: what it read, its instance, and how to release it (for its successor, if any). */
interface Part {
  readonly reads: unknown;
  readonly value: unknown;
  /** `retired`: replaced by `successor` or removed by a reload, not closed with its stack. */
  readonly close: ((successor: unknown, retired: boolean) => void) | undefined;
}

const partsOf = new WeakMap<PolicyStack, ReadonlyMap<PolicyStage, Part>>();

/*
 * A part outlives the stack that built it (a later stack takes it over), so its `close` must not be
 * a closure made in `createPolicyStack`: every such closure keeps that call's whole scope — its
 * breaker, its predecessor's parts — and through them every stack before it, one per config version.
 * These are made at module level, and hold only the part's own instance.
 */
function partClose<T>(
  close: (value: T, successor: T | undefined, retired: boolean) => void,
  value: T,
): (successor: unknown, retired: boolean) => void {
  return (successor, retired) => close(value, successor as T | undefined, retired);
}

function closeDeadline(f: { close(): void }): void {
  f.close();
}

function closeConcurrencyLimit(f: { close(): void }, _successor: unknown, retired: boolean): void {
  if (retired) f.close();
}

function closeBreaker(
  x: { breaker: DestinationBreaker },
  successor: { breaker: DestinationBreaker } | undefined,
  retired: boolean,
): void {
  if (retired) x.breaker.retire(successor?.breaker);
  else x.breaker.close();
}

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
  // Read while this stack is built, then dropped (below): the closures made here (each part's
  // `close`) outlive the call, and would otherwise keep every earlier stack alive through it.
  let before = previous === undefined ? undefined : partsOf.get(previous);
  const parts = new Map<PolicyStage, Part>();
  /** Stages reported: built anew, changed in place, or removed. */
  const rebuilt: PolicyStage[] = [];
  /** Stages built anew (new instances): the stages that use them are built anew too. */
  const built: PolicyStage[] = [];
  /**
   * One stage: taken over when its settings are the same; changed in place when `update` can
   * apply the new settings to the previous instance (its live counters stay); else built anew by
   * `make`, which gets the previous instance to take its live state over from.
   */
  const stage = <T>(
    name: PolicyStage,
    make: (previous: T | undefined) => T,
    close?: (value: T, successor: T | undefined, retired: boolean) => void,
    update?: (value: T, previousReads: unknown) => boolean,
  ): T => {
    const spec: { reads: (c: ResilienceConfig) => unknown; uses?: readonly string[] } = POLICY_STAGES[name];
    const reads = spec.reads(config);
    const old = before?.get(name);
    const usesNew = (spec.uses ?? []).some((u) => built.includes(u as PolicyStage));
    if (old !== undefined && !usesNew) {
      if (sameSettings(old.reads, reads)) {
        parts.set(name, old);
        return old.value as T;
      }
      if (update?.(old.value as T, old.reads)) {
        parts.set(name, { reads, value: old.value, close: old.close });
        rebuilt.push(name);
        return old.value as T;
      }
    }
    const value = make(old?.value as T | undefined);
    parts.set(name, { reads, value, close: close ? partClose(close, value) : undefined });
    rebuilt.push(name);
    built.push(name);
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
    stage('deadline', () => createDeadlineFilter({ timeoutMs: config.timeoutMs, service }), closeDeadline),
  );
  const fault = config.faultInjection;
  if (fault !== undefined)
    add(
      'faultInjection',
      stage('faultInjection', () => createFaultInjectionFilter(fault, { service })),
    );
  const rate = config.rateLimit;
  const carried = deps.rateLimitBucket;
  const rateLimit =
    rate === undefined
      ? undefined
      : stage<RateLimitFilter>(
          'rateLimit',
          () => createRateLimitFilter(rate, { clock, service, ...(carried ? { bucket: carried } : {}) }),
          undefined,
          (f) => {
            // The same bucket: its tokens refill up to now at the old rate, then are capped at the new burst.
            f.reconfigure(rate);
            return true;
          },
        );
  if (rateLimit !== undefined) add('rateLimit', rateLimit);
  const limit = concurrencyLimitOf(config);
  if (limit !== undefined)
    add(
      'concurrencyLimit',
      stage(
        'concurrencyLimit',
        () =>
          createConcurrencyLimitFilter(limit, {
            service,
            ...(deps.earlierCalls ? { earlier: deps.earlierCalls } : {}),
          }),
        closeConcurrencyLimit,
        (f) => {
          f.reconfigure(limit);
          return true;
        },
      ),
    );
  const budget = stage('budget', () => new RetryBudget((config.retry ?? DEFAULT_RETRY).budget, clock));
  const cb = config.circuitBreaker;
  const gate = stage(
    'retryGate',
    () => (cb !== undefined ? createGate(cb.maxRetries) : undefined),
    undefined,
    (g) => {
      // Retries in flight keep their places; a gate is made or dropped with the breaker section.
      if (g === undefined || cb === undefined) return false;
      g.setLimit(cb.maxRetries);
      return true;
    },
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
      // Hedges are paid from the destination's one budget, retries on or off (`retry: false`: the
      // budget's defaults); with no retry filter in front to count the calls, the hedge counts them.
      stage('hedge', () => createHedgeFilter(hedge, { budget, countRequests: !retrying(config) })),
    );
  let breaker: DestinationBreaker | undefined;
  if (cb !== undefined) {
    const built = stage<{ breaker: DestinationBreaker; filter: Filter }>(
      'circuitBreaker',
      (previous) => {
        const b = new DestinationBreaker(cb, {
          clock,
          service,
          logger: deps.logger,
          ...(deps.onBreakerStateChange ? { onStateChange: deps.onBreakerStateChange } : {}),
          ...(previous ? { previous: previous.breaker } : {}),
          ...(deps.earlierCalls ? { earlier: deps.earlierCalls } : {}),
        });
        return { breaker: b, filter: b.filter() };
      },
      closeBreaker,
      (x, previousReads) => {
        // Only maxRequests changed: the same breaker, state and window kept, checks the new one.
        if (!sameSettings(errorRateOf(previousReads as BreakerReads), errorRateOf(breakerOf(config))))
          return false;
        x.breaker.setMaxRequests(cb.maxRequests);
        return true;
      },
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
  // A stage the previous stack had and this one has not was removed: reported too.
  for (const name of before?.keys() ?? []) if (!parts.has(name)) rebuilt.push(name);
  const breakerRef = breaker;
  const roles = POLICY_ROLES.filter((role) => byRole.has(role));
  const filters = roles.map((role) => byRole.get(role) as Filter);
  const stack: PolicyStack = {
    filters,
    roles,
    rebuilt,
    circuitBreakerState: () => breakerRef?.state,
    rateLimitBucket: () => rateLimit?.bucket,
    close() {
      for (const p of parts.values()) p.close?.(undefined, false);
    },
    retire(next) {
      const after = partsOf.get(next);
      const kept = new Set<unknown>();
      for (const p of after?.values() ?? []) kept.add(p.value);
      for (const [name, p] of parts) if (!kept.has(p.value)) p.close?.(after?.get(name)?.value, true);
    },
  };
  partsOf.set(stack, parts);
  before = undefined;
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
