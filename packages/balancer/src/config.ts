import {
  type Env,
  type EnvVarSpec,
  envBoolean,
  envDuration,
  envEnum,
  envInteger,
  envNumber,
  envString,
  Issues,
} from '@proxyless/core';

/** Top-level keys of a service entry owned by this package. */
export const BALANCER_CONFIG_KEYS: readonly string[] = Object.freeze([
  'loadBalancer',
  'outlierDetection',
  'healthCheck',
]);

/**
 * Load-balancing policies. Names match Consul's `service-resolver` `LoadBalancer.Policy` values
 * where they overlap (`round_robin`, `random`, `least_request`, `ring_hash`, `maglev`).
 */
export type LoadBalancerPolicy =
  | 'round_robin'
  | 'random'
  | 'weighted_round_robin'
  | 'least_request'
  | 'peak_ewma'
  | 'ring_hash'
  | 'maglev';

/** Every policy name, in documentation order. */
export const LOAD_BALANCER_POLICIES: readonly LoadBalancerPolicy[] = Object.freeze([
  'round_robin',
  'random',
  'weighted_round_robin',
  'least_request',
  'peak_ewma',
  'ring_hash',
  'maglev',
]);

/**
 * Where `ring_hash` and `maglev` take the request's hash key from when the call carries no
 * `hashKey` attribute: a request header, a cookie, or the caller's source address.
 */
export type HashOn = { readonly header: string } | { readonly cookie: string } | 'source';

/** Slow start: a new endpoint's weight ramps up over `window` (Envoy semantics). */
export interface SlowStartConfig {
  /** Ramp-up window in milliseconds. */
  readonly window: number;
  /** Curve exponent: weight × (t / window)^(1 / aggression). 1 is linear. @defaultValue 1 */
  readonly aggression: number;
  /** Lower bound of the ramp, percent of the full weight. @defaultValue 10 */
  readonly minWeightPercent: number;
}

/** Resolved `loadBalancer` settings. */
export interface LoadBalancerConfig {
  /** @defaultValue 'round_robin' */
  readonly policy: LoadBalancerPolicy;
  /** Candidates compared by `least_request` and `peak_ewma`. @defaultValue 2 */
  readonly choiceCount: number;
  /** `peak_ewma` decay time, ms. @defaultValue 10000 */
  readonly decayTime: number;
  /** `peak_ewma` latency assumed for endpoints never measured, ms. @defaultValue 30 */
  readonly defaultRtt: number;
  /** `ring_hash` minimum ring size. @defaultValue 1024 */
  readonly minRingSize: number;
  /** `ring_hash` maximum ring size. @defaultValue 8388608 */
  readonly maxRingSize: number;
  /** `maglev` lookup table size (a prime). @defaultValue 65537 */
  readonly tableSize: number;
  /** Hash key source for `ring_hash`/`maglev` when the call has no `hashKey` attribute. */
  readonly hashOn?: HashOn;
  /** The caller's zone; same-zone endpoints are preferred when set. */
  readonly zone?: string;
  /** Minimum percentage of healthy endpoints in the local zone to keep traffic local. @defaultValue 70 */
  readonly localityMinHealthyPercent: number;
  /** Below this percentage of usable endpoints, balance over all of them. @defaultValue 50 */
  readonly panicThreshold: number;
  /** Ramp-up of new endpoints; off when absent. */
  readonly slowStart?: SlowStartConfig;
}

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

/** Resolved active HTTP health check settings. */
export interface HealthCheckConfig {
  /** Request path, e.g. `/healthz`. */
  readonly path: string;
  /** @defaultValue 10000 */
  readonly interval: number;
  /** @defaultValue 1000 */
  readonly timeout: number;
  /** Consecutive passes to mark an unhealthy endpoint healthy. @defaultValue 2 */
  readonly healthyThreshold: number;
  /** Consecutive failures to mark a healthy endpoint unhealthy. @defaultValue 3 */
  readonly unhealthyThreshold: number;
  /** Random extra delay added to each interval, ms. @defaultValue 0 */
  readonly jitter: number;
}

