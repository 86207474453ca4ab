import {
  Duration,
  envVar,
  Fields,
  foreignNames,
  parseDuration,
  Section,
  type Static,
  Type,
} from '@proxyless/core';
import type { DeepPartial } from './util.js';

/** Resolved concurrency limit. */
export interface ConcurrencyLimitConfig {
  readonly max: number;
  /** Requests that may wait for a slot. */
  readonly queue: number;
  /** Longest wait in the queue, ms (0 = until the deadline). */
  readonly queueTimeoutMs: number;
}

/** Resolved token-bucket rate limit. */
export interface RateLimitConfig {
  readonly rps: number;
  readonly burst: number;
}

/** Concurrency-limit settings one layer sets. */
export type ConcurrencyLimitPatch = DeepPartial<ConcurrencyLimitConfig>;
/** Rate-limit settings one layer sets. */
export type RateLimitPatch = DeepPartial<RateLimitConfig>;

/**
 * Built-in concurrency-limit defaults (the limit itself is off unless configured): 100 calls, no
 * queue (fail fast rather than hide overload in latency), a queued call waits until its deadline.
 */
export const DEFAULT_CONCURRENCY_LIMIT: ConcurrencyLimitConfig = Object.freeze({
  max: 100,
  queue: 0,
  queueTimeoutMs: 0,
});

/** The `concurrencyLimit` section. `true` means the defaults. */
export const concurrencyLimitSection = Section(
  Fields({
    max: Type.Optional(
      Type.Integer({
        minimum: 1,
        default: DEFAULT_CONCURRENCY_LIMIT.max,
        description: 'Concurrent calls; excess fails with `MESH_CONCURRENCY_LIMIT` (or waits in the queue).',
        ...envVar(
          'MESH_CONCURRENCY_LIMIT',
          'Concurrent calls per destination (`concurrencyLimit.max`); excess fails with `MESH_CONCURRENCY_LIMIT`.',
          { type: 'integer ≥ 1 | off', defaultValue: 'off', offTurnsSectionOff: true },
        ),
      }),
    ),
    queue: Type.Optional(
      Type.Integer({
        minimum: 0,
        default: DEFAULT_CONCURRENCY_LIMIT.queue,
        description: 'Calls that may wait for a slot.',
      }),
    ),
    queueTimeout: Type.Optional(
      Duration({
        default: DEFAULT_CONCURRENCY_LIMIT.queueTimeoutMs,
        description: 'Longest wait in the queue; 0 = until the deadline.',
      }),
    ),
  }),
  { allowTrue: true, description: 'Concurrency limit per destination. Off unless set.' },
);

/** The `rateLimit` section. `true` is not allowed: a rate has no sensible default. */
export const rateLimitSection = Section(
  Fields(
    {
      rps: Type.Optional(
        Type.Number({
          minimum: 0.001,
          description:
            'Requests per second; excess fails with `MESH_RATE_LIMITED`. Required (in some layer).',
          ...envVar(
            'MESH_RATE_LIMIT',
            'Requests per second per destination (`rateLimit.rps`); excess fails with `MESH_RATE_LIMITED`.',
            { type: 'number ≥ 0.001 | off', defaultValue: 'off', offTurnsSectionOff: true },
          ),
        }),
      ),
      burst: Type.Optional(
        Type.Integer({
          minimum: 1,
          description: 'Token-bucket size; default: rps rounded up.',
          ...envVar('MESH_RATE_LIMIT_BURST', 'Token-bucket size of the rate limit (`rateLimit.burst`).', {
            type: 'integer ≥ 1',
            defaultValue: 'rps',
          }),
        }),
      ),
    },
    foreignNames({
      tokensPerFill: {
        use: 'rps (tokensPerFill divided by fillInterval in seconds)',
        from: "Envoy's local rate limit token_bucket.tokens_per_fill",
      },
      fillInterval: {
        use: 'rps (tokensPerFill divided by fillInterval in seconds)',
        from: "Envoy's local rate limit token_bucket.fill_interval",
      },
      maxTokens: { use: 'burst', from: "Envoy's local rate limit token_bucket.max_tokens" },
    }),
  ),
  { allowTrue: false, description: 'Token-bucket rate limit per destination. Off unless set.' },
);

/** The `concurrencyLimit` section as written. */
export type ConcurrencyLimitOptions = Static<typeof concurrencyLimitSection>;
/** The `rateLimit` section as written. */
export type RateLimitOptions = Static<typeof rateLimitSection>;

/** A validated `concurrencyLimit` section → its patch. */
export function concurrencyLimitPatch(doc: ConcurrencyLimitOptions): ConcurrencyLimitPatch | false {
  if (doc === false) return false;
  if (doc === true) return {};
  const { queueTimeout, ...rest } = doc;
  return queueTimeout === undefined
    ? { ...rest }
    : { ...rest, queueTimeoutMs: parseDuration(queueTimeout, '') };
}

/** A validated `rateLimit` section → its patch. */
export function rateLimitPatch(doc: RateLimitOptions): RateLimitPatch | false {
  return doc === false ? false : { ...doc };
}
