import {
  type Env,
  type EnvVarSpec,
  envString,
  Issues,
  parseBoolean,
  parseDuration,
  parseInteger,
  parseNumber,
  parseRatio,
  quote,
} from '@proxyless/core';

/** The keys of a service entry this package reads. */
export const RESILIENCE_CONFIG_KEYS: readonly string[] = Object.freeze([
  'timeout',
  'perTryTimeout',
  'retry',
  'hedge',
  'circuitBreaker',
  'concurrencyLimit',
  'rateLimit',
  'faultInjection',
]);

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

/** Resolved hedging policy. */
export interface HedgeConfig {
  /** Fixed delay before each hedge, ms (used when `percentile` is unset or there is no history yet). */
  readonly delayMs: number;
  /** Hedge after this latency percentile (1..99.9) of recent successful calls. */
  readonly percentile: number | undefined;
  /** Extra concurrent attempts at most. */
  readonly maxHedges: number;
}

/** Resolved circuit breaker (error-rate tripping plus Envoy-style thresholds). */
export interface CircuitBreakerConfig {
  /** Open when this percentage of calls in the window failed. */
  readonly errorThresholdPercentage: number;
  /** Calls in the window before the error rate is considered. */
  readonly volumeThreshold: number;
  /** Rolling window, ms. */
  readonly rollingWindowMs: number;
  /** Time open before letting trial calls through, ms. */
  readonly resetTimeoutMs: number;
  /** Trial calls allowed while half-open. */
  readonly halfOpenMaxCalls: number;
  /** Envoy threshold: requests waiting in a concurrency-limit queue. */
  /**
   * Envoy threshold: connections to the destination as a whole. The mesh divides it evenly over
   * the endpoints' pools (at least one each), below `connectionsPerEndpoint`.
   */
  readonly maxConnections: number | undefined;
  readonly maxPendingRequests: number | undefined;
  /** Envoy threshold: concurrent requests to the destination. */
  readonly maxRequests: number;
  /** Envoy threshold: concurrent retries to the destination. */
  readonly maxRetries: number;
}

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

/** Resolved fault injection. */
export interface FaultInjectionConfig {
  readonly delay: { readonly percent: number; readonly durationMs: number } | undefined;
  readonly abort: { readonly percent: number; readonly status: number } | undefined;
  /**
   * When set, faults are only injected for requests carrying this header; its value may be
   * `delay=<duration>` and/or `abort=<status>` (comma-separated) to force a fault.
   */
  readonly header: string | undefined;
}

/** Every resilience setting of one destination, with defaults applied. Disabled policies are `undefined`. */
export interface ResilienceConfig {
  /** Overall deadline of a call, ms; 0 = none. */
  readonly timeoutMs: number;
  /** Deadline of each attempt, ms; 0 = none. */
  readonly perTryTimeoutMs: number;
  readonly retry: RetryConfig | undefined;
  readonly hedge: HedgeConfig | undefined;
  readonly circuitBreaker: CircuitBreakerConfig | undefined;
  readonly concurrencyLimit: ConcurrencyLimitConfig | undefined;
  readonly rateLimit: RateLimitConfig | undefined;
  readonly faultInjection: FaultInjectionConfig | undefined;
}

type DeepPartial<T> = {
  -readonly [K in keyof T]?: T[K] extends object | undefined ? DeepPartialValue<T[K]> : T[K];
};
type DeepPartialValue<T> = T extends readonly unknown[] ? T : T extends object ? DeepPartial<T> : T;

/** Retry settings one layer sets. */
export type RetryPatch = DeepPartial<RetryConfig>;
/** Hedge settings one layer sets. */
export type HedgePatch = DeepPartial<HedgeConfig>;
/** Breaker settings one layer sets. */
export type CircuitBreakerPatch = DeepPartial<CircuitBreakerConfig>;
/** Concurrency-limit settings one layer sets. */
export type ConcurrencyLimitPatch = DeepPartial<ConcurrencyLimitConfig>;
/** Rate-limit settings one layer sets. */
export type RateLimitPatch = DeepPartial<RateLimitConfig>;
/** Fault-injection settings one layer sets. */
export type FaultInjectionPatch = DeepPartial<FaultInjectionConfig>;

/**
 * The resilience settings of one configuration layer (options, environment, config file), already
 * validated. `false` turns a policy off; an object turns it on and sets the fields it names.
 */
