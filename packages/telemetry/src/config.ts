import {
  BOOLEAN_NOTATION,
  booleanWord,
  type Env,
  type EnvVarSpec,
  envString,
  Issues,
  issuesError,
  isValidHost,
  OFF_WORDS,
  type Static,
  type TSchema,
  Type,
  validator,
} from '@proxyless/core';

/**
 * OpenTelemetry's advisory bucket boundaries for `http.client.request.duration` (seconds), from
 * the HTTP semantic conventions: https://opentelemetry.io/docs/specs/semconv/http/http-metrics/
 */
export const OTEL_DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
]);

/**
 * The telemetry section of the mesh configuration: one declaration gives the TypeScript type,
 * the validator, the defaults and the environment mapping (`x-env` on each field).
 */
export const telemetrySection = Type.Object(
  {
    accessLog: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'Write one JSON line per request to `stdout`, `stderr` or a file path. Off when unset.',
        'x-env': 'MESH_ACCESS_LOG',
      }),
    ),
    admin: Type.Object(
      {
        port: Type.Optional(
          Type.Integer({
            minimum: 0,
            maximum: 65535,
            description:
              'Serve the admin page and endpoints on this port (0: any free port). Off when unset.',
            'x-env': 'MESH_ADMIN_PORT',
          }),
        ),
        host: Type.String({
          minLength: 1,
          default: '127.0.0.1',
          description: 'Address the admin server binds. Loopback unless set: it shows the whole config.',
          'x-env': 'MESH_ADMIN_HOST',
        }),
        eventHistory: Type.Integer({
          minimum: 1,
          maximum: 10_000,
          default: 256,
          description: 'How many recent events `/events` and the admin page keep.',
          'x-env': 'MESH_ADMIN_EVENTS',
        }),
      },
      { default: {}, additionalProperties: false },
    ),
    metrics: Type.Object(
      {
        enabled: Type.Boolean({
          default: true,
          description: 'Record Prometheus metrics (into the registry given in code, else the global one).',
          'x-env': 'MESH_METRICS',
        }),
        durationBuckets: Type.Array(Type.Number({ exclusiveMinimum: 0 }), {
          minItems: 1,
          default: [...OTEL_DURATION_BUCKETS],
          description: 'Bucket boundaries of the request-duration histograms, in seconds.',
        }),
      },
      { default: {}, additionalProperties: false },
    ),
    tracing: Type.Object(
      {
        enabled: Type.Boolean({
          default: true,
          description:
            'Start spans and propagate `traceparent` through the global OpenTelemetry API (a no-op until an SDK is registered).',
          'x-env': 'MESH_TRACING',
        }),
      },
      { default: {}, additionalProperties: false },
    ),
  },
  { default: {}, additionalProperties: false },
);

/** The telemetry settings, defaults applied. */
export type TelemetryConfig = Static<typeof telemetrySection>;

/** Every field optional, at every depth; arrays may be readonly. */
type SettingsOf<T> = {
  [K in keyof T]?: T[K] extends readonly (infer E)[]
    ? readonly E[]
    : T[K] extends object
      ? SettingsOf<T[K]>
      : T[K];
};

/**
 * The telemetry settings as written in code (`createMesh({ telemetry })`): any field may be left
 * out, at any depth — the environment and the defaults fill it in ({@link resolveTelemetryConfig}).
 * @example
 * const settings: TelemetrySettings = { admin: { port: 0 } };
 */
export type TelemetrySettings = SettingsOf<TelemetryConfig>;

// TypeBox through @proxyless/core, which bundles it: one copy to load, and the validator compiles
// on first use.
const check = validator(telemetrySection);

/** The environment variables the telemetry section reads, for the configuration table. */
export const telemetryEnvVars: readonly EnvVarSpec[] = Object.freeze([
  {
    name: 'MESH_ACCESS_LOG',
    type: '`stdout`, `stderr`, a path, `on` or `off`',
    defaultValue: 'off',
    description:
      'One JSON line per request, with Envoy response flags. `off` (or `none`, `false`, `0`, `no`, `disabled`) for none; `on` (or `true`, `1`, `yes`) for stdout; a file of such a name is `./off`, `./on`.',
  },
  {
    name: 'MESH_ADMIN_PORT',
    type: 'integer 0..65535',
    defaultValue: '—',
    description: 'Serve the admin page and endpoints on this port.',
  },
  {
    name: 'MESH_ADMIN_HOST',
    type: 'host',
    defaultValue: '127.0.0.1',
    description: 'Admin server bind address.',
  },
  {
    name: 'MESH_ADMIN_EVENTS',
    type: 'integer 1..10000',
    defaultValue: '256',
    description: 'Recent events kept for `/events`.',
  },
  { name: 'MESH_METRICS', type: 'boolean', defaultValue: 'true', description: 'Record Prometheus metrics.' },
  {
    name: 'MESH_TRACING',
    type: 'boolean',
    defaultValue: 'true',
    description: 'Spans and trace propagation.',
  },
]);

/**
 * Turn the environment into the section's document shape (raw values; the validator judges
 * them). Blank means unset.
 */
