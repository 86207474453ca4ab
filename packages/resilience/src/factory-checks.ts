/**
 * The settings a policy factory is given directly (`createRetryFilter({ … })`, a policy used
 * alone), checked against the same ranges as the config sections declare, so that a bad value is
 * an error naming the field and value there too, never a spin or a silent no-op.
 */
import { Issues } from '@proxyless/core';
import { sectionShape, unknownPatchKeys } from './patch-shape.js';
import { RETRY_ON_VALUES } from './sections/retry.js';

type Section = Parameters<typeof sectionShape>[0];

/**
 * The keys of a factory's settings that are no field of its section (at any depth), and `extra`
 * options it takes besides: a key written in the config document's shape (`backoff.base`,
 * `resetTimeout`) would otherwise be ignored silently, its field left at the default.
 *
 * @throws MeshError `MESH_CONFIG_INVALID` naming each such key.
 */
export function checkSettingKeys(what: string, config: unknown, section: Section): void {
  const issues = new Issues();
  unknownPatchKeys(config, issues, '', sectionShape(section));
  issues.throwIfAny(`${what}: invalid settings`);
}

type Check = readonly [field: string, value: unknown, ok: boolean, expected: string];

/** @throws MeshError `MESH_CONFIG_INVALID` listing every failed check, by field and value. */
function checkAll(what: string, checks: readonly Check[]): void {
  const issues = new Issues();
  for (const [field, value, ok, expected] of checks) if (!ok) issues.add(field, expected, value);
  issues.throwIfAny(what);
}

const isInt = (v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): boolean =>
  Number.isInteger(v) && (v as number) >= min && (v as number) <= max;
const optional = (v: unknown, ok: (v: unknown) => boolean): boolean => v === undefined || ok(v);

/** `createRateLimitFilter`'s `rps` (≥ 0.001, finite) and `burst` (an integer ≥ 1). */
export function checkRateSettings(config: { rps: unknown; burst?: unknown }): void {
  checkSettingKeys('createRateLimitFilter', config, 'rateLimit');
  checkAll('createRateLimitFilter', [
    [
      'rps',
      config.rps,
      typeof config.rps === 'number' && Number.isFinite(config.rps) && config.rps >= 0.001,
      'a number of requests per second ≥ 0.001',
    ],
    ['burst', config.burst, optional(config.burst, (v) => isInt(v, 1)), 'an integer ≥ 1'],
  ]);
}