/** Fully resolved balancer configuration (defaults applied). Plain JSON data. */
export interface BalancerConfig {
  readonly loadBalancer: LoadBalancerConfig;
  readonly outlierDetection: OutlierDetectionConfig;
  /** Active health checks; off when absent. */
  readonly healthCheck?: HealthCheckConfig;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** `loadBalancer` settings from one layer. */
export type LoadBalancerPatch = Partial<Mutable<Omit<LoadBalancerConfig, 'slowStart'>>> & {
  slowStart?: Partial<Mutable<SlowStartConfig>>;
};

/** `outlierDetection` settings from one layer. */
export type OutlierDetectionPatch = Partial<
  Mutable<Omit<OutlierDetectionConfig, 'successRate' | 'failurePercentage'>>
> & {
  successRate?: Partial<Mutable<SuccessRateConfig>>;
  failurePercentage?: Partial<Mutable<FailurePercentageConfig>>;
};

/** A partial balancer configuration from one layer (all fields optional). */
export interface BalancerPatch {
  loadBalancer?: LoadBalancerPatch;
  outlierDetection?: OutlierDetectionPatch;
  /** `false` turns off a health check an earlier layer configured. */
  healthCheck?: Partial<Mutable<HealthCheckConfig>> | false;
}

/** The defaults, before any layer. */
export const DEFAULT_BALANCER_CONFIG: BalancerConfig = Object.freeze({
  loadBalancer: Object.freeze({
    policy: 'round_robin',
    choiceCount: 2,
    decayTime: 10_000,
    defaultRtt: 30,
    minRingSize: 1024,
    maxRingSize: 8_388_608,
    tableSize: 65_537,
    localityMinHealthyPercent: 70,
    panicThreshold: 50,
  }) as LoadBalancerConfig,
  outlierDetection: Object.freeze({
    enabled: true,
    interval: 10_000,
    baseEjectionTime: 30_000,
    maxEjectionTime: 300_000,
    maxEjectionPercent: 10,
    consecutive5xx: 5,
    enforcingConsecutive5xx: 100,
    consecutiveGatewayFailure: 5,
    enforcingConsecutiveGatewayFailure: 100,
    consecutiveLocalOriginFailure: 5,
    enforcingConsecutiveLocalOriginFailure: 100,
    successRate: Object.freeze({ minimumHosts: 5, requestVolume: 100, stdevFactor: 1.9, enforcing: 100 }),
    failurePercentage: Object.freeze({ threshold: 85, minimumHosts: 5, requestVolume: 50, enforcing: 0 }),
  }) as OutlierDetectionConfig,
});

const DEFAULT_SLOW_START: SlowStartConfig = { window: 30_000, aggression: 1, minWeightPercent: 10 };
const DEFAULT_HEALTH_CHECK: Omit<HealthCheckConfig, 'path'> = {
  interval: 10_000,
  timeout: 1_000,
  healthyThreshold: 2,
  unhealthyThreshold: 3,
  jitter: 0,
};

const LB_KEYS = [
  'policy',
  'choiceCount',
  'decayTime',
  'defaultRtt',
  'minRingSize',
  'maxRingSize',
  'tableSize',
  'hashOn',
  'zone',
  'localityMinHealthyPercent',
  'panicThreshold',
  'slowStart',
] as const;
const SLOW_START_KEYS = ['window', 'aggression', 'minWeightPercent'] as const;
const OD_KEYS = [
  'enabled',
  'interval',
  'baseEjectionTime',
  'maxEjectionTime',
  'maxEjectionPercent',
  'consecutive5xx',
  'enforcingConsecutive5xx',
  'consecutiveGatewayFailure',
  'enforcingConsecutiveGatewayFailure',
  'consecutiveLocalOriginFailure',
  'enforcingConsecutiveLocalOriginFailure',
  'successRate',
  'failurePercentage',
] as const;
const SR_KEYS = ['minimumHosts', 'requestVolume', 'stdevFactor', 'enforcing'] as const;
const FP_KEYS = ['threshold', 'minimumHosts', 'requestVolume', 'enforcing'] as const;
const HC_KEYS = ['path', 'interval', 'timeout', 'healthyThreshold', 'unhealthyThreshold', 'jitter'] as const;

const PERCENT = { min: 0, max: 100 };
const isPrime = (n: number): boolean => {
  if (n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
};

/** Copy defined values only, so absent fields do not override earlier layers. */
function put<T extends object, K extends keyof T>(target: T, key: K, value: T[K] | undefined): void {
  if (value !== undefined) target[key] = value;
}

function parseHashOn(value: unknown, field: string, issues: Issues): HashOn | undefined {
  if (value === 'source') return 'source';
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const o = value as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 1 && keys[0] === 'header') {
      const h = issues.string(o.header, `${field}.header`);
      return h === undefined ? undefined : { header: h.toLowerCase() };
    }
    if (keys.length === 1 && keys[0] === 'cookie') {
      const c = issues.string(o.cookie, `${field}.cookie`);
      return c === undefined ? undefined : { cookie: c };
    }
  }
  return issues.add(field, `{ header: name }, { cookie: name } or "source"`, value);
}

