import {
  Duration,
  Fields,
  foreignNames,
  omitKeys,
  parseDuration,
  Section,
  type Static,
  Type,
} from '@proxyless/core';

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

/** Health-check settings from one layer; `false` turns off a check an earlier layer set. */
export type HealthCheckPatch =
  | Partial<{ -readonly [K in keyof HealthCheckConfig]: HealthCheckConfig[K] }>
  | false;

/** Defaults apart from `path` (which has none): every 10 s, 1 s timeout, 2 up / 3 down (Envoy-like). */
export const DEFAULT_HEALTH_CHECK: Omit<HealthCheckConfig, 'path'> = Object.freeze({
  interval: 10_000,
  timeout: 1_000,
  healthyThreshold: 2,
  unhealthyThreshold: 3,
  jitter: 0,
});

const D = DEFAULT_HEALTH_CHECK;

/** The `healthCheck` section. `true` is not allowed: a check needs its `path`. Off by default. */
export const healthCheckSection = Section(
  Fields(
    {
      path: Type.Optional(
        Type.String({
          pattern: '^/\\S*$',
          expected: 'a path starting with "/"',
          description: 'Request path, e.g. `/healthz`. Required (in some layer).',
        }),
      ),
      interval: Type.Optional(Duration({ min: 1, default: D.interval, description: 'Time between probes.' })),
      timeout: Type.Optional(
        Duration({
          min: 1,
          default: D.timeout,
          description: 'Probe timeout; at most `interval` (unset, it is the shorter of 1 s and `interval`).',
        }),
      ),
      healthyThreshold: Type.Optional(
        Type.Integer({
          minimum: 1,
          maximum: 1000,
          default: D.healthyThreshold,
          description: 'Passes to mark healthy.',
        }),
      ),
      unhealthyThreshold: Type.Optional(
        Type.Integer({
          minimum: 1,
          maximum: 1000,
          default: D.unhealthyThreshold,
          description: 'Failures to mark unhealthy.',
        }),
      ),
      jitter: Type.Optional(Duration({ default: D.jitter, description: 'Random extra delay per interval.' })),
    },
    foreignNames({
      httpHealthCheck: {
        use: 'path: the check is an HTTP GET of it',
        from: "Envoy's health_check.http_health_check",
      },
    }),
  ),
  { allowTrue: false, description: 'Active HTTP health checks. Off unless set.' },
);

/** The `healthCheck` section as written. */
export type HealthCheckOptions = Static<typeof healthCheckSection>;

/** A validated `healthCheck` section → its patch. */
export function healthCheckPatch(doc: HealthCheckOptions): HealthCheckPatch {
  if (doc === false) return false;
  const { interval, timeout, jitter } = doc;
  const p: Exclude<HealthCheckPatch, false> = omitKeys(doc, ['interval', 'timeout', 'jitter']);
  if (interval !== undefined) p.interval = parseDuration(interval, '');
  if (timeout !== undefined) p.timeout = parseDuration(timeout, '');
  if (jitter !== undefined) p.jitter = parseDuration(jitter, '');
  return p;
}