/** `createConcurrencyLimitFilter`'s `max` (≥ 1), `queue` (≥ 0) and `queueTimeoutMs` (≥ 0). */
export function checkConcurrencySettings(config: {
  max: unknown;
  queue?: unknown;
  queueTimeoutMs?: unknown;
}): void {
  checkSettingKeys('createConcurrencyLimitFilter', config, 'concurrencyLimit');
  checkAll('createConcurrencyLimitFilter', [
    ['max', config.max, isInt(config.max, 1), 'an integer ≥ 1'],
    ['queue', config.queue, optional(config.queue, (v) => isInt(v, 0)), 'an integer ≥ 0'],
    [
      'queueTimeoutMs',
      config.queueTimeoutMs,
      optional(config.queueTimeoutMs, (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0),
      'a number of milliseconds ≥ 0',
    ],
  ]);
}

/**
 * `createRetryFilter`'s keys, `maxRetries` (an integer 0..10), `retryOn` (known conditions) and
 * `backoff` (`baseMs` and `maxMs`, numbers of ms ≥ 0).
 */
export function checkRetrySettings(config: {
  maxRetries?: unknown;
  retryOn?: unknown;
  backoff?: { baseMs?: unknown; maxMs?: unknown } | undefined;
}): void {
  checkSettingKeys('createRetryFilter', config, 'retry');
  const known = new Set<unknown>(RETRY_ON_VALUES);
  const ms = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && v >= 0;
  checkAll('createRetryFilter', [
    [
      'backoff.baseMs',
      config.backoff?.baseMs,
      optional(config.backoff?.baseMs, ms),
      'a number of milliseconds ≥ 0',
    ],
    [
      'backoff.maxMs',
      config.backoff?.maxMs,
      optional(config.backoff?.maxMs, ms),
      'a number of milliseconds ≥ 0',
    ],
    [
      'maxRetries',
      config.maxRetries,
      optional(config.maxRetries, (v) => isInt(v, 0, 10)),
      'an integer 0..10',
    ],
    [
      'retryOn',
      config.retryOn,
      optional(config.retryOn, (v) => Array.isArray(v) && v.every((x) => known.has(x))),
      `a list of ${RETRY_ON_VALUES.join(', ')}`,
    ],
  ]);
}

/**
 * A timeout factory's milliseconds (`createDeadlineFilter`'s `timeoutMs`,
 * `createPerTryTimeoutFilter`'s `perTryTimeoutMs`): a finite number ≥ 0, where 0 is off. A string
 * (`'1s'`, the document's spelling), a negative number or NaN would otherwise mean no timeout at
 * all, silently.
 */
export function checkTimeoutMs(what: string, field: string, value: unknown): void {
  checkAll(what, [
    [
      field,
      value,
      typeof value === 'number' && Number.isFinite(value) && value >= 0,
      'a number of milliseconds ≥ 0 (0 is off)',
    ],
  ]);
}

const num = (v: unknown, min: number, max = Number.POSITIVE_INFINITY): boolean =>
  typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max;

/**
 * `createHedgeFilter`'s `delayMs` (ms ≥ 0), `percentile` (1..99.9) and `maxHedges` (an integer
 * 1..5), the hedge section's ranges: `maxHedges: 99` would send 100 attempts, `'x'` never stop.
 */
export function checkHedgeSettings(config: {
  delayMs?: unknown;
  percentile?: unknown;
  maxHedges?: unknown;
}): void {
  checkAll('createHedgeFilter', [
    ['delayMs', config.delayMs, optional(config.delayMs, (v) => num(v, 0)), 'a number of milliseconds ≥ 0'],
    [
      'percentile',
      config.percentile,
      optional(config.percentile, (v) => num(v, 1, 99.9)),
      'a number 1..99.9',
    ],
    ['maxHedges', config.maxHedges, optional(config.maxHedges, (v) => isInt(v, 1, 5)), 'an integer 1..5'],
  ]);
}

/**
 * A circuit breaker's settings (`createCircuitBreakerFilter`, `DestinationBreaker`), the section's
 * ranges: a `volumeThreshold` of 0 or `'x'` would open it on the first failure, a negative
 * `resetTimeoutMs` never hold it open.
 */
export function checkBreakerSettings(config: {
  errorThresholdPercentage?: unknown;
  volumeThreshold?: unknown;
  rollingWindowMs?: unknown;
  resetTimeoutMs?: unknown;
  halfOpenMaxCalls?: unknown;
  maxConnections?: unknown;
  maxPendingRequests?: unknown;
  maxRequests?: unknown;
  maxRetries?: unknown;
}): void {
  const int = (field: keyof typeof config, min: number): Check => [
    field,
    config[field],
    optional(config[field], (v) => isInt(v, min)),
    `an integer ≥ ${min}`,
  ];
  checkAll('circuit breaker', [
    [
      'errorThresholdPercentage',
      config.errorThresholdPercentage,
      optional(config.errorThresholdPercentage, (v) => num(v, 1, 100)),
      'a number 1..100',
    ],
    int('volumeThreshold', 1),
    [
      'rollingWindowMs',
      config.rollingWindowMs,
      optional(config.rollingWindowMs, (v) => num(v, 10)),
      'a number of milliseconds ≥ 10',
    ],
    [
      'resetTimeoutMs',
      config.resetTimeoutMs,
      optional(config.resetTimeoutMs, (v) => num(v, 1)),
      'a number of milliseconds ≥ 1',
    ],
    int('halfOpenMaxCalls', 1),
    int('maxConnections', 1),
    int('maxPendingRequests', 0),
    int('maxRequests', 1),
    int('maxRetries', 0),
  ]);
}
