import {
  type Clock,
  closestName,
  type Env,
  type EnvVarSpec,
  editDistance,
  envBoolean,
  envDuration,
  envEnum,
  envInteger,
  envString,
  type Issues,
  LOG_LEVELS,
  type Logger,
  type LogLevel,
  quote,
  type Random,
  shownValue,
} from '@proxyless/core';
import { ENDPOINTS_PREFIX } from '@proxyless/discovery';
import type { Registry } from 'prom-client';
import type { MeshOptions } from './api.js';

/** Variables the mesh package itself reads. */
/** The most `connectionsPerEndpoint` takes: Istio's `maxConnections` default, 2³²−1 (no bound). */
const MAX_CONNECTIONS = 4_294_967_295;

export const meshEnvVars: readonly EnvVarSpec[] = Object.freeze([
  {
    name: 'MESH_SERVICE_NAME',
    type: 'string',
    defaultValue: '`OTEL_SERVICE_NAME`, else `unknown_service`',
    description: 'Name of the running service (used for registration, telemetry and logs).',
  },
  {
    name: 'MESH_CONFIG_FILE',
    type: 'path',
    defaultValue: '—',
    description: 'JSON config document (services, endpoints, per-service policy); watched and reloaded.',
  },
  {
    name: 'MESH_REGISTRY',
    type: 'one of `static`, `env`, `file`, `consul`, `etcd`, `dns`',
    defaultValue: '`consul` if `CONSUL_HTTP_ADDR` is set, else none',
    description: 'The shared registry to discover services in (the embedded ones are always on).',
  },
  {
    name: 'MESH_CONNECTIONS_PER_ENDPOINT',
    type: 'integer 1..4294967295',
    defaultValue: '1024',
    description:
      'Most connections open at once to each endpoint (Envoy’s default `max_connections`; a service’s `circuitBreaker.maxConnections` shares replace the default, and are capped by this variable when it is set); requests beyond them wait in the endpoint’s pool for one to come free. A long-lived response (an event stream, a long poll, a download) holds its connection until it ends; 4294967295 (2³²−1, Istio’s default) is no bound, a connection per request in flight, as undici’s own pools.',
  },
  {
    name: 'MESH_PASSTHROUGH',
    type: 'boolean',
    defaultValue: 'true',
    description:
      'Send requests to hosts that are not mesh services straight through; `false` makes them `MESH_UNKNOWN_SERVICE`.',
  },
  {
    name: 'MESH_HOST_HEADER',
    type: 'one of `logical`, `endpoint`',
    defaultValue: '`logical`',
    description:
      "Outgoing `Host` header: the logical name the caller used, or the endpoint's `address:port`.",
  },
  {
    name: 'MESH_RESOLVE_TIMEOUT',
    type: 'duration',
    defaultValue: '5s',
    description: 'How long a request waits for the first answer from the registry for a new service.',
  },
  {
    name: 'MESH_LOG_LEVEL',
    type: 'one of `debug`, `info`, `warn`, `error`, `silent`',
    defaultValue: '`silent` (no logger given)',
    description: 'With no logger passed to `createMesh`, log JSON lines at this level to stderr.',
  },
]);

export type RegistryKind = 'static' | 'env' | 'file' | 'consul' | 'etcd' | 'dns';
export const REGISTRY_KINDS: readonly RegistryKind[] = ['static', 'env', 'file', 'consul', 'etcd', 'dns'];

/** The mesh's own settings from the environment. */
export interface MeshEnvSettings {
  serviceName: string | undefined;
  configFile: string | undefined;
  registry: RegistryKind | undefined;
  connectionsPerEndpoint: number | undefined;
  passthrough: boolean | undefined;
  hostHeader: 'logical' | 'endpoint' | undefined;
  resolveTimeoutMs: number | undefined;
  logLevel: LogLevel | undefined;
}

/**
 * Read the mesh's own variables, collecting every problem into `issues`.
 * Blank means unset; unset means default; invalid is an issue naming the variable and value.
 */