function parseLoadBalancer(value: unknown, field: string, issues: Issues): LoadBalancerPatch | undefined {
  const o = issues.object(value, field);
  if (!o) return undefined;
  issues.unknownKeys(o, field, LB_KEYS);
  const p: LoadBalancerPatch = {};
  if (o.policy !== undefined)
    put(p, 'policy', issues.oneOf(o.policy, `${field}.policy`, LOAD_BALANCER_POLICIES));
  if (o.choiceCount !== undefined)
    put(p, 'choiceCount', issues.integer(o.choiceCount, `${field}.choiceCount`, { min: 2, max: 100 }));
  if (o.decayTime !== undefined)
    put(p, 'decayTime', issues.duration(o.decayTime, `${field}.decayTime`, { min: 1 }));
  if (o.defaultRtt !== undefined)
    put(p, 'defaultRtt', issues.duration(o.defaultRtt, `${field}.defaultRtt`, { min: 0 }));
  if (o.minRingSize !== undefined)
    put(p, 'minRingSize', issues.integer(o.minRingSize, `${field}.minRingSize`, { min: 1, max: 8_388_608 }));
  if (o.maxRingSize !== undefined)
    put(p, 'maxRingSize', issues.integer(o.maxRingSize, `${field}.maxRingSize`, { min: 1, max: 8_388_608 }));
  if (o.tableSize !== undefined) {
    const t = issues.integer(o.tableSize, `${field}.tableSize`, { min: 3, max: 5_000_011 });
    if (t !== undefined && !isPrime(t))
      issues.add(`${field}.tableSize`, 'a prime number (e.g. 65537)', o.tableSize);
    else put(p, 'tableSize', t);
  }
  if (o.hashOn !== undefined) put(p, 'hashOn', parseHashOn(o.hashOn, `${field}.hashOn`, issues));
  if (o.zone !== undefined) put(p, 'zone', issues.string(o.zone, `${field}.zone`));
  if (o.localityMinHealthyPercent !== undefined)
    put(
      p,
      'localityMinHealthyPercent',
      issues.number(o.localityMinHealthyPercent, `${field}.localityMinHealthyPercent`, PERCENT),
    );
  if (o.panicThreshold !== undefined)
    put(p, 'panicThreshold', issues.number(o.panicThreshold, `${field}.panicThreshold`, PERCENT));
  if (o.slowStart !== undefined) {
    const sf = `${field}.slowStart`;
    const s = issues.object(o.slowStart, sf);
    if (s) {
      issues.unknownKeys(s, sf, SLOW_START_KEYS);
      const ss: Partial<Mutable<SlowStartConfig>> = {};
      if (s.window !== undefined) put(ss, 'window', issues.duration(s.window, `${sf}.window`, { min: 1 }));
      if (s.aggression !== undefined)
        put(ss, 'aggression', issues.number(s.aggression, `${sf}.aggression`, { min: 0.01, max: 100 }));
      if (s.minWeightPercent !== undefined)
        put(ss, 'minWeightPercent', issues.number(s.minWeightPercent, `${sf}.minWeightPercent`, PERCENT));
      p.slowStart = ss;
    }
  }
  return p;
}