export function telemetryPatchFromEnv(env: Env): Record<string, unknown> {
  const doc: Record<string, Record<string, unknown> | string> = {};
  const accessLog = envString(env, 'MESH_ACCESS_LOG');
  // The words that turn a section off from any variable mean no access log, and the words of a
  // boolean switched on mean the default sink, stdout: neither is a file of that name in the
  // working directory (`./off` and `./true` are).
  if (accessLog !== undefined && !OFF_WORDS.has(accessLog.toLowerCase())) {
    const on = booleanWord(accessLog);
    if (on !== false) doc.accessLog = on === true ? 'stdout' : accessLog;
  }
  const admin: Record<string, unknown> = {};
  const port = envString(env, 'MESH_ADMIN_PORT');
  if (port !== undefined) admin.port = numberOrRaw(port);
  const host = envString(env, 'MESH_ADMIN_HOST');
  if (host !== undefined) admin.host = host;
  const events = envString(env, 'MESH_ADMIN_EVENTS');
  if (events !== undefined) admin.eventHistory = numberOrRaw(events);
  if (Object.keys(admin).length > 0) doc.admin = admin;
  const metrics = envString(env, 'MESH_METRICS');
  if (metrics !== undefined) doc.metrics = { enabled: booleanOrRaw(metrics) };
  const tracing = envString(env, 'MESH_TRACING');
  if (tracing !== undefined) doc.tracing = { enabled: booleanOrRaw(tracing) };
  return doc;
}

/** The variables read with {@link booleanOrRaw}. */
const BOOLEAN_ENV: ReadonlySet<string> = new Set(['MESH_METRICS', 'MESH_TRACING']);

const ENV_OF: Record<string, string> = {
  'telemetry.accessLog': 'MESH_ACCESS_LOG',
  'telemetry.admin.port': 'MESH_ADMIN_PORT',
  'telemetry.admin.host': 'MESH_ADMIN_HOST',
  'telemetry.admin.eventHistory': 'MESH_ADMIN_EVENTS',
  'telemetry.metrics.enabled': 'MESH_METRICS',
  'telemetry.tracing.enabled': 'MESH_TRACING',
};

/**
 * Validate a telemetry document (options merged over the environment) and apply defaults.
 *
 * @throws MeshError `MESH_CONFIG_INVALID` listing every problem by path (or variable name, for
 * values that came from the environment) and quoted value; nothing is applied.
 * @example
 * const config = resolveTelemetryConfig({ admin: { port: 9901 } }, process.env);
 */
export function resolveTelemetryConfig(options: unknown = {}, env: Env = {}): TelemetryConfig {
  const fromEnv = telemetryPatchFromEnv(env);
  const merged = mergeDocs(fromEnv, (options ?? {}) as Record<string, unknown>);
  const doc = withDefaults(telemetrySection, clone(merged));
  // Nothing set: the defaults, valid by construction (config.test.ts), without compiling the
  // validator at start-up.
  if (Object.keys(merged).length === 0) return doc as TelemetryConfig;
  const found = new Issues();
  if (!check.check(doc)) check.validate(doc, 'telemetry', found);
  // What JSON Schema cannot say: the bind address is an IP literal or a host name. Unchecked, a
  // bad one surfaced only when the admin server failed to listen, blamed on the port.
  const host = (doc as { admin?: { host?: unknown } }).admin?.host;
  if (typeof host === 'string' && host !== '' && !isValidHost(host)) {
    found.add('telemetry.admin.host', 'an IP address or a host name', host);
  }
  if (found.ok) return doc as TelemetryConfig;
  throw issuesError(
    'telemetry settings',
    found.list.map((i) => {
      const field = settingName(options, i.field);
      // A value from the environment is quoted as written (`2.0`, not `2`), and what is expected
      // in the variable's own words (`MESH_METRICS=maybe`: a boolean as every variable takes it).
      const fromEnv = field === ENV_OF[i.field];
      const raw = fromEnv ? envString(env, field) : undefined;
      const expected = fromEnv && BOOLEAN_ENV.has(field) ? BOOLEAN_NOTATION : i.expected;
      return { ...i, field, expected, value: raw ?? i.value };
    }),
  );
}

/**
 * The name a setting is reported under: the variable's when its value came from the environment
 * (not from the options document), else the `telemetry.*` path.
 */
export function settingName(options: unknown, path: string): string {
  const env = ENV_OF[path];
  return env !== undefined && lookup(options, path) === undefined ? env : path;
}

/** The schema's `default`s filled in where the document has no value (TypeBox's `Value.Default`). */
function withDefaults(schema: TSchema, value: unknown): unknown {
  const s = schema as { default?: unknown; properties?: Record<string, TSchema> };
  const v = value === undefined && s.default !== undefined ? clone(s.default) : value;
  if (s.properties !== undefined && isRecord(v)) {
    for (const [k, p] of Object.entries(s.properties)) {
      const d = withDefaults(p, v[k]);
      if (d !== undefined) v[k] = d;
    }
  }
  return v;
}

/** A copy of a JSON-like document (plain objects and arrays copied, other values shared). */
function clone(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(clone);
  if (isRecord(v) && Object.getPrototypeOf(v) === Object.prototype) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, clone(x)]));
  }
  return v;
}

function mergeDocs(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isRecord(b) && isRecord(v) && !Array.isArray(v) ? mergeDocs(b, v as Record<string, unknown>) : v;
  }
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The value at a `telemetry.a.b` path of the options document. */
function lookup(doc: unknown, path: string): unknown {
  let cur: unknown = doc;
  for (const part of path.split('.').slice(1)) {
    if (!isRecord(cur)) return undefined;
    cur = cur[part];
  }
  return cur;
}

function numberOrRaw(v: string): number | string {
  // Beyond MAX_SAFE_INTEGER a number is not the one written: kept as the string, which is refused.
  return /^-?\d+(\.\d+)?$/.test(v) && Math.abs(Number(v)) <= Number.MAX_SAFE_INTEGER ? Number(v) : v;
}

function booleanOrRaw(v: string): boolean | string {
  const s = v.toLowerCase();
  if (s === 'true' || s === '1' || s === 'yes' || s === 'on') return true;
  if (s === 'false' || s === '0' || s === 'no' || s === 'off') return false;
  return v;
}
