import {
  Duration,
  envVar,
  Fields,
  omitKeys,
  parseDuration,
  Section,
  type Static,
  Type,
} from '@proxyless/core';

/** Success-rate ejection settings (Envoy `success_rate_*`). */
export interface SuccessRateConfig {
  /** @defaultValue 5 */
  readonly minimumHosts: number;
  /** @defaultValue 100 */
  readonly requestVolume: number;
  /** @defaultValue 1.9 */
  readonly stdevFactor: number;
  /** Percent chance an eligible ejection is enforced. @defaultValue 100 */
  readonly enforcing: number;
}

/** Failure-percentage ejection settings (Envoy `failure_percentage_*`). */
export interface FailurePercentageConfig {
  /** @defaultValue 85 */
  readonly threshold: number;
  /** @defaultValue 5 */
  readonly minimumHosts: number;
  /** @defaultValue 50 */
  readonly requestVolume: number;
  /** Percent chance an eligible ejection is enforced. @defaultValue 0 (as in Envoy) */
  readonly enforcing: number;
}

/** Resolved `outlierDetection` settings (Envoy field names and defaults). */
export interface OutlierDetectionConfig {
  /** @defaultValue true */
  readonly enabled: boolean;
  /** Sweep interval, ms. @defaultValue 10000 */
  readonly interval: number;
  /** @defaultValue 30000 */
  readonly baseEjectionTime: number;
  /** @defaultValue 300000 */
  readonly maxEjectionTime: number;
  /** @defaultValue 10 */
  readonly maxEjectionPercent: number;
  /**
   * An active health check that passes ends the endpoint's ejection (Envoy's
   * `successful_active_health_check_uneject_host`). Only with `healthCheck`. @defaultValue true
   */
  readonly successfulActiveHealthCheckUnejectHost: boolean;
  /** Consecutive 5xx (and local-origin failures) before ejection; 0 disables. @defaultValue 5 */
  readonly consecutive5xx: number;
  /** @defaultValue 100 */
  readonly enforcingConsecutive5xx: number;
  /** Consecutive 502/503/504 (and local-origin failures); 0 disables. @defaultValue 5 */
  readonly consecutiveGatewayFailure: number;
  /** @defaultValue 100 */
  readonly enforcingConsecutiveGatewayFailure: number;
  /** Consecutive connect/reset/timeout failures; 0 disables. @defaultValue 5 */
  readonly consecutiveLocalOriginFailure: number;
  /** @defaultValue 100 */
  readonly enforcingConsecutiveLocalOriginFailure: number;
  readonly successRate: SuccessRateConfig;
  readonly failurePercentage: FailurePercentageConfig;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * `outlierDetection` settings from one layer (an object: a section `false` is the patch `false`,
 * see {@link outlierDetectionPatch}).
 */
export type OutlierDetectionPatch = Partial<
  Mutable<Omit<OutlierDetectionConfig, 'successRate' | 'failurePercentage'>>
> & {
  successRate?: Partial<Mutable<SuccessRateConfig>>;
  failurePercentage?: Partial<Mutable<FailurePercentageConfig>>;
};

/** Envoy's outlier-detection defaults, field for field (on, as Linkerd's failure accrual is). */
export const DEFAULT_OUTLIER_DETECTION: OutlierDetectionConfig = Object.freeze({
  enabled: true,
  interval: 10_000,
  baseEjectionTime: 30_000,
  maxEjectionTime: 300_000,
  maxEjectionPercent: 10,
  successfulActiveHealthCheckUnejectHost: true,
  consecutive5xx: 5,
  enforcingConsecutive5xx: 100,
  consecutiveGatewayFailure: 5,
  enforcingConsecutiveGatewayFailure: 100,
  consecutiveLocalOriginFailure: 5,
  enforcingConsecutiveLocalOriginFailure: 100,
  successRate: Object.freeze({ minimumHosts: 5, requestVolume: 100, stdevFactor: 1.9, enforcing: 100 }),
  failurePercentage: Object.freeze({ threshold: 85, minimumHosts: 5, requestVolume: 50, enforcing: 0 }),
});

const D = DEFAULT_OUTLIER_DETECTION;
const percent = (def: number, description: string, more: object = {}) =>
  Type.Optional(Type.Number({ minimum: 0, maximum: 100, default: def, description, ...more }));
const count = (def: number, description: string, more: object = {}) =>
  Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, default: def, description, ...more }));
const dur = (def: number, description: string, more: object = {}) =>
  Type.Optional(Duration({ min: 1, default: def, description, ...more }));

/**
 * The `outlierDetection` section. `true` means Envoy's defaults (over the fields lower layers set);
 * `false` turns it off and discards what lower layers set in it, as every section's `false` does.
 */