function parseNested<T extends object>(
  value: unknown,
  field: string,
  issues: Issues,
  keys: readonly string[],
  read: (o: Record<string, unknown>, out: T) => void,
): T | undefined {
  const o = issues.object(value, field);
  if (!o) return undefined;
  issues.unknownKeys(o, field, keys);
  const out = {} as T;
  read(o, out);
  return out;
}

function parseOutlier(value: unknown, field: string, issues: Issues): OutlierDetectionPatch | undefined {
  return parseNested<OutlierDetectionPatch>(value, field, issues, OD_KEYS, (o, p) => {
    const f = (k: string): string => `${field}.${k}`;
    if (o.enabled !== undefined) put(p, 'enabled', issues.boolean(o.enabled, f('enabled')));
    for (const k of ['interval', 'baseEjectionTime', 'maxEjectionTime'] as const) {
      if (o[k] !== undefined) put(p, k, issues.duration(o[k], f(k), { min: 1 }));
    }
    for (const k of [
      'maxEjectionPercent',
      'enforcingConsecutive5xx',
      'enforcingConsecutiveGatewayFailure',
      'enforcingConsecutiveLocalOriginFailure',
    ] as const) {
      if (o[k] !== undefined) put(p, k, issues.number(o[k], f(k), PERCENT));
    }
    for (const k of [
      'consecutive5xx',
      'consecutiveGatewayFailure',
      'consecutiveLocalOriginFailure',
    ] as const) {
      if (o[k] !== undefined) put(p, k, issues.integer(o[k], f(k), { min: 0, max: 1_000_000 }));
    }
    if (o.successRate !== undefined) {
      const sr = parseNested<Partial<Mutable<SuccessRateConfig>>>(
        o.successRate,
        f('successRate'),
        issues,
        SR_KEYS,
        (s, out) => {
          const g = (k: string): string => `${field}.successRate.${k}`;
          if (s.minimumHosts !== undefined)
            put(out, 'minimumHosts', issues.integer(s.minimumHosts, g('minimumHosts'), { min: 0 }));
          if (s.requestVolume !== undefined)
            put(out, 'requestVolume', issues.integer(s.requestVolume, g('requestVolume'), { min: 1 }));
          if (s.stdevFactor !== undefined)
            put(out, 'stdevFactor', issues.number(s.stdevFactor, g('stdevFactor'), { min: 0, max: 100 }));
          if (s.enforcing !== undefined)
            put(out, 'enforcing', issues.number(s.enforcing, g('enforcing'), PERCENT));
        },
      );
      put(p, 'successRate', sr);
    }
    if (o.failurePercentage !== undefined) {
      const fp = parseNested<Partial<Mutable<FailurePercentageConfig>>>(
        o.failurePercentage,
        f('failurePercentage'),
        issues,
        FP_KEYS,
        (s, out) => {
          const g = (k: string): string => `${field}.failurePercentage.${k}`;
          if (s.threshold !== undefined)
            put(out, 'threshold', issues.number(s.threshold, g('threshold'), PERCENT));
          if (s.minimumHosts !== undefined)
            put(out, 'minimumHosts', issues.integer(s.minimumHosts, g('minimumHosts'), { min: 0 }));
          if (s.requestVolume !== undefined)
            put(out, 'requestVolume', issues.integer(s.requestVolume, g('requestVolume'), { min: 1 }));
          if (s.enforcing !== undefined)
            put(out, 'enforcing', issues.number(s.enforcing, g('enforcing'), PERCENT));
        },
      );
      put(p, 'failurePercentage', fp);
    }
  });
}

