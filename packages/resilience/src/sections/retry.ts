import {
  Duration,
  durationMsOrUndefined,
  envVar,
  Fields,
  foreignNames,
  type Issues,
  OneOf,
  parseDuration,
  parseRatio,
  Ratio,
  Section,
  type Static,
  Type,
} from '@proxyless/core';
import type { DeepPartial } from './util.js';

/** Conditions a retry may be made on (Envoy's `x-envoy-retry-on` names). */
export type RetryOn =
  | 'connect-failure'
  | 'reset'
  | 'refused-stream'
  | '5xx'
  | 'gateway-error'
  | 'retriable-status-codes'
  | 'retriable-headers';

/** Every {@link RetryOn} value. */
export const RETRY_ON_VALUES: readonly RetryOn[] = Object.freeze([
  'connect-failure',
  'reset',
  'refused-stream',
  '5xx',
  'gateway-error',
  'retriable-status-codes',
  'retriable-headers',
]);

/** Full-jitter exponential backoff between attempts. */
export interface BackoffConfig {
  /** First backoff ceiling in ms; doubles each retry. */
  readonly baseMs: number;
  /** Upper bound of any backoff in ms. */
  readonly maxMs: number;
}

/** A retry budget shared by every call to one destination (Linkerd/Finagle style). */
export interface RetryBudgetConfig {
  /** Retries allowed as a fraction of requests in the window (0..1). */
  readonly ratio: number;
  /** Retries always allowed per second, whatever the request count. */
  readonly minPerSecond: number;
  /** Sliding window, ms. */
  readonly windowMs: number;
}

/** Resolved retry policy. */
export interface RetryConfig {
  /** Retries after the first attempt. 0 disables retrying. */
  readonly maxRetries: number;
  readonly retryOn: readonly RetryOn[];
  /** Statuses retried under `retriable-status-codes`. */
  readonly retriableStatusCodes: readonly number[];
  /** Response header names (lower case) whose presence makes a response retriable under `retriable-headers`. */
  readonly retriableHeaders: readonly string[];
  readonly backoff: BackoffConfig;
  /** The longest `Retry-After` honoured, ms; a longer one stops retrying. */
  readonly retryAfterMaxMs: number;
  /** Retry non-idempotent requests too (a sent body is still never replayed unless replayable). */
  readonly allowNonIdempotent: boolean;
  readonly budget: RetryBudgetConfig;
}

/** Retry settings one layer sets. */
export type RetryPatch = DeepPartial<RetryConfig>;

/**
 * `retry.backoff.max` when no layer sets it, as a multiple of the merged `backoff.base`: Envoy's
 * `max_interval` defaults to 10× `base_interval`. A max below the base is an error.
 */
export const BACKOFF_MAX_PER_BASE = 10;

/**
 * Built-in retry defaults. Two retries on failures that never reached the application
 * (connect failure, refused stream, reset, 502/503/504): Envoy's `connect-failure,refused-stream,
 * reset` plus gateway errors, as Linkerd retries by default. Backoff 25 ms → 250 ms with full
 * jitter (Envoy's base 25 ms, cap 10× base). The budget (20 % of requests + 10/s over 10 s) is
 * Linkerd's and Finagle's: it is what stops a retry storm, not the count.
 */
export const DEFAULT_RETRY: RetryConfig = Object.freeze({
  maxRetries: 2,
  retryOn: Object.freeze(['connect-failure', 'refused-stream', 'reset', 'gateway-error'] as RetryOn[]),
  retriableStatusCodes: Object.freeze([] as number[]),
  retriableHeaders: Object.freeze([] as string[]),
  backoff: Object.freeze({ baseMs: 25, maxMs: 25 * BACKOFF_MAX_PER_BASE }),
  retryAfterMaxMs: 5_000,
  allowNonIdempotent: false,
  budget: Object.freeze({ ratio: 0.2, minPerSecond: 10, windowMs: 10_000 }),
});

const RETRY_ON_LIST = `^\\s*(${RETRY_ON_VALUES.join('|')})(\\s*,\\s*(${RETRY_ON_VALUES.join('|')}))*\\s*$`;
const D = DEFAULT_RETRY;