export interface ResiliencePatch {
  timeoutMs?: number;
  perTryTimeoutMs?: number;
  retry?: RetryPatch | false;
  hedge?: HedgePatch | false;
  circuitBreaker?: CircuitBreakerPatch | false;
  concurrencyLimit?: ConcurrencyLimitPatch | false;
  rateLimit?: RateLimitPatch | false;
  faultInjection?: FaultInjectionPatch | false;
}

/** Built-in retry defaults. */
export const DEFAULT_RETRY: RetryConfig = Object.freeze({
  maxRetries: 2,
  retryOn: Object.freeze(['connect-failure', 'refused-stream', 'reset', 'gateway-error'] as RetryOn[]),
  retriableStatusCodes: Object.freeze([] as number[]),
  retriableHeaders: Object.freeze([] as string[]),
  backoff: Object.freeze({ baseMs: 25, maxMs: 250 }),
  retryAfterMaxMs: 5_000,
  allowNonIdempotent: false,
  budget: Object.freeze({ ratio: 0.2, minPerSecond: 10, windowMs: 10_000 }),
});

/** Built-in hedge defaults (hedging itself is off unless configured). */
export const DEFAULT_HEDGE: HedgeConfig = Object.freeze({ delayMs: 50, percentile: undefined, maxHedges: 1 });

/** Built-in circuit-breaker defaults. */
export const DEFAULT_CIRCUIT_BREAKER: CircuitBreakerConfig = Object.freeze({
  errorThresholdPercentage: 50,
  volumeThreshold: 20,
  rollingWindowMs: 10_000,
  resetTimeoutMs: 30_000,
  halfOpenMaxCalls: 1,
  maxConnections: undefined,
  maxPendingRequests: undefined,
  maxRequests: 1024,
  maxRetries: 4_294_967_295,
});

/** Built-in concurrency-limit defaults apart from `max`. */
export const DEFAULT_CONCURRENCY_LIMIT: ConcurrencyLimitConfig = Object.freeze({
  max: 100,
  queue: 0,
  queueTimeoutMs: 0,
});

/** Built-in defaults: 15 s overall timeout, retries on, breaker on, everything else off. */
export const DEFAULT_RESILIENCE_CONFIG: ResilienceConfig = Object.freeze({
  timeoutMs: 0,
  perTryTimeoutMs: 0,
  retry: DEFAULT_RETRY,
  hedge: undefined,
  circuitBreaker: DEFAULT_CIRCUIT_BREAKER,
  concurrencyLimit: undefined,
  rateLimit: undefined,
  faultInjection: undefined,
});

// ---------------------------------------------------------------------------------------------
// Parsing a service entry
// ---------------------------------------------------------------------------------------------

const RETRY_KEYS = [
  'maxRetries',
  'retryOn',
  'retriableStatusCodes',
  'retriableHeaders',
  'backoff',
  'retryAfterMax',
  'allowNonIdempotent',
  'budget',
] as const;
const BACKOFF_KEYS = ['base', 'max'] as const;
const BUDGET_KEYS = ['ratio', 'minPerSecond', 'window'] as const;
const HEDGE_KEYS = ['delay', 'maxHedges'] as const;
const BREAKER_KEYS = [
  'errorThresholdPercentage',
  'volumeThreshold',
  'rollingWindow',
  'resetTimeout',
  'halfOpenMaxCalls',
  'maxConnections',
  'maxPendingRequests',
  'maxRequests',
  'maxRetries',
] as const;
const CONCURRENCY_KEYS = ['max', 'queue', 'queueTimeout'] as const;
const RATE_KEYS = ['rps', 'burst'] as const;
const FAULT_KEYS = ['delay', 'abort', 'header'] as const;
const FAULT_DELAY_KEYS = ['percent', 'duration'] as const;
const FAULT_ABORT_KEYS = ['percent', 'status'] as const;

/** A policy value may be `false` (off), `true` (on with defaults) or an object. */
function policyObject(
  value: unknown,
  field: string,
  issues: Issues,
  keys: readonly string[],
): Record<string, unknown> | false | undefined {
  if (value === false) return false;
  if (value === true) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return issues.add(field, 'an object, true or false', value);
  }
  const obj = value as Record<string, unknown>;
  issues.unknownKeys(obj, field, keys);
  return obj;
}

function nested(
  value: unknown,
  field: string,
  issues: Issues,
  keys: readonly string[],
): Record<string, unknown> | undefined {
  const obj = issues.object(value, field);
  if (obj) issues.unknownKeys(obj, field, keys);
  return obj;
}