export function readMeshEnv(env: Env, issues: Issues): MeshEnvSettings {
  return {
    serviceName: envString(env, 'MESH_SERVICE_NAME') ?? envString(env, 'OTEL_SERVICE_NAME'),
    configFile: envString(env, 'MESH_CONFIG_FILE'),
    registry: issues.try(() => envEnum(env, 'MESH_REGISTRY', REGISTRY_KINDS)),
    connectionsPerEndpoint: issues.try(() =>
      envInteger(env, 'MESH_CONNECTIONS_PER_ENDPOINT', { min: 1, max: MAX_CONNECTIONS }),
    ),
    passthrough: issues.try(() => envBoolean(env, 'MESH_PASSTHROUGH')),
    hostHeader: issues.try(() => envEnum(env, 'MESH_HOST_HEADER', ['logical', 'endpoint'] as const)),
    resolveTimeoutMs: issues.try(() => envDuration(env, 'MESH_RESOLVE_TIMEOUT', { min: 1, max: 600_000 })),
    logLevel: issues.try(() => envEnum(env, 'MESH_LOG_LEVEL', LOG_LEVELS)),
  };
}

/** The mesh's own settings in force: code options over the environment over the defaults. */
export interface MeshSettings {
  serviceName: string;
  configFile: string | undefined;
  /** The registry to use (a valid one: an invalid option was reported and falls back to env). */
  registry: RegistryKind | undefined;
  /** The registry as given (for messages), valid or not. */
  registryName: string | undefined;
  /** As set (option or variable); unset, the endpoint pools' default applies. */
  connectionsPerEndpoint: number | undefined;
  passthrough: boolean;
  hostHeader: 'logical' | 'endpoint';
  resolveTimeoutMs: number;
  idleTimeoutMs: number;
  logLevel: LogLevel | undefined;
  /**
   * The object-valued options when they have the methods the mesh calls (`undefined` when left out
   * or refused): the mesh uses these, never a refused one, while it checks the rest.
   */
  clock: Clock | undefined;
  random: Random | undefined;
  logger: Logger | undefined;
  metricsRegistry: Registry | undefined;
}

/**
 * `value` if it is an object with every one of `methods` (a JavaScript caller has no types: a
 * wrong one would fail later with a bare `TypeError`, or not at all), else an issue naming what
 * it lacks.
 */
function withMethods<T>(
  value: unknown,
  field: string,
  what: string,
  methods: readonly string[],
  issues: Issues,
): T | undefined {
  if (value === undefined) return undefined;
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null) {
    return issues.add(field, what, value);
  }
  const missing = methods.filter((m) => typeof (value as Record<string, unknown>)[m] !== 'function');
  if (missing.length > 0) {
    return issues.add(field, `${what} (it has no ${missing.map((m) => `${m}()`).join(', ')})`, value);
  }
  return value as T;
}

/** The object-valued options of `createMesh`, each checked for what the mesh calls on it. */
function objectOptions(
  options: MeshOptions,
  issues: Issues,
): Pick<MeshSettings, 'clock' | 'random' | 'logger' | 'metricsRegistry'> {
  const clock = withMethods<Clock>(
    options.clock,
    'options.clock',
    'a Clock',
    ['now', 'setTimer', 'sleep'],
    issues,
  );
  const random = withMethods<Random>(options.random, 'options.random', 'a Random', ['next'], issues);
  const logger = withMethods<Logger>(
    options.logger,
    'options.logger',
    'a Logger',
    ['debug', 'info', 'warn', 'error'],
    issues,
  );
  withMethods(
    options.passthroughDispatcher,
    'options.passthroughDispatcher',
    'an undici Dispatcher',
    ['dispatch', 'close', 'destroy'],
    issues,
  );
  const resolvers: unknown = options.resolvers;
  if (resolvers !== undefined) {
    if (!Array.isArray(resolvers)) issues.add('options.resolvers', 'a list of resolvers', resolvers);
    else
      resolvers.forEach((r, i) => {
        const field = `options.resolvers[${i}]`;
        if (withMethods(r, field, 'a Resolver', ['match', 'watch', 'close'], issues) === undefined) return;
        const name = (r as { name?: unknown }).name;
        if (typeof name !== 'string' || name === '') issues.add(`${field}.name`, 'a non-empty string', name);
      });
  }
  let metricsRegistry: Registry | undefined;
  const metrics: unknown = options.metrics;
  if (metrics !== undefined) {
    const m = issues.object(metrics, 'options.metrics');
    if (m !== undefined) {
      issues.unknownKeys(m, 'options.metrics', ['registry']);
      metricsRegistry = withMethods<Registry>(
        m.registry,
        'options.metrics.registry',
        'a prom-client Registry',
        ['getSingleMetric', 'registerMetric', 'metrics'],
        issues,
      );
    }
  }
  return { clock, random, logger, metricsRegistry };
}