export const outlierDetectionSection = Section(
  Fields({
    enabled: Type.Optional(
      Type.Boolean({
        default: true,
        description: 'Passive outlier detection.',
        ...envVar('MESH_OUTLIER_ENABLED', 'Passive outlier detection (ejection of failing endpoints).', {
          type: 'boolean',
        }),
      }),
    ),
    interval: dur(D.interval, 'Sweep interval (success-rate and failure-percentage checks).', {
      ...envVar(
        'MESH_OUTLIER_INTERVAL',
        'Outlier detection sweep interval (success-rate and failure-percentage checks).',
        {
          type: 'duration ≥ 1ms',
        },
      ),
    }),
    baseEjectionTime: dur(D.baseEjectionTime, 'Ejection time = this × times ejected, capped.', {
      ...envVar(
        'MESH_OUTLIER_BASE_EJECTION_TIME',
        'Ejection time = this × the number of times the endpoint was ejected, capped.',
        {
          type: 'duration ≥ 1ms',
        },
      ),
    }),
    maxEjectionTime: dur(
      D.maxEjectionTime,
      'Cap on one ejection, at least baseEjectionTime. Unset, the larger of 300 s and baseEjectionTime (Envoy’s rule).',
      {
        ...envVar(
          'MESH_OUTLIER_MAX_EJECTION_TIME',
          'Cap on one ejection, at least `baseEjectionTime`; unset, the larger of 300 s and `baseEjectionTime`.',
          {
            type: 'duration ≥ 1ms',
            defaultValue: '300s',
          },
        ),
      },
    ),
    maxEjectionPercent: percent(
      D.maxEjectionPercent,
      'Never eject more than this % of endpoints (one may always be).',
      {
        ...envVar(
          'MESH_OUTLIER_MAX_EJECTION_PERCENT',
          'Never eject more than this percentage of endpoints (at least one may always be ejected).',
          { type: 'number 0..100 (percent)' },
        ),
      },
    ),
    successfulActiveHealthCheckUnejectHost: Type.Optional(
      Type.Boolean({
        default: D.successfulActiveHealthCheckUnejectHost,
        description:
          'With `healthCheck`: a check the endpoint passes ends its ejection, as Envoy’s `successful_active_health_check_uneject_host` (default true). So a backend restarted in place, ejected for the resets of its requests in flight, is back at its first passing check rather than after `baseEjectionTime`.',
      }),
    ),
    consecutive5xx: count(
      D.consecutive5xx,
      'Consecutive 5xx (and local-origin failures) before ejection; 0 disables.',
      {
        ...envVar(
          'MESH_OUTLIER_CONSECUTIVE_5XX',
          'Consecutive 5xx answers (or connection failures) that eject an endpoint; 0 disables.',
          {
            type: 'integer 0..1000000',
          },
        ),
      },
    ),
    enforcingConsecutive5xx: percent(
      D.enforcingConsecutive5xx,
      'Percent chance a consecutive-5xx ejection is enforced.',
    ),
    consecutiveGatewayFailure: count(
      D.consecutiveGatewayFailure,
      'Consecutive 502/503/504 before ejection; 0 disables.',
    ),
    enforcingConsecutiveGatewayFailure: percent(
      D.enforcingConsecutiveGatewayFailure,
      'Percent (Envoy’s default is 0; here gateway failures eject by default).',
    ),
    consecutiveLocalOriginFailure: count(
      D.consecutiveLocalOriginFailure,
      'Consecutive connect/reset/timeout failures; 0 disables.',
    ),
    enforcingConsecutiveLocalOriginFailure: percent(
      D.enforcingConsecutiveLocalOriginFailure,
      'Percent chance a local-origin ejection is enforced.',
    ),
    successRate: Type.Optional(
      Fields({
        minimumHosts: Type.Optional(
          Type.Integer({
            minimum: 0,
            default: D.successRate.minimumHosts,
            description: 'Hosts with enough volume needed.',
          }),
        ),
        requestVolume: Type.Optional(
          Type.Integer({
            minimum: 1,
            default: D.successRate.requestVolume,
            description: 'Requests in the interval for a host to count.',
          }),
        ),
        stdevFactor: Type.Optional(
          Type.Number({
            minimum: 0,
            maximum: 100,
            default: D.successRate.stdevFactor,
            description: 'Eject below mean − factor × stdev (Envoy’s 1900 / 1000).',
          }),
        ),
        enforcing: percent(D.successRate.enforcing, 'Percent chance an ejection is enforced.'),
      }),
    ),
    failurePercentage: Type.Optional(
      Fields({
        threshold: percent(D.failurePercentage.threshold, 'Eject above this failure percentage.'),
        minimumHosts: Type.Optional(
          Type.Integer({
            minimum: 0,
            default: D.failurePercentage.minimumHosts,
            description: 'Hosts with enough volume needed.',
          }),
        ),
        requestVolume: Type.Optional(
          Type.Integer({
            minimum: 1,
            default: D.failurePercentage.requestVolume,
            description: 'Requests in the interval for a host to count.',
          }),
        ),
        enforcing: percent(
          D.failurePercentage.enforcing,
          'Percent; set it to enable the detector (Envoy: 0, off).',
        ),
      }),
    ),
  }),
  { allowTrue: true, description: 'Passive outlier detection (Envoy semantics). On by default.' },
);

/** The `outlierDetection` section as written. */
export type OutlierDetectionOptions = Static<typeof outlierDetectionSection>;

/**
 * A validated `outlierDetection` section → its patch. `false` stays `false`, as the resilience
 * sections' does: not `{ enabled: false }`, which keeps the fields of the layers below (what
 * `MESH_OUTLIER_ENABLED=false` writes), while a section `false` discards them, so a higher layer
 * that turns detection back on starts from the built-in defaults.
 */
export function outlierDetectionPatch(doc: OutlierDetectionOptions): OutlierDetectionPatch | false {
  if (doc === false) return false;
  if (doc === true) return { enabled: true };
  const { interval, baseEjectionTime, maxEjectionTime } = doc;
  // An object configures the section and turns it on (as every section does), even over a `false`
  // of a lower layer; `enabled: false` in it still turns it off.
  const p: OutlierDetectionPatch = {
    enabled: true,
    ...omitKeys(doc, ['interval', 'baseEjectionTime', 'maxEjectionTime']),
  };
  if (interval !== undefined) p.interval = parseDuration(interval, '');
  if (baseEjectionTime !== undefined) p.baseEjectionTime = parseDuration(baseEjectionTime, '');
  if (maxEjectionTime !== undefined) p.maxEjectionTime = parseDuration(maxEjectionTime, '');
  return p;
}