/** Set `target[key]` from a parser when the source has the field; issues are collected. */
function read<T>(
  src: Record<string, unknown>,
  name: string,
  field: string,
  parse: (v: unknown, f: string) => T | undefined,
  assign: (v: T) => void,
): void {
  if (!(name in src) || src[name] === undefined) return;
  const v = parse(src[name], `${field}.${name}`);
  if (v !== undefined) assign(v);
}

function statusList(issues: Issues, value: unknown, field: string): number[] | undefined {
  const arr = issues.array(value, field);
  if (!arr) return undefined;
  const out: number[] = [];
  arr.forEach((v, i) => {
    const n = issues.integer(v, `${field}[${i}]`, { min: 100, max: 599 });
    if (n !== undefined) out.push(n);
  });
  return out.length === arr.length ? out : undefined;
}

function retryOnList(issues: Issues, value: unknown, field: string): RetryOn[] | undefined {
  const list = typeof value === 'string' ? value.split(',').map((s) => s.trim()) : value;
  const arr = issues.array(list, field);
  if (!arr) return undefined;
  const out: RetryOn[] = [];
  arr.forEach((v, i) => {
    const r = issues.oneOf(v, `${field}[${i}]`, RETRY_ON_VALUES);
    if (r !== undefined) out.push(r);
  });
  return out.length === arr.length ? out : undefined;
}

function parseRetry(value: unknown, field: string, issues: Issues): RetryPatch | false | undefined {
  const obj = policyObject(value, field, issues, RETRY_KEYS);
  if (obj === undefined || obj === false) return obj;
  const p: RetryPatch = {};
  read(
    obj,
    'maxRetries',
    field,
    (v, f) => issues.integer(v, f, { min: 0, max: 10 }),
    (v) => (p.maxRetries = v),
  );
  read(
    obj,
    'retryOn',
    field,
    (v, f) => retryOnList(issues, v, f),
    (v) => (p.retryOn = v),
  );
  read(
    obj,
    'retriableStatusCodes',
    field,
    (v, f) => statusList(issues, v, f),
    (v) => (p.retriableStatusCodes = v),
  );
  read(
    obj,
    'retriableHeaders',
    field,
    (v, f) => issues.stringArray(v, f),
    (v) => (p.retriableHeaders = v.map((h) => h.toLowerCase())),
  );
  read(
    obj,
    'retryAfterMax',
    field,
    (v, f) => issues.duration(v, f),
    (v) => (p.retryAfterMaxMs = v),
  );
  read(
    obj,
    'allowNonIdempotent',
    field,
    (v, f) => issues.boolean(v, f),
    (v) => (p.allowNonIdempotent = v),
  );
  if (obj.backoff !== undefined) {
    const b = nested(obj.backoff, `${field}.backoff`, issues, BACKOFF_KEYS);
    if (b) {
      const bp: { baseMs?: number; maxMs?: number } = {};
      read(
        b,
        'base',
        `${field}.backoff`,
        (v, f) => issues.duration(v, f),
        (v) => (bp.baseMs = v),
      );
      read(
        b,
        'max',
        `${field}.backoff`,
        (v, f) => issues.duration(v, f),
        (v) => (bp.maxMs = v),
      );
      if (bp.baseMs !== undefined && bp.maxMs !== undefined && bp.maxMs < bp.baseMs) {
        issues.add(`${field}.backoff.max`, `a duration ≥ backoff.base (${bp.baseMs}ms)`, b.max);
      }
      p.backoff = bp;
    }
  }
  if (obj.budget !== undefined) {
    const b = nested(obj.budget, `${field}.budget`, issues, BUDGET_KEYS);
    if (b) {
      const bp: { ratio?: number; minPerSecond?: number; windowMs?: number } = {};
      read(
        b,
        'ratio',
        `${field}.budget`,
        (v, f) => issues.ratio(v, f),
        (v) => (bp.ratio = v),
      );
      read(
        b,
        'minPerSecond',
        `${field}.budget`,
        (v, f) => issues.number(v, f, { min: 0 }),
        (v) => (bp.minPerSecond = v),
      );
      read(
        b,
        'window',
        `${field}.budget`,
        (v, f) => issues.duration(v, f, { min: 1 }),
        (v) => (bp.windowMs = v),
      );
      p.budget = bp;
    }
  }
  return p;
}

