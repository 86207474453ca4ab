/**
 * The fields of a hand-written `ResiliencePatch`, section by section, for `runPolicy`: such a patch
 * is used as it is, so a misspelt key (`retry: { maxRetrys: 0 }`) would silently be a default.
 * Each shape is checked against its config type at compile time (every field, no other).
 */
import { type Issues, processWide } from '@proxyless/core';
import type { ResilienceConfig, ResiliencePatch } from './config.js';

type Shape<T> = { readonly [K in keyof T]-?: true | Shape<NonNullable<T[K]>> };

const PATCH_SHAPE: Shape<ResilienceConfig> = {
  timeoutMs: true,
  perTryTimeoutMs: true,
  connectTimeoutMs: true,
  retry: {
    maxRetries: true,
    retryOn: true,
    retriableStatusCodes: true,
    retriableHeaders: true,
    backoff: { baseMs: true, maxMs: true },
    retryAfterMaxMs: true,
    allowNonIdempotent: true,
    budget: { ratio: true, minPerSecond: true, windowMs: true },
  },
  hedge: { delayMs: true, percentile: true, maxHedges: true },
  circuitBreaker: {
    errorThresholdPercentage: true,
    volumeThreshold: true,
    rollingWindowMs: true,
    resetTimeoutMs: true,
    halfOpenMaxCalls: true,
    maxConnections: true,
    maxPendingRequests: true,
    maxRequests: true,
    maxRetries: true,
  },
  concurrencyLimit: { max: true, queue: true, queueTimeoutMs: true },
  rateLimit: { rps: true, burst: true },
  faultInjection: {
    delay: { percent: true, durationMs: true },
    abort: { percent: true, status: true },
    header: true,
  },
};

/** Record every key of `patch` (at any depth) that is no field of a `ResiliencePatch`, under `path`. */
export function unknownPatchKeys(
  patch: unknown,
  issues: Issues,
  path = 'policy',
  shape: object = PATCH_SHAPE,
): void {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return;
  const fields = shape as Readonly<Record<string, unknown>>;
  for (const [k, v] of Object.entries(patch)) {
    const inner = fields[k];
    const at = path === '' ? k : `${path}.${k}`;
    if (inner === undefined) issues.add(at, `one of ${Object.keys(fields).join(', ')}`, k);
    else if (typeof inner === 'object' && inner !== null) unknownPatchKeys(v, issues, at, inner);
  }
}

/**
 * The fields of one section of a `ResiliencePatch` (`retry` → `maxRetries`, `backoff`…), for a
 * policy factory given that section's settings directly.
 */
export function sectionShape(
  section: 'retry' | 'hedge' | 'circuitBreaker' | 'concurrencyLimit' | 'rateLimit' | 'faultInjection',
): object {
  return PATCH_SHAPE[section] as object;
}

/**
 * Patches made by the parser (never by hand): what {@link isParsedPatch} recognises. One set for
 * the process: a patch parsed by `@proxyless/resilience` is a parsed patch to the copy `proxyless`
 * bundles, and the other way round.
 */
const PARSED = processWide('proxyless.parsedResiliencePatches.1', () => new WeakSet<object>());

/** Mark `patch` as made by the parser. */
export function markParsed(patch: ResiliencePatch): void {
  PARSED.add(patch);
}

/** True for a patch `resiliencePatchOf` / `parseResiliencePatch` returned. */
export function isParsedPatch(value: unknown): value is ResiliencePatch {
  return typeof value === 'object' && value !== null && PARSED.has(value);
}