function parseHealthCheck(
  value: unknown,
  field: string,
  issues: Issues,
): Partial<Mutable<HealthCheckConfig>> | undefined {
  return parseNested<Partial<Mutable<HealthCheckConfig>>>(value, field, issues, HC_KEYS, (o, p) => {
    const f = (k: string): string => `${field}.${k}`;
    if (o.path !== undefined)
      put(
        p,
        'path',
        issues.string(o.path, f('path'), { pattern: /^\/\S*$/, patternText: 'a path starting with "/"' }),
      );
    if (o.interval !== undefined) put(p, 'interval', issues.duration(o.interval, f('interval'), { min: 1 }));
    if (o.timeout !== undefined) put(p, 'timeout', issues.duration(o.timeout, f('timeout'), { min: 1 }));
    if (o.jitter !== undefined) put(p, 'jitter', issues.duration(o.jitter, f('jitter'), { min: 0 }));
    for (const k of ['healthyThreshold', 'unhealthyThreshold'] as const) {
      if (o[k] !== undefined) put(p, k, issues.integer(o[k], f(k), { min: 1, max: 1000 }));
    }
  });
}

/**
 * Parse the balancer keys of one service entry (`loadBalancer`, `outlierDetection`,
 * `healthCheck`). Problems are recorded in `issues` under `${path}.loadBalancer.policy` etc.
 * @returns the patch, or `undefined` when none of the keys is present.
 */
export function parseBalancerPatch(
  entry: Record<string, unknown>,
  path: string,
  issues: Issues,
): BalancerPatch | undefined {
  const at = (k: string): string => (path === '' ? k : `${path}.${k}`);
  const { loadBalancer, outlierDetection, healthCheck } = entry;
  if (loadBalancer === undefined && outlierDetection === undefined && healthCheck === undefined)
    return undefined;
  const patch: BalancerPatch = {};
  if (loadBalancer !== undefined)
    put(patch, 'loadBalancer', parseLoadBalancer(loadBalancer, at('loadBalancer'), issues));
  if (outlierDetection !== undefined && outlierDetection !== false)
    put(patch, 'outlierDetection', parseOutlier(outlierDetection, at('outlierDetection'), issues));
  if (healthCheck === false) patch.healthCheck = false;
  else if (healthCheck !== undefined)
    put(patch, 'healthCheck', parseHealthCheck(healthCheck, at('healthCheck'), issues));
  // `outlierDetection: false` is shorthand for `{ enabled: false }`.
  if (outlierDetection === false) patch.outlierDetection = { enabled: false };
  return patch;
}