function parseHedge(value: unknown, field: string, issues: Issues): HedgePatch | false | undefined {
  const obj = policyObject(value, field, issues, HEDGE_KEYS);
  if (obj === undefined || obj === false) return obj;
  const p: HedgePatch = {};
  if (obj.delay !== undefined) {
    const d = obj.delay;
    if (typeof d === 'object' && d !== null && !Array.isArray(d)) {
      const o = d as Record<string, unknown>;
      issues.unknownKeys(o, `${field}.delay`, ['percentile']);
      const pct = issues.number(o.percentile, `${field}.delay.percentile`, { min: 1, max: 99.9 });
      if (pct !== undefined) p.percentile = pct;
    } else {
      const ms = issues.duration(d, `${field}.delay`);
      if (ms !== undefined) {
        p.delayMs = ms;
        p.percentile = undefined;
      }
    }
  }
  read(
    obj,
    'maxHedges',
    field,
    (v, f) => issues.integer(v, f, { min: 1, max: 5 }),
    (v) => (p.maxHedges = v),
  );
  return p;
}

function parseBreaker(
  value: unknown,
  field: string,
  issues: Issues,
): CircuitBreakerPatch | false | undefined {
  const obj = policyObject(value, field, issues, BREAKER_KEYS);
  if (obj === undefined || obj === false) return obj;
  const p: CircuitBreakerPatch = {};
  const int = (min: number) => (v: unknown, f: string) => issues.integer(v, f, { min });
  read(
    obj,
    'errorThresholdPercentage',
    field,
    (v, f) => issues.number(v, f, { min: 1, max: 100 }),
    (v) => (p.errorThresholdPercentage = v),
  );
  read(obj, 'volumeThreshold', field, int(1), (v) => (p.volumeThreshold = v));
  read(
    obj,
    'rollingWindow',
    field,
    (v, f) => issues.duration(v, f, { min: 10 }),
    (v) => (p.rollingWindowMs = v),
  );
  read(
    obj,
    'resetTimeout',
    field,
    (v, f) => issues.duration(v, f, { min: 1 }),
    (v) => (p.resetTimeoutMs = v),
  );
  read(obj, 'halfOpenMaxCalls', field, int(1), (v) => (p.halfOpenMaxCalls = v));
  read(obj, 'maxConnections', field, int(1), (v) => (p.maxConnections = v));
  read(obj, 'maxPendingRequests', field, int(0), (v) => (p.maxPendingRequests = v));
  read(obj, 'maxRequests', field, int(1), (v) => (p.maxRequests = v));
  read(obj, 'maxRetries', field, int(0), (v) => (p.maxRetries = v));
  return p;
}

function parseConcurrency(
  value: unknown,
  field: string,
  issues: Issues,
): ConcurrencyLimitPatch | false | undefined {
  const obj = policyObject(value, field, issues, CONCURRENCY_KEYS);
  if (obj === undefined || obj === false) return obj;
  const p: ConcurrencyLimitPatch = {};
  read(
    obj,
    'max',
    field,
    (v, f) => issues.integer(v, f, { min: 1 }),
    (v) => (p.max = v),
  );
  read(
    obj,
    'queue',
    field,
    (v, f) => issues.integer(v, f, { min: 0 }),
    (v) => (p.queue = v),
  );
  read(
    obj,
    'queueTimeout',
    field,
    (v, f) => issues.duration(v, f),
    (v) => (p.queueTimeoutMs = v),
  );
  return p;
}

function parseRate(value: unknown, field: string, issues: Issues): RateLimitPatch | false | undefined {
  if (value === true) return issues.add(field, 'an object with rps (requests per second), or false', value);
  const obj = policyObject(value, field, issues, RATE_KEYS);
  if (obj === undefined || obj === false) return obj;
  const p: RateLimitPatch = {};
  read(
    obj,
    'rps',
    field,
    (v, f) => issues.number(v, f, { min: 0.001 }),
    (v) => (p.rps = v),
  );
  read(
    obj,
    'burst',
    field,
    (v, f) => issues.integer(v, f, { min: 1 }),
    (v) => (p.burst = v),
  );
  if (p.rps === undefined && !('rps' in obj)) {
    issues.add(`${field}.rps`, 'a number > 0 (requests per second)', undefined);
  }
  return p;
}

function percent(issues: Issues, v: unknown, f: string): number | undefined {
  return issues.number(v, f, { min: 0, max: 100 });
}

