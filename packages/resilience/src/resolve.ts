/**
 * Resolving a destination's resilience layers: each parsed patch merged over the last, field by
 * field, then the rules that span layers (errors) and those that only warn. Merges are made once
 * per pair of immutable inputs, so the services of a large document that share sections share
 * their merged configs.
 */
import { type ConfigIssue, Issues, processWide } from '@proxyless/core';
import type { ResilienceConfig, ResiliencePatch } from './config.js';
import { isParsedPatch, unknownPatchKeys } from './patch-shape.js';
import { DEFAULT_CIRCUIT_BREAKER } from './sections/circuit-breaker.js';
import { type FaultInjectionConfig, resolveFaultInjection } from './sections/fault-injection.js';
import { DEFAULT_HEDGE } from './sections/hedge.js';
import { DEFAULT_CONCURRENCY_LIMIT, type RateLimitConfig } from './sections/limits.js';
import { BACKOFF_MAX_PER_BASE, DEFAULT_RETRY, type RetryConfig } from './sections/retry.js';
import { DEFAULT_CONNECT_TIMEOUT_MS } from './sections/timeouts.js';

/**
 * Configs {@link resolveResilienceConfig} returned (and the built-in defaults): what
 * {@link isResolvedConfig} recognises. Their keys cannot tell them apart: a patch may set exactly
 * the same ones (`timeoutMs`, `retry`, `hedge`, …) with partial sections.
 */
const RESOLVED = processWide('proxyless.resolvedResilienceConfigs.1', () => new WeakSet<object>());

/** Freeze `config` and mark it as resolved (see {@link isResolvedConfig}). */
function resolved(config: ResilienceConfig): ResilienceConfig {
  const frozen = Object.freeze(config);
  RESOLVED.add(frozen);
  return frozen;
}

/**
 * True for a config {@link resolveResilienceConfig} returned, or {@link DEFAULT_RESILIENCE_CONFIG}:
 * every section complete, ready for `createPolicyStack`. A patch, or a config written by hand or
 * copied with a spread, is not one, whatever keys it has.
 */
export function isResolvedConfig(value: unknown): value is ResilienceConfig {
  return typeof value === 'object' && value !== null && RESOLVED.has(value);
}

/**
 * Built-in defaults: no overall timeout (a default must never cut a streaming body; Istio leaves
 * route timeouts off too), retries on, circuit breaker on, everything else off.
 */
export const DEFAULT_RESILIENCE_CONFIG: ResilienceConfig = resolved({
  timeoutMs: 0,
  perTryTimeoutMs: 0,
  connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_MS,
  retry: DEFAULT_RETRY,
  hedge: undefined,
  circuitBreaker: DEFAULT_CIRCUIT_BREAKER,
  concurrencyLimit: undefined,
  rateLimit: undefined,
  faultInjection: undefined,
});

function merge<T extends object>(base: T, patch: object): T {
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  const p = patch as Record<string, unknown>;
  // A for-in loop and no closure: this runs for every section of every service of a document.
  for (const k in p) {
    if (!Object.hasOwn(p, k)) continue;
    const v = p[k];
    // `percentile: undefined` is meaningful: a fixed hedge delay clears an earlier percentile.
    if (v === undefined && k !== 'percentile') continue;
    const cur = out[k];
    out[k] = isNested(v) && isNested(cur) ? merge(cur, v) : v;
  }
  return Object.freeze(out) as T;
}

function isNested(x: unknown): x is object {
  return x !== null && typeof x === 'object' && !Array.isArray(x);
}

/**
 * Merges already made, by the identity of what was merged: both sides are immutable, and a large
 * document gives many services the same section objects (parsed once: `SectionMemo`) over the same
 * defaults, so resolving 1,000 services mostly finds its merges made.
 */
const merges = new WeakMap<object, WeakMap<object, object>>();

function layer<T extends object>(
  current: T | undefined,
  patch: object | false | undefined,
  defaults: T | undefined,
): T | undefined {
  if (patch === undefined) return current;
  if (patch === false) return undefined;
  const base = current ?? defaults;
  if (base === undefined) return Object.freeze({ ...patch }) as T;
  let byPatch = merges.get(base);
  if (byPatch === undefined) {
    byPatch = new WeakMap();
    merges.set(base, byPatch);
  }
  let out = byPatch.get(patch) as T | undefined;
  if (out === undefined) {
    out = merge(base, patch);
    byPatch.set(patch, out);
  }
  return out;
}

/** Retry configs with `backoff.max` derived from their base, by the config they came from. */
const derivedMax = new WeakMap<RetryConfig, RetryConfig>();