/**
 * The mesh's own settings from its code options and the environment. Options from code are
 * validated like everything else (a JavaScript caller has no types); every problem goes into
 * `issues`, and the defaults stand in for what is invalid.
 */
/**
 * Every option `createMesh` knows. A JavaScript caller has no types: a misspelt option
 * (`defualts`, `servces`, `configFlie`) would otherwise leave the mesh without that configuration
 * and say nothing. `satisfies` keeps this list and {@link MeshOptions} the same.
 */
const MESH_OPTION_KEYS = Object.keys({
  env: true,
  serviceName: true,
  services: true,
  defaults: true,
  resolvers: true,
  configFile: true,
  configSource: true,
  registry: true,
  connectionsPerEndpoint: true,
  passthrough: true,
  hostHeader: true,
  resolveTimeoutMs: true,
  logger: true,
  clock: true,
  random: true,
  passthroughDispatcher: true,
  destinationIdleTimeoutMs: true,
  metrics: true,
  telemetry: true,
} satisfies Record<keyof MeshOptions, true>);

export function meshSettings(options: MeshOptions, env: Env, issues: Issues): MeshSettings {
  const fromEnv = readMeshEnv(env, issues);
  // An option set to `undefined` is as if absent (a spread of optional settings leaves such keys).
  const given = Object.fromEntries(
    Object.entries(options as Record<string, unknown>).filter(([, v]) => v !== undefined),
  );
  issues.unknownKeys(given, 'options', MESH_OPTION_KEYS);
  if (options.passthrough !== undefined) issues.boolean(options.passthrough, 'options.passthrough');
  if (options.hostHeader !== undefined)
    issues.oneOf(options.hostHeader, 'options.hostHeader', ['logical', 'endpoint'] as const);
  if (options.registry !== undefined) issues.oneOf(options.registry, 'options.registry', REGISTRY_KINDS);
  if (options.resolveTimeoutMs !== undefined)
    issues.number(options.resolveTimeoutMs, 'options.resolveTimeoutMs', { min: 1, max: 600_000 });
  if (options.configFile !== undefined) issues.string(options.configFile, 'options.configFile');
  if (options.serviceName !== undefined) issues.string(options.serviceName, 'options.serviceName');
  // `file` names the config document as the registry: with none to read, every service would be
  // silently unknown.
  const registryName = options.registry ?? fromEnv.registry;
  if (
    registryName === 'file' &&
    (options.configFile ?? fromEnv.configFile) === undefined &&
    options.configSource === undefined
  ) {
    issues.add(
      options.registry !== undefined ? 'options.registry' : 'MESH_REGISTRY',
      'a config file to read with the `file` registry (set MESH_CONFIG_FILE or options.configFile)',
      registryName,
    );
  }
  return {
    serviceName: options.serviceName ?? fromEnv.serviceName ?? 'unknown_service',
    configFile: options.configFile ?? fromEnv.configFile,
    registry:
      options.registry !== undefined && REGISTRY_KINDS.includes(options.registry)
        ? options.registry
        : fromEnv.registry,
    registryName: options.registry ?? fromEnv.registry,
    connectionsPerEndpoint:
      options.connectionsPerEndpoint === undefined
        ? fromEnv.connectionsPerEndpoint
        : issues.integer(options.connectionsPerEndpoint, 'options.connectionsPerEndpoint', {
            min: 1,
            max: MAX_CONNECTIONS,
          }),
    passthrough: options.passthrough ?? fromEnv.passthrough ?? true,
    hostHeader: options.hostHeader ?? fromEnv.hostHeader ?? 'logical',
    resolveTimeoutMs: options.resolveTimeoutMs ?? fromEnv.resolveTimeoutMs ?? 5000,
    idleTimeoutMs:
      issues.integer(options.destinationIdleTimeoutMs ?? 300_000, 'options.destinationIdleTimeoutMs', {
        min: 0,
        max: 2_147_483_647,
      }) ?? 300_000,
    logLevel: fromEnv.logLevel,
    ...objectOptions(options, issues),
  };
}