/** The `retry` section of a service entry. `true` means the defaults. */
export const retrySection = Section(
  Fields(
    {
      maxRetries: Type.Optional(
        Type.Integer({
          minimum: 0,
          maximum: 10,
          default: D.maxRetries,
          description: 'Retries after the first attempt. `0` or `retry: false` turns retrying off.',
          ...envVar(
            'MESH_RETRIES',
            'Retries after the first attempt (`retry.maxRetries`). `0` or `off` turns retrying off.',
            { type: 'integer 0..10 | off', offTurnsSectionOff: true },
          ),
        }),
      ),
      retryOn: Type.Optional(
        Type.Union([Type.Array(OneOf(RETRY_ON_VALUES)), Type.String({ pattern: RETRY_ON_LIST })], {
          default: [...D.retryOn],
          expected: `a list (array or comma-separated string) of ${RETRY_ON_VALUES.join(', ')}`,
          description:
            'Envoy names and rules: `connect-failure` (nothing was sent), `reset` (no answer: the connection was reset, before or after sending, failed, or the per-try timeout or the request’s own `headersTimeout` passed), `refused-stream`, `5xx` (any 500–599, or no answer at all: a connect failure, reset, refused stream or per-try timeout), `gateway-error` (502, 503, 504, or no answer at all, as `5xx`), `retriable-status-codes`, `retriable-headers`. A request already sent is retried only when it is safe to send again (idempotent, body replayable).',
          ...envVar('MESH_RETRY_ON', 'Conditions to retry on (`retry.retryOn`).', {
            type: `comma-separated list of ${RETRY_ON_VALUES.join(', ')}`,
            defaultValue: D.retryOn.join(','),
          }),
        }),
      ),
      retriableStatusCodes: Type.Optional(
        Type.Array(Type.Integer({ minimum: 100, maximum: 599 }), {
          description: 'Statuses retried under `retriable-status-codes` (e.g. `[429]`).',
          ...envVar(
            'MESH_RETRY_STATUS_CODES',
            'Statuses retried under `retriable-status-codes` (`retry.retriableStatusCodes`).',
            { type: 'list of integers 100..599' },
          ),
        }),
      ),
      retriableHeaders: Type.Optional(
        Type.Array(
          Type.String({ pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", expected: 'an HTTP header name' }),
          {
            description:
              'Response headers whose presence makes a response retriable under `retriable-headers`.',
          },
        ),
      ),
      backoff: Type.Optional(
        Fields(
          {
            base: Type.Optional(
              Duration({
                default: D.backoff.baseMs,
                description:
                  'Full-jitter exponential backoff: retry n waits a uniform random time in [0, min(max, base·2ⁿ⁻¹)) (Envoy: 25 ms).',
                ...envVar(
                  'MESH_RETRY_BACKOFF_BASE',
                  'First backoff ceiling; doubles per retry, full jitter (`retry.backoff.base`).',
                  {
                    defaultValue: '25ms',
                  },
                ),
              }),
            ),
            max: Type.Optional(
              Duration({
                default: D.backoff.maxMs,
                description:
                  'Upper bound of a backoff, at least `base`. Unset, it is 10× `base` in force (Envoy’s rule), so 250 ms with the default base.',
                ...envVar('MESH_RETRY_BACKOFF_MAX', 'Largest backoff (`retry.backoff.max`).', {
                  defaultValue: '250ms',
                }),
              }),
            ),
          },
          foreignNames({
            baseInterval: { use: 'base', from: "Envoy's retry_back_off.base_interval" },
            maxInterval: { use: 'max', from: "Envoy's retry_back_off.max_interval" },
          }),
        ),
      ),
      retryAfterMax: Type.Optional(
        Duration({
          default: D.retryAfterMaxMs,
          description:
            'A `Retry-After` (seconds or HTTP date) up to this long replaces the backoff; a longer one stops retrying and returns that response.',
        }),
      ),
      allowNonIdempotent: Type.Optional(
        Type.Boolean({
          default: D.allowNonIdempotent,
          description: 'Retry non-idempotent requests too (RFC 9110 §9.2.2 says a client should not).',
        }),
      ),
      budget: Type.Optional(
        Fields({
          ratio: Type.Optional(
            Ratio({
              default: D.budget.ratio,
              description:
                'Retries (and hedges) may add at most this fraction of the destination’s requests… (Linkerd: 0.2)',
              ...envVar(
                'MESH_RETRY_BUDGET',
                'Retries allowed as a fraction of requests per destination (`retry.budget.ratio`).',
                { type: 'ratio 0..1 or percentage' },
              ),
            }),
          ),
          minPerSecond: Type.Optional(
            Type.Number({
              minimum: 0,
              default: D.budget.minPerSecond,
              description:
                '…plus this many per second on average over `window`, whatever the traffic (Finagle/Linkerd retry budget): a reserve of minPerSecond × window, so a quiet destination may spend it at once (10/s over 10 s: 100 retries).',
              ...envVar(
                'MESH_RETRY_BUDGET_MIN_PER_SECOND',
                'Retries per second always allowed by the budget, on average over its window (`retry.budget.minPerSecond`).',
                { type: 'number ≥ 0' },
              ),
            }),
          ),
          window: Type.Optional(
            Duration({
              min: 1,
              default: D.budget.windowMs,
              description: 'Sliding window of the budget (Linkerd: 10 s).',
            }),
          ),
        }),
      ),
    },
    foreignNames({
      attempts: { use: 'maxRetries', from: "Istio's retries.attempts" },
      numRetries: { use: 'maxRetries', from: "Envoy's retry_policy.num_retries" },
      perTryTimeout: {
        use: "the service's own perTryTimeout, next to retry: it bounds each attempt, retried or not",
        from: "Istio's retries.perTryTimeout and Envoy's retry_policy.per_try_timeout",
      },
      retryBackOff: { use: 'backoff: { base, max }', from: "Envoy's retry_policy.retry_back_off" },
      retryRemoteLocalities: {
        use: 'nothing: every retry may go to any endpoint',
        from: "Istio's retries.retryRemoteLocalities",
      },
    }),
  ),
  { allowTrue: true, description: 'Retries: idempotency-aware, budgeted, with backoff and Retry-After.' },
);

/** The `retry` section as written in a document or in options. */
export type RetryOptions = Static<typeof retrySection>;

const ms = (v: number | string): number => parseDuration(v, '');

/** A validated `retry` section → the patch it contributes; cross-field rules are checked here. */
export function retryPatch(doc: RetryOptions): RetryPatch | false {
  if (doc === false) return false;
  if (doc === true) return {};
  const p: RetryPatch = {};
  if (doc.maxRetries !== undefined) p.maxRetries = doc.maxRetries;
  if (doc.retryOn !== undefined)
    p.retryOn = (
      typeof doc.retryOn === 'string' ? doc.retryOn.split(',').map((s) => s.trim()) : doc.retryOn
    ) as RetryOn[];
  if (doc.retriableStatusCodes !== undefined) p.retriableStatusCodes = doc.retriableStatusCodes;
  if (doc.retriableHeaders !== undefined)
    p.retriableHeaders = doc.retriableHeaders.map((h) => h.toLowerCase());
  if (doc.retryAfterMax !== undefined) p.retryAfterMaxMs = ms(doc.retryAfterMax);
  if (doc.allowNonIdempotent !== undefined) p.allowNonIdempotent = doc.allowNonIdempotent;
  if (doc.backoff !== undefined) {
    const b: { baseMs?: number; maxMs?: number } = {};
    if (doc.backoff.base !== undefined) b.baseMs = ms(doc.backoff.base);
    if (doc.backoff.max !== undefined) b.maxMs = ms(doc.backoff.max);
    p.backoff = b;
  }
  if (doc.budget !== undefined) {
    const b: { ratio?: number; minPerSecond?: number; windowMs?: number } = {};
    if (doc.budget.ratio !== undefined) b.ratio = parseRatio(doc.budget.ratio, '');
    if (doc.budget.minPerSecond !== undefined) b.minPerSecond = doc.budget.minPerSecond;
    if (doc.budget.window !== undefined) b.windowMs = ms(doc.budget.window);
    p.budget = b;
  }
  return p;
}

/**
 * Rules across fields of one `retry` object (checked even when other fields are invalid, so every
 * problem is reported at once): `backoff.max` ≥ `backoff.base`.
 */
export function retryRules(raw: unknown, path: string, issues: Issues): void {
  if (typeof raw !== 'object' || raw === null) return;
  const backoff = (raw as { backoff?: unknown }).backoff;
  if (typeof backoff !== 'object' || backoff === null) return;
  const { base, max } = backoff as { base?: unknown; max?: unknown };
  const b = durationMsOrUndefined(base);
  const m = durationMsOrUndefined(max);
  if (b !== undefined && m !== undefined && m < b)
    issues.add(`${path}.backoff.max`, `a duration ≥ backoff.base (${b}ms)`, max);
}