function parseFault(value: unknown, field: string, issues: Issues): FaultInjectionPatch | false | undefined {
  const obj = policyObject(value, field, issues, FAULT_KEYS);
  if (obj === undefined || obj === false) return obj;
  const p: FaultInjectionPatch = {};
  if (obj.delay !== undefined) {
    const d = nested(obj.delay, `${field}.delay`, issues, FAULT_DELAY_KEYS);
    if (d) {
      const pct = d.percent === undefined ? 100 : percent(issues, d.percent, `${field}.delay.percent`);
      const dur = issues.duration(d.duration, `${field}.delay.duration`);
      if (pct !== undefined && dur !== undefined) p.delay = { percent: pct, durationMs: dur };
    }
  }
  if (obj.abort !== undefined) {
    const a = nested(obj.abort, `${field}.abort`, issues, FAULT_ABORT_KEYS);
    if (a) {
      const pct = a.percent === undefined ? 100 : percent(issues, a.percent, `${field}.abort.percent`);
      const status =
        a.status === undefined
          ? 503
          : issues.integer(a.status, `${field}.abort.status`, { min: 100, max: 599 });
      if (pct !== undefined && status !== undefined) p.abort = { percent: pct, status };
    }
  }
  if (obj.header !== undefined) {
    const h = issues.string(obj.header, `${field}.header`, {
      pattern: /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/,
      patternText: 'an HTTP header name',
    });
    if (h !== undefined) p.header = h.toLowerCase();
  }
  return p;
}

/**
 * Read the resilience keys of a service entry (or a `defaults` block). Every problem is recorded in
 * `issues` by path (`${path}.retry.maxRetries`), unknown nested keys with a suggestion.
 * @returns the patch, or `undefined` when the entry sets none of {@link RESILIENCE_CONFIG_KEYS}.
 */
export function parseResiliencePatch(
  entry: Record<string, unknown>,
  path: string,
  issues: Issues,
): ResiliencePatch | undefined {
  if (!RESILIENCE_CONFIG_KEYS.some((k) => entry[k] !== undefined)) return undefined;
  const at = (k: string): string => (path === '' ? k : `${path}.${k}`);
  const patch: ResiliencePatch = {};
  if (entry.timeout !== undefined) {
    const v = timeoutValue(issues, entry.timeout, at('timeout'));
    if (v !== undefined) patch.timeoutMs = v;
  }
  if (entry.perTryTimeout !== undefined) {
    const v = timeoutValue(issues, entry.perTryTimeout, at('perTryTimeout'));
    if (v !== undefined) patch.perTryTimeoutMs = v;
  }
  const set = <K extends keyof ResiliencePatch>(key: K, v: ResiliencePatch[K] | undefined): void => {
    if (v !== undefined) patch[key] = v;
  };
  if (entry.retry !== undefined) set('retry', parseRetry(entry.retry, at('retry'), issues));
  if (entry.hedge !== undefined) set('hedge', parseHedge(entry.hedge, at('hedge'), issues));
  if (entry.circuitBreaker !== undefined)
    set('circuitBreaker', parseBreaker(entry.circuitBreaker, at('circuitBreaker'), issues));
  if (entry.concurrencyLimit !== undefined)
    set('concurrencyLimit', parseConcurrency(entry.concurrencyLimit, at('concurrencyLimit'), issues));
  if (entry.rateLimit !== undefined) set('rateLimit', parseRate(entry.rateLimit, at('rateLimit'), issues));
  if (entry.faultInjection !== undefined)
    set('faultInjection', parseFault(entry.faultInjection, at('faultInjection'), issues));
  return patch;
}

/** A timeout: a duration, or `false`/`0`/`"off"` for none. */
function timeoutValue(issues: Issues, value: unknown, field: string): number | undefined {
  if (value === false || value === 'off' || value === 'none') return 0;
  return issues.duration(value, field);
}

// ---------------------------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------------------------