/**
 * Every `MESH_*` variable that is set (not blank) must be one we know: a typo (`MESH_RETRYS`)
 * would otherwise be silently ignored. Suggests the closest known name, also when the name spells a document field
 * (`MESH_RETRY_MAX_RETRIES` for `retry.maxRetries`, whose variable is `MESH_RETRIES`) or misspells
 * a prefix (`MESH_ENDPOINT_PAYMENTS` for `MESH_ENDPOINTS_PAYMENTS`).
 */
export function checkUnknownMeshVars(env: Env, specs: readonly EnvVarSpec[], issues: Issues): void {
  const exact = new Set(specs.filter((s) => !s.prefix).map((s) => s.name));
  const prefixes = specs.filter((s) => s.prefix).map((s) => s.name);
  let byField: Map<string, string> | undefined;
  for (const name of Object.keys(env)) {
    if (!name.startsWith('MESH_')) {
      // `mesh_timeout`, `Mesh_Timeout`: a known variable in the wrong case, which is not read
      // (names are case-sensitive), so the setting would silently be the default.
      const upper = name.toUpperCase();
      if (
        upper.startsWith('MESH_') &&
        envString(env, name) !== undefined &&
        (exact.has(upper) || prefixes.some((p) => upper.startsWith(p) && upper.length > p.length))
      ) {
        issues.add(
          name,
          `the variable spelt in capitals, ${quote(upper)} (names are case-sensitive)`,
          shownValue(name, env[name] ?? ''),
        );
      }
      continue;
    }
    // `MESH_ENDPOINTS_` alone is the env resolver's to report (with its other variables).
    if (exact.has(name) || name === ENDPOINTS_PREFIX) continue;
    // Blank means unset, for a name the mesh does not know too: a Kubernetes manifest or a
    // compose file that sets `MESH_TIMOUT=` sets nothing, so there is nothing to misspell.
    if (envString(env, name) === undefined) continue;
    if (prefixes.some((p) => name.startsWith(p) && name.length > p.length)) {
      // A `MESH_ENDPOINTS_<SERVICE>` variable's own rules (its service a request can reach, its
      // endpoints) are the env resolver's: `readEnvEndpoints` records them with these issues.
      continue;
    }
    byField ??= fieldSpellings(specs);
    // `MESH_ENDPOINTS` or `MESH_ENDPOINTS_`: a prefix variable without its service name.
    const bare = prefixes.find((p) => p.startsWith(name));
    let closest =
      bare !== undefined
        ? `${bare}<SERVICE>`
        : closestName(name, [...exact, ...prefixes.map((p) => `${p}<SERVICE>`), ...byField.keys()]);
    if (bare === undefined) {
      // `MESH_ENDPOINT_PAYMENTS`: a misspelt prefix with a service after it, the name corrected.
      const fixed = prefixTypo(name, prefixes);
      if (fixed !== undefined && (closest === undefined || editDistance(name, closest) > fixed.distance))
        closest = fixed.name;
      // `MESH_CONSUL_TOKEN`: Consul's own variable (`CONSUL_HTTP_TOKEN`), which the mesh reads as
      // Consul's tools do. `MESH_ADMIN`: the beginning of known names (`MESH_ADMIN_PORT`), when the
      // nearest by edit distance has not even the first letters after `MESH_` in common with it
      // (`MESH_ZONE`); `MESH_RETRY` keeps `MESH_RETRIES`.
      const unrelated = closest === undefined || !closest.startsWith(name.slice(0, 'MESH_'.length + 2));
      closest = consulOwn(name, specs) ?? (unrelated ? startOfKnown(name, specs) : undefined) ?? closest;
    }
    const hint = closest === undefined ? undefined : (byField.get(closest) ?? closest);
    const field = specs.find((s) => s.name === hint)?.field;
    const what = hint ? ` (did you mean ${quote(hint)}${field ? `, which sets ${field}` : ''}?)` : '';
    // A credential under a misspelt name (`MESH_CONSUL_TOKEN`) is not quoted: its shape only.
    issues.add(name, `a known MESH_* variable${what}`, shownValue(name, env[name] ?? ''));
  }
}

