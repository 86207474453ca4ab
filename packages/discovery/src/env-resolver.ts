import {
  type Clock,
  createEndpoint,
  type Endpoint,
  type Env,
  type EnvVarSpec,
  Issues,
  type Resolver,
  systemClock,
} from '@proxyless/core';
import { parseEndpointSpec } from './endpoint-doc.js';
import { FixedResolver } from './static.js';

/** The prefix of per-service endpoint variables: `MESH_ENDPOINTS_PAYMENTS=10.0.0.1:8080,…`. */
export const ENDPOINTS_PREFIX = 'MESH_ENDPOINTS_';

/** Variables the embedded (static/env/file) registries read. */
export const embeddedEnvVars: readonly EnvVarSpec[] = Object.freeze([
  {
    name: ENDPOINTS_PREFIX,
    prefix: true,
    type: 'host:port[=weight] list',
    defaultValue: '—',
    description:
      'Endpoints of one service, e.g. `MESH_ENDPOINTS_PAYMENTS_V2=10.0.0.1:8080,[::1]:8081=3`. The suffix is the service name upper-cased with `-` and `.` as `_`; `=n` sets a relative weight.',
  },
]);

export interface EnvResolverOptions {
  env: Env;
  clock?: Clock;
}

/**
 * Services from `MESH_ENDPOINTS_<SERVICE>` variables. A host matches when its name, upper-cased
 * with `-` and `.` as `_`, is a variable suffix (`payments-v2` ↔ `MESH_ENDPOINTS_PAYMENTS_V2`).
 *
 * @throws MeshError `MESH_CONFIG_INVALID` naming every bad variable and its value.
 */
export function createEnvResolver(options: EnvResolverOptions): Resolver {
  const issues = new Issues();
  const bySuffix = readEnvEndpoints(options.env, issues);
  issues.throwIfAny('invalid environment');
  return new EnvResolver(bySuffix, options.clock ?? systemClock);
}

/**
 * The `MESH_ENDPOINTS_<SERVICE>` variables of `env`, by suffix; every bad variable is recorded in
 * `issues` with its value (so a caller can report them with its other problems at once).
 */
export function readEnvEndpoints(env: Env, issues: Issues): Map<string, readonly Endpoint[]> {
  const bySuffix = new Map<string, readonly Endpoint[]>();
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith(ENDPOINTS_PREFIX) || raw === undefined || raw.trim() === '') continue;
    const suffix = name.slice(ENDPOINTS_PREFIX.length);
    if (!/^[A-Z0-9_]+$/.test(suffix)) {
      issues.add(name, 'a variable name MESH_ENDPOINTS_<SERVICE> with A-Z, 0-9 and _ only', raw);
      continue;
    }
    const list = issues.try(() => parseEndpointSpec(raw, name));
    if (list) bySuffix.set(suffix, Object.freeze(list.map(createEndpoint)));
  }
  return bySuffix;
}

class EnvResolver extends FixedResolver {
  readonly #suffixes: ReadonlyMap<string, readonly Endpoint[]>;
  constructor(bySuffix: ReadonlyMap<string, readonly Endpoint[]>, clock: Clock) {
    // The service map is filled lazily by host name: the env names the suffix, the URL the service.
    const services = new Map<string, readonly Endpoint[]>();
    super('env', services, clock);
    this.#suffixes = bySuffix;
    this.#byHost = services;
  }
  readonly #byHost: Map<string, readonly Endpoint[]>;

  override match(host: string): string | undefined {
    if (this.#byHost.has(host)) return host;
    const endpoints = this.#suffixes.get(host.toUpperCase().replace(/[-.]/g, '_'));
    if (endpoints === undefined) return undefined;
    this.#byHost.set(host, endpoints);
    return host;
  }
}