function withDerivedMax(retry: RetryConfig): RetryConfig {
  let out = derivedMax.get(retry);
  if (out === undefined) {
    out = merge(retry, { backoff: { maxMs: retry.backoff.baseMs * BACKOFF_MAX_PER_BASE } });
    derivedMax.set(retry, out);
  }
  return out;
}

const NO_FAULT: FaultInjectionConfig = Object.freeze({
  delay: undefined,
  abort: undefined,
  header: undefined,
});

/**
 * Resolve the layers of one destination, earliest first: built-in defaults, then each patch,
 * field by field (a later layer wins). A policy switched off by `false` can be switched on again
 * by a later object, starting from the built-in defaults.
 * @throws MeshError `MESH_CONFIG_INVALID` when the merged result breaks a rule that spans layers:
 * `rateLimit` without `rps`; `retry.backoff.max` below `retry.backoff.base`;
 * `circuitBreaker.maxPendingRequests` without a `concurrencyLimit` queue (the queue it bounds is
 * that limit's: one owner per setting) — unless a layer above the one that set it took the queue
 * away, or it is 0: then it has nothing to bound here and is dropped. A `retry.backoff.max` no layer sets is 10× the merged base;
 * a `faultInjection` `percent` or `status` no layer sets is its built-in value (`DEFAULT_FAULT`).
 */
export function resolveResilienceConfig(...patches: ResiliencePatch[]): ResilienceConfig {
  // A patch written by hand is used as it is: a key in the config document's shape
  // (`resetTimeout: '10s'`) or misspelt would silently leave its field at the default. Named.
  const keys = new Issues();
  for (let i = 0; i < patches.length; i++) {
    const p = patches[i];
    if (!isParsedPatch(p) && !isResolvedConfig(p))
      unknownPatchKeys(p, keys, patches.length === 1 ? '' : `patches[${i}]`);
  }
  keys.throwIfAny('resolveResilienceConfig: invalid patch');
  return resolveParsedPatches(patches);
}

/**
 * {@link resolveResilienceConfig} over patches the parser made (the mesh's layers, every service of
 * a document): their keys need no second look.
 * @internal
 */
export function resolveParsedPatches(patches: readonly ResiliencePatch[]): ResilienceConfig {
  const c: { -readonly [K in keyof ResilienceConfig]: ResilienceConfig[K] } = {
    ...DEFAULT_RESILIENCE_CONFIG,
  };
  // Whether a layer in force sets `retry.backoff.max`: unset, it follows the merged base.
  let maxSet = false;
  // The layer that set the `maxPendingRequests` in force, and the last one that left the
  // concurrency limit without a queue (off, or `queue: 0`); -1: the built-in defaults (no queue).
  let pendingAt: number | undefined;
  let queueOffAt = -1;
  for (let i = 0; i < patches.length; i++) {
    const p = patches[i]!;
    if (p.circuitBreaker === false) pendingAt = undefined;
    else if (p.circuitBreaker?.maxPendingRequests !== undefined) pendingAt = i;
    if (p.concurrencyLimit === false || p.concurrencyLimit?.queue === 0) queueOffAt = i;
    if (p.timeoutMs !== undefined) c.timeoutMs = p.timeoutMs;
    if (p.perTryTimeoutMs !== undefined) c.perTryTimeoutMs = p.perTryTimeoutMs;
    if (p.connectTimeoutMs !== undefined) c.connectTimeoutMs = p.connectTimeoutMs;
    if (p.retry === false) maxSet = false;
    else if (p.retry?.backoff?.maxMs !== undefined) maxSet = true;
    c.retry = layer(c.retry, p.retry, DEFAULT_RETRY);
    c.hedge = layer(c.hedge, p.hedge, DEFAULT_HEDGE);
    c.circuitBreaker = layer(c.circuitBreaker, p.circuitBreaker, DEFAULT_CIRCUIT_BREAKER);
    c.concurrencyLimit = layer(c.concurrencyLimit, p.concurrencyLimit, DEFAULT_CONCURRENCY_LIMIT);
    c.rateLimit = layer(c.rateLimit, p.rateLimit, undefined);
    c.faultInjection = layer(c.faultInjection, p.faultInjection, NO_FAULT);
  }
  const issues = new Issues();
  if (c.faultInjection !== undefined) c.faultInjection = resolveFaultInjection(c.faultInjection, issues);
  if (c.rateLimit !== undefined) {
    const { rps, burst } = c.rateLimit as Partial<RateLimitConfig>;
    if (rps === undefined)
      issues.add('rateLimit.rps', 'a number ≥ 0.001 (requests per second) set in some layer', undefined);
    else c.rateLimit = Object.freeze({ rps, burst: burst ?? Math.max(1, Math.ceil(rps)) });
  }
  if (c.retry !== undefined) {
    const { baseMs, maxMs } = c.retry.backoff;
    if (!maxSet) {
      // Envoy's rule: max_interval defaults to 10× base_interval (25 ms gives the default 250 ms).
      if (maxMs !== baseMs * BACKOFF_MAX_PER_BASE) c.retry = withDerivedMax(c.retry);
    } else if (maxMs < baseMs) {
      issues.add('retry.backoff.max', `a duration ≥ retry.backoff.base (${baseMs}ms)`, `${maxMs}ms`);
    }
  }
  if (
    c.circuitBreaker?.maxPendingRequests !== undefined &&
    (c.concurrencyLimit === undefined || c.concurrencyLimit.queue === 0) &&
    (c.circuitBreaker.maxPendingRequests === 0 || (pendingAt !== undefined && pendingAt < queueOffAt))
  ) {
    // Nothing can wait, which a threshold of 0 says too; or a layer above the one that set the
    // threshold took the queue away (a service turning off the limit its defaults configure):
    // the threshold has nothing to bound for this destination, so it goes. Not warned: what a
    // lower layer (the defaults) sets holds for services of every kind, as a `hashOn` does.
    c.circuitBreaker = Object.freeze({ ...c.circuitBreaker, maxPendingRequests: undefined });
  }
  const pending = c.circuitBreaker?.maxPendingRequests;
  if (pending !== undefined && c.concurrencyLimit === undefined) {
    issues.add(
      'circuitBreaker.maxPendingRequests',
      'no value without concurrencyLimit (it bounds that limit’s queue; set concurrencyLimit.queue, or drop it)',
      pending,
    );
  } else if (pending !== undefined && c.concurrencyLimit!.queue === 0) {
    // With no queue nothing ever waits, so the threshold could never apply (one owner per setting).
    issues.add(
      'circuitBreaker.maxPendingRequests',
      'no value without a concurrencyLimit queue (it bounds that queue, which is 0; set concurrencyLimit.queue, or drop it)',
      pending,
    );
  }
  issues.throwIfAny('resilience configuration');
  return resolved(c);
}