/** Every environment variable this package reads (mesh-wide defaults for all destinations). */
export const resilienceEnvVars: readonly EnvVarSpec[] = Object.freeze([
  {
    name: 'MESH_TIMEOUT',
    type: 'duration | off',
    defaultValue: '15s',
    description: 'Overall deadline of a call, all attempts included. `0` or `off` for none.',
  },
  {
    name: 'MESH_PER_TRY_TIMEOUT',
    type: 'duration | off',
    defaultValue: 'off',
    description: 'Deadline of each attempt; a timed-out attempt may be retried elsewhere.',
  },
  {
    name: 'MESH_RETRIES',
    type: 'integer 0..10',
    defaultValue: '2',
    description: 'Retries after the first attempt (`retry.maxRetries`). `0` turns retrying off.',
  },
  {
    name: 'MESH_RETRY_ON',
    type: 'list',
    defaultValue: 'connect-failure,refused-stream,reset,gateway-error',
    description: `Conditions to retry on (\`retry.retryOn\`): ${RETRY_ON_VALUES.join(', ')}.`,
  },
  {
    name: 'MESH_RETRY_STATUS_CODES',
    type: 'list of integers 100..599',
    defaultValue: '—',
    description: 'Statuses retried under `retriable-status-codes` (`retry.retriableStatusCodes`).',
  },
  {
    name: 'MESH_RETRY_BUDGET',
    type: 'ratio 0..1 or percentage',
    defaultValue: '0.2',
    description: 'Retries allowed as a fraction of requests per destination (`retry.budget.ratio`).',
  },
  {
    name: 'MESH_RETRY_BUDGET_MIN_PER_SECOND',
    type: 'number ≥ 0',
    defaultValue: '10',
    description: 'Retries per second always allowed by the budget (`retry.budget.minPerSecond`).',
  },
  {
    name: 'MESH_RETRY_BACKOFF_BASE',
    type: 'duration',
    defaultValue: '25ms',
    description: 'First backoff ceiling; doubles per retry, full jitter (`retry.backoff.base`).',
  },
  {
    name: 'MESH_RETRY_BACKOFF_MAX',
    type: 'duration',
    defaultValue: '250ms',
    description: 'Largest backoff (`retry.backoff.max`).',
  },
  {
    name: 'MESH_HEDGE_DELAY',
    type: 'duration | pNN | off',
    defaultValue: 'off',
    description:
      'Turns hedging on: send another attempt after this delay, or after the pNN latency (e.g. `p95`).',
  },
  {
    name: 'MESH_CIRCUIT_BREAKER',
    type: 'boolean',
    defaultValue: 'true',
    description: 'Turns the per-destination circuit breaker on or off.',
  },
  {
    name: 'MESH_CIRCUIT_ERROR_THRESHOLD',
    type: 'number 1..100',
    defaultValue: '50',
    description: 'Error percentage that opens the breaker (`circuitBreaker.errorThresholdPercentage`).',
  },
  {
    name: 'MESH_CIRCUIT_RESET_TIMEOUT',
    type: 'duration',
    defaultValue: '30s',
    description: 'Time the breaker stays open before a trial call (`circuitBreaker.resetTimeout`).',
  },
  {
    name: 'MESH_MAX_REQUESTS',
    type: 'integer ≥ 1',
    defaultValue: '1024',
    description:
      'Concurrent requests per destination before `MESH_CIRCUIT_OPEN` (`circuitBreaker.maxRequests`).',
  },
  {
    name: 'MESH_CONCURRENCY_LIMIT',
    type: 'integer ≥ 1 | off',
    defaultValue: 'off',
    description:
      'Concurrent calls per destination (`concurrencyLimit.max`); excess fails with `MESH_CONCURRENCY_LIMIT`.',
  },
  {
    name: 'MESH_RATE_LIMIT',
    type: 'number > 0 | off',
    defaultValue: 'off',
    description:
      'Requests per second per destination (`rateLimit.rps`); excess fails with `MESH_RATE_LIMITED`.',
  },
  {
    name: 'MESH_RATE_LIMIT_BURST',
    type: 'integer ≥ 1',
    defaultValue: 'rps',
    description: 'Token-bucket size of the rate limit (`rateLimit.burst`).',
  },
]);

const OFF = new Set(['off', 'none', 'false', 'disabled']);

/**
 * Resilience defaults from `MESH_*` variables (see {@link resilienceEnvVars}). Blank means unset.
 * @throws MeshError `MESH_CONFIG_INVALID` listing every bad variable (field = variable name, value repeated).
 */