/** Every environment variable this package reads. Blank values mean unset. */
export const balancerEnvVars: readonly EnvVarSpec[] = Object.freeze([
  {
    name: 'MESH_LB_POLICY',
    type: LOAD_BALANCER_POLICIES.join(' | '),
    defaultValue: 'round_robin',
    description: 'Load-balancing policy for every service without its own `loadBalancer.policy`.',
  },
  {
    name: 'MESH_ZONE',
    type: 'string',
    defaultValue: '—',
    description:
      'Zone of this process; endpoints in the same zone are preferred while enough of them are healthy.',
  },
  {
    name: 'MESH_LB_CHOICE_COUNT',
    type: 'integer 2..100',
    defaultValue: '2',
    description: 'Candidates compared per pick by `least_request` and `peak_ewma`.',
  },
  {
    name: 'MESH_LB_DECAY_TIME',
    type: 'duration',
    defaultValue: '10s',
    description: '`peak_ewma` latency decay time.',
  },
  {
    name: 'MESH_LB_PANIC_THRESHOLD',
    type: 'number 0..100 (percent)',
    defaultValue: '50',
    description: 'Below this percentage of usable endpoints, balance over all endpoints (panic mode).',
  },
  {
    name: 'MESH_LB_LOCALITY_MIN_HEALTHY_PERCENT',
    type: 'number 0..100 (percent)',
    defaultValue: '70',
    description: 'Keep traffic in the local zone while at least this percentage of its endpoints is usable.',
  },
  {
    name: 'MESH_LB_SLOW_START_WINDOW',
    type: 'duration',
    defaultValue: '— (off)',
    description: 'Ramp new endpoints up over this window (weighted policies).',
  },
  {
    name: 'MESH_OUTLIER_ENABLED',
    type: 'boolean',
    defaultValue: 'true',
    description: 'Passive outlier detection (ejection of failing endpoints).',
  },
  {
    name: 'MESH_OUTLIER_CONSECUTIVE_5XX',
    type: 'integer ≥ 0',
    defaultValue: '5',
    description: 'Consecutive 5xx answers (or connection failures) that eject an endpoint; 0 disables.',
  },
  {
    name: 'MESH_OUTLIER_INTERVAL',
    type: 'duration',
    defaultValue: '10s',
    description: 'Outlier detection sweep interval (success-rate and failure-percentage checks).',
  },
  {
    name: 'MESH_OUTLIER_BASE_EJECTION_TIME',
    type: 'duration',
    defaultValue: '30s',
    description: 'Ejection time = this × the number of times the endpoint was ejected, capped.',
  },
  {
    name: 'MESH_OUTLIER_MAX_EJECTION_TIME',
    type: 'duration',
    defaultValue: '300s',
    description: 'Cap on one ejection.',
  },
  {
    name: 'MESH_OUTLIER_MAX_EJECTION_PERCENT',
    type: 'number 0..100 (percent)',
    defaultValue: '10',
    description: 'Never eject more than this percentage of endpoints (at least one may always be ejected).',
  },
]);

/**
 * Balancer defaults from environment variables (mesh-wide). Blank values are unset.
 * @throws MeshError `MESH_CONFIG_INVALID` naming every bad variable and its value.
 * @returns `undefined` when no variable is set.
 */
export function balancerPatchFromEnv(env: Env): BalancerPatch | undefined {
  const issues = new Issues();
  const lb: LoadBalancerPatch = {};
  const od: OutlierDetectionPatch = {};
  put(
    lb,
    'policy',
    issues.try(() => envEnum(env, 'MESH_LB_POLICY', LOAD_BALANCER_POLICIES)),
  );
  put(lb, 'zone', envString(env, 'MESH_ZONE'));
  put(
    lb,
    'choiceCount',
    issues.try(() => envInteger(env, 'MESH_LB_CHOICE_COUNT', { min: 2, max: 100 })),
  );
  put(
    lb,
    'decayTime',
    issues.try(() => envDuration(env, 'MESH_LB_DECAY_TIME', { min: 1 })),
  );
  put(
    lb,
    'panicThreshold',
    issues.try(() => envNumber(env, 'MESH_LB_PANIC_THRESHOLD', PERCENT)),
  );
  put(
    lb,
    'localityMinHealthyPercent',
    issues.try(() => envNumber(env, 'MESH_LB_LOCALITY_MIN_HEALTHY_PERCENT', PERCENT)),
  );
  const window = issues.try(() => envDuration(env, 'MESH_LB_SLOW_START_WINDOW', { min: 1 }));
  if (window !== undefined) lb.slowStart = { window };
  put(
    od,
    'enabled',
    issues.try(() => envBoolean(env, 'MESH_OUTLIER_ENABLED')),
  );
  put(
    od,
    'consecutive5xx',
    issues.try(() => envInteger(env, 'MESH_OUTLIER_CONSECUTIVE_5XX', { min: 0 })),
  );
  put(
    od,
    'interval',
    issues.try(() => envDuration(env, 'MESH_OUTLIER_INTERVAL', { min: 1 })),
  );
  put(
    od,
    'baseEjectionTime',
    issues.try(() => envDuration(env, 'MESH_OUTLIER_BASE_EJECTION_TIME', { min: 1 })),
  );
  put(
    od,
    'maxEjectionTime',
    issues.try(() => envDuration(env, 'MESH_OUTLIER_MAX_EJECTION_TIME', { min: 1 })),
  );
  put(
    od,
    'maxEjectionPercent',
    issues.try(() => envNumber(env, 'MESH_OUTLIER_MAX_EJECTION_PERCENT', PERCENT)),
  );
  issues.throwIfAny('environment');
  const patch: BalancerPatch = {};
  if (Object.keys(lb).length > 0) patch.loadBalancer = lb;
  if (Object.keys(od).length > 0) patch.outlierDetection = od;
  return patch.loadBalancer || patch.outlierDetection ? patch : undefined;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Merge `patch` into `base` field by field; nested plain objects merge deeply, except `hashOn`. */
function deepMerge(base: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) continue;
    const prev = out[k];
    out[k] = k !== 'hashOn' && isPlainObject(v) && isPlainObject(prev) ? deepMerge(prev, v) : v;
  }
  return out;
}