/** The first known variable (in the table's order) whose name is `name` and more: `MESH_ADMIN` → `MESH_ADMIN_PORT`. */
function startOfKnown(name: string, specs: readonly EnvVarSpec[]): string | undefined {
  return specs.find((s) => !s.prefix && s.name.startsWith(`${name}_`))?.name;
}

/** `MESH_CONSUL_TOKEN` → `CONSUL_HTTP_TOKEN`, `MESH_CONSUL_CACERT` → `CONSUL_CACERT`: Consul's own name for it. */
function consulOwn(name: string, specs: readonly EnvVarSpec[]): string | undefined {
  if (!name.startsWith('MESH_CONSUL_')) return undefined;
  const rest = name.slice('MESH_CONSUL_'.length);
  const known = new Set(specs.map((s) => s.name));
  for (const candidate of [
    `CONSUL_${rest}`,
    `CONSUL_HTTP_${rest}`,
    `CONSUL_HTTP_${rest.replace(/^HTTP_/, '')}`,
  ]) {
    if (known.has(candidate)) return candidate;
  }
  return undefined;
}

/** `MESH_RETRY_MAX_RETRIES` → `MESH_RETRIES`: each field's path spelt as a variable name. */
function fieldSpellings(specs: readonly EnvVarSpec[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const s of specs) {
    if (s.prefix || s.field === undefined) continue;
    const spelt = `MESH_${s.field
      .replace(/\./g, '_')
      .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
      .toUpperCase()}`;
    if (spelt !== s.name && !out.has(spelt)) out.set(spelt, s.name);
  }
  return out;
}

/**
 * `MESH_ENDPOINT_PAYMENTS` → `MESH_ENDPOINTS_PAYMENTS`: the name with its beginning, when that is
 * within two edits of a prefix, replaced by the prefix (the nearest such split); a name that is all
 * beginning (`MESH_ENDPOINT_`) is told the form it needs, `MESH_ENDPOINTS_<SERVICE>`.
 */
function prefixTypo(
  name: string,
  prefixes: readonly string[],
): { name: string; distance: number } | undefined {
  let best: { name: string; distance: number; key: readonly number[] } | undefined;
  for (const p of prefixes) {
    for (let i = Math.max(1, p.length - 2); i <= Math.min(name.length, p.length + 2); i++) {
      const head = name.slice(0, i);
      const rest = name.slice(i);
      const distance = editDistance(head, p);
      if (distance > 2) continue;
      // Ties: the split leaving the service name whole (`PAYMENTS`, not `_PAYMENTS`, `S_PAYMENTS`
      // or `AYMENTS`): no separator first, the separator in the head, the most of the name kept.
      const key = [distance, /^[A-Za-z0-9]|^$/.test(rest) ? 0 : 1, head.endsWith('_') ? 0 : 1, -rest.length];
      const first = best === undefined ? -1 : key.findIndex((k, j) => k !== best?.key[j]);
      if (best === undefined || (first >= 0 && (key[first] as number) < (best.key[first] as number)))
        best = { name: `${p}${rest === '' ? '<SERVICE>' : rest}`, distance, key };
    }
  }
  return best && { name: best.name, distance: best.distance };
}