/**
 * Rules that warn rather than reject: a per-try timeout longer than the overall timeout can never
 * fire (the overall deadline cuts the attempt first), nor can a fixed hedge delay at or above it
 * (the call has ended before the hedge timer) or at or above the per-try timeout (the attempt has
 * timed out before it). A percentile delay is measured from successful
 * attempts, all shorter than the timeout: not warned.
 */
export function resilienceWarnings(config: ResilienceConfig): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  if (config.timeoutMs > 0 && config.perTryTimeoutMs > config.timeoutMs) {
    out.push({
      field: 'perTryTimeout',
      expected: `at most timeout (${config.timeoutMs}ms); it can never fire`,
      value: config.perTryTimeoutMs,
    });
  }
  const hedge = config.hedge;
  if (hedge !== undefined && hedge.percentile === undefined) {
    // The per-try timeout is inside the hedge stage: an attempt it cuts before the delay ends its
    // group of hedged attempts (then the retry stage may start another, with the same timer).
    const { timeoutMs, perTryTimeoutMs } = config;
    if (
      perTryTimeoutMs > 0 &&
      hedge.delayMs >= perTryTimeoutMs &&
      (timeoutMs === 0 || perTryTimeoutMs < timeoutMs)
    ) {
      out.push({
        field: 'hedge.delay',
        expected: `below perTryTimeout (${perTryTimeoutMs}ms); each attempt times out before a hedge is sent, so it never fires`,
        value: hedge.delayMs,
      });
    } else if (timeoutMs > 0 && hedge.delayMs >= timeoutMs) {
      out.push({
        field: 'hedge.delay',
        expected: `below timeout (${timeoutMs}ms); the call ends before a hedge is sent, so it never fires`,
        value: hedge.delayMs,
      });
    }
  }
  // Two thresholds on requests in flight: the breaker's (per attempt, inner) refuses first when it
  // is the lower, so the limit (per call, outer) and its queue never act.
  const limit = config.concurrencyLimit;
  const breaker = config.circuitBreaker;
  if (limit !== undefined && breaker !== undefined && breaker.maxRequests < limit.max) {
    out.push({
      field: 'concurrencyLimit.max',
      expected: `at most circuitBreaker.maxRequests (${breaker.maxRequests}); past ${breaker.maxRequests} in flight the breaker refuses calls first (MESH_CIRCUIT_OPEN), so the limit${limit.queue > 0 ? ' and its queue never act' : ' never acts'}`,
      value: limit.max,
    });
  }
  return out;
}