/**
 * Resolve layers into one configuration: defaults first, then each patch in order (later wins,
 * field by field, deep for nested objects).
 * @throws MeshError `MESH_CONFIG_INVALID` when the merged result is inconsistent
 * (e.g. `healthCheck` without `path`, `minRingSize` > `maxRingSize`).
 */
export function resolveBalancerConfig(...patches: BalancerPatch[]): BalancerConfig {
  let lb: Record<string, unknown> = { ...DEFAULT_BALANCER_CONFIG.loadBalancer };
  let od: Record<string, unknown> = { ...DEFAULT_BALANCER_CONFIG.outlierDetection };
  let hc: Record<string, unknown> | undefined;
  for (const p of patches) {
    if (p.loadBalancer) {
      const { slowStart, ...rest } = p.loadBalancer;
      lb = deepMerge(lb, rest as Record<string, unknown>);
      if (slowStart) {
        const prev = (lb.slowStart as Record<string, unknown> | undefined) ?? { ...DEFAULT_SLOW_START };
        lb.slowStart = deepMerge(prev, slowStart as Record<string, unknown>);
      }
    }
    if (p.outlierDetection) od = deepMerge(od, p.outlierDetection as Record<string, unknown>);
    if (p.healthCheck === false) hc = undefined;
    else if (p.healthCheck)
      hc = deepMerge(hc ?? { ...DEFAULT_HEALTH_CHECK }, p.healthCheck as Record<string, unknown>);
  }
  const issues = new Issues();
  if ((lb.minRingSize as number) > (lb.maxRingSize as number)) {
    issues.add(
      'loadBalancer.minRingSize',
      `at most loadBalancer.maxRingSize (${lb.maxRingSize})`,
      lb.minRingSize,
    );
  }
  if ((od.maxEjectionTime as number) < (od.baseEjectionTime as number)) {
    issues.add(
      'outlierDetection.maxEjectionTime',
      `at least outlierDetection.baseEjectionTime (${od.baseEjectionTime}ms)`,
      od.maxEjectionTime,
    );
  }
  if (hc && typeof hc.path !== 'string') issues.add('healthCheck.path', 'a path starting with "/"', hc.path);
  if (hc && (hc.timeout as number) > (hc.interval as number)) {
    issues.add('healthCheck.timeout', `at most healthCheck.interval (${hc.interval}ms)`, hc.timeout);
  }
  issues.throwIfAny('balancer configuration');
  const config: BalancerConfig = {
    loadBalancer: lb as unknown as LoadBalancerConfig,
    outlierDetection: od as unknown as OutlierDetectionConfig,
    ...(hc ? { healthCheck: hc as unknown as HealthCheckConfig } : {}),
  };
  return config;
}