export function resiliencePatchFromEnv(env: Env): ResiliencePatch | undefined {
  const issues = new Issues();
  const patch: ResiliencePatch = {};
  let any = false;
  const get = (name: string): string | undefined => envString(env, name);
  const conv = <T>(name: string, parse: (v: string) => T): T | undefined => {
    const v = get(name);
    if (v === undefined) return undefined;
    any = true;
    return issues.try(() => parse(v));
  };
  const timeout = (name: string) =>
    conv(name, (v) => (OFF.has(v.toLowerCase()) ? 0 : parseDuration(v, name)));
  const t = timeout('MESH_TIMEOUT');
  if (t !== undefined) patch.timeoutMs = t;
  const pt = timeout('MESH_PER_TRY_TIMEOUT');
  if (pt !== undefined) patch.perTryTimeoutMs = pt;

  const retry: RetryPatch = {};
  let retrySet = false;
  const r = conv('MESH_RETRIES', (v) => parseInteger(v, 'MESH_RETRIES', { min: 0, max: 10 }));
  if (r !== undefined) {
    retry.maxRetries = r;
    retrySet = true;
  }
  const on = conv('MESH_RETRY_ON', (v) => {
    const parts = v.split(',').map((s) => s.trim());
    const bad = parts.filter((p) => !(RETRY_ON_VALUES as readonly string[]).includes(p));
    if (bad.length > 0) {
      issues.add(
        'MESH_RETRY_ON',
        `a comma-separated list of ${RETRY_ON_VALUES.join(', ')} (unknown: ${bad.map((b) => quote(b)).join(', ')})`,
        v,
      );
      return undefined;
    }
    return parts as RetryOn[];
  });
  if (on !== undefined) {
    retry.retryOn = on;
    retrySet = true;
  }
  const codes = conv('MESH_RETRY_STATUS_CODES', (v) =>
    v.split(',').map((s) => parseInteger(s.trim(), 'MESH_RETRY_STATUS_CODES', { min: 100, max: 599 })),
  );
  if (codes !== undefined) {
    retry.retriableStatusCodes = codes;
    retrySet = true;
  }
  const budget: { ratio?: number; minPerSecond?: number } = {};
  const ratio = conv('MESH_RETRY_BUDGET', (v) => parseRatio(v, 'MESH_RETRY_BUDGET'));
  if (ratio !== undefined) budget.ratio = ratio;
  const minPs = conv('MESH_RETRY_BUDGET_MIN_PER_SECOND', (v) =>
    parseNumber(v, 'MESH_RETRY_BUDGET_MIN_PER_SECOND', { min: 0 }),
  );
  if (minPs !== undefined) budget.minPerSecond = minPs;
  if (Object.keys(budget).length > 0) {
    retry.budget = budget;
    retrySet = true;
  }
  const backoff: { baseMs?: number; maxMs?: number } = {};
  const bb = conv('MESH_RETRY_BACKOFF_BASE', (v) => parseDuration(v, 'MESH_RETRY_BACKOFF_BASE'));
  if (bb !== undefined) backoff.baseMs = bb;
  const bm = conv('MESH_RETRY_BACKOFF_MAX', (v) => parseDuration(v, 'MESH_RETRY_BACKOFF_MAX'));
  if (bm !== undefined) backoff.maxMs = bm;
  if (Object.keys(backoff).length > 0) {
    retry.backoff = backoff;
    retrySet = true;
  }
  if (retrySet) patch.retry = retry;

  const hedge = conv('MESH_HEDGE_DELAY', (v): HedgePatch | false | undefined => {
    if (OFF.has(v.toLowerCase())) return false;
    const m = /^p(\d+(?:\.\d+)?)$/i.exec(v);
    if (m) {
      const pct = Number(m[1]);
      if (pct < 1 || pct > 99.9) {
        issues.add('MESH_HEDGE_DELAY', 'a duration, pNN (1..99.9) or off', v);
        return undefined;
      }
      return { percentile: pct };
    }
    return { delayMs: parseDuration(v, 'MESH_HEDGE_DELAY'), percentile: undefined };
  });
  if (hedge !== undefined) patch.hedge = hedge;

  const cbOn = conv('MESH_CIRCUIT_BREAKER', (v) => parseBoolean(v, 'MESH_CIRCUIT_BREAKER'));
  const cb: CircuitBreakerPatch = {};
  const thr = conv('MESH_CIRCUIT_ERROR_THRESHOLD', (v) =>
    parseNumber(v, 'MESH_CIRCUIT_ERROR_THRESHOLD', { min: 1, max: 100 }),
  );
  if (thr !== undefined) cb.errorThresholdPercentage = thr;
  const rt = conv('MESH_CIRCUIT_RESET_TIMEOUT', (v) =>
    parseDuration(v, 'MESH_CIRCUIT_RESET_TIMEOUT', { min: 1 }),
  );
  if (rt !== undefined) cb.resetTimeoutMs = rt;
  const mr = conv('MESH_MAX_REQUESTS', (v) => parseInteger(v, 'MESH_MAX_REQUESTS', { min: 1 }));
  if (mr !== undefined) cb.maxRequests = mr;
  if (cbOn === false) patch.circuitBreaker = false;
  else if (cbOn === true || Object.keys(cb).length > 0) patch.circuitBreaker = cb;

  const cl = conv('MESH_CONCURRENCY_LIMIT', (v): ConcurrencyLimitPatch | false =>
    OFF.has(v.toLowerCase()) ? false : { max: parseInteger(v, 'MESH_CONCURRENCY_LIMIT', { min: 1 }) },
  );
  if (cl !== undefined) patch.concurrencyLimit = cl;

  const rl = conv('MESH_RATE_LIMIT', (v): RateLimitPatch | false =>
    OFF.has(v.toLowerCase()) ? false : { rps: parseNumber(v, 'MESH_RATE_LIMIT', { min: 0.001 }) },
  );
  const burst = conv('MESH_RATE_LIMIT_BURST', (v) => parseInteger(v, 'MESH_RATE_LIMIT_BURST', { min: 1 }));
  if (rl !== undefined) patch.rateLimit = rl === false ? false : burst !== undefined ? { ...rl, burst } : rl;
  else if (burst !== undefined) patch.rateLimit = { burst };

  issues.throwIfAny('environment');
  return any ? patch : undefined;
}

// ---------------------------------------------------------------------------------------------
// Resolving layers
// ---------------------------------------------------------------------------------------------

function merge<T extends object>(base: T, patch: object): T {
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined && !(k === 'percentile')) continue;
    const cur = out[k];
    if (
      v !== null &&
      typeof v === 'object' &&
      !Array.isArray(v) &&
      cur !== null &&
      typeof cur === 'object' &&
      !Array.isArray(cur)
    ) {
      out[k] = merge(cur as object, v as object);
    } else {
      out[k] = v;
    }
  }
  return Object.freeze(out) as T;
}

function layer<T extends object>(
  current: T | undefined,
  patch: object | false | undefined,
  defaults: T | undefined,
): T | undefined {
  if (patch === undefined) return current;
  if (patch === false) return undefined;
  const base = current ?? defaults;
  return base === undefined ? (Object.freeze({ ...patch }) as T) : merge(base, patch);
}

/**
 * Resolve the layers of one destination, earliest first: built-in defaults, then each patch,
 * field by field (a later layer wins). A policy switched off by `false` can be switched on again
 * by a later object, starting from the built-in defaults.
 */
export function resolveResilienceConfig(...patches: ResiliencePatch[]): ResilienceConfig {
  let c: {
    -readonly [K in keyof ResilienceConfig]: ResilienceConfig[K];
  } = { ...DEFAULT_RESILIENCE_CONFIG };
  for (const p of patches) {
    if (p.timeoutMs !== undefined) c.timeoutMs = p.timeoutMs;
    if (p.perTryTimeoutMs !== undefined) c.perTryTimeoutMs = p.perTryTimeoutMs;
    c.retry = layer(c.retry, p.retry, DEFAULT_RETRY);
    c.hedge = layer(c.hedge, p.hedge, DEFAULT_HEDGE);
    c.circuitBreaker = layer(c.circuitBreaker, p.circuitBreaker, DEFAULT_CIRCUIT_BREAKER);
    c.concurrencyLimit = layer(c.concurrencyLimit, p.concurrencyLimit, DEFAULT_CONCURRENCY_LIMIT);
    c.rateLimit = layer(c.rateLimit, p.rateLimit, undefined);
    c.faultInjection = layer(c.faultInjection, p.faultInjection, {
      delay: undefined,
      abort: undefined,
      header: undefined,
    });
  }
  if (c.rateLimit !== undefined) {
    const rps = (c.rateLimit as Partial<RateLimitConfig>).rps;
    if (rps === undefined) c.rateLimit = undefined;
    else c.rateLimit = Object.freeze({ rps, burst: c.rateLimit.burst ?? Math.max(1, Math.ceil(rps)) });
  }
  c = { ...c };
  return Object.freeze(c);
}
