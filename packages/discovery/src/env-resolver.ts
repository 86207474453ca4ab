import {
  type Clock,
  createEndpoint,
  type Endpoint,
  type Env,
  type EnvVarSpec,
  formatHostPort,
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
      'Endpoints of one service, e.g. `MESH_ENDPOINTS_PAYMENTS_V2=10.0.0.1:8080,[::1]:8081=3`. The suffix is the service name upper-cased with `-` and `.` as `_` (every spelling of it is the one service), starting and ending with a letter or digit; `=n` sets a relative weight.',
  },
]);

export interface EnvResolverOptions {
  env: Env;
  clock?: Clock;
  /**
   * Service names declared elsewhere (the mesh's code options, the config document in force): a
   * host whose variable suffix is one of theirs is that service, in that spelling. A function is
   * asked when a host of a suffix not yet named is first matched, so names a document declares
   * after the resolver was made count too.
   */
  names?: readonly string[] | (() => Iterable<string>);
}

/** The variable suffix of a service name: upper-cased, with `-` and `.` as `_`. */
export function suffixOf(name: string): string {
  return name.toUpperCase().replace(/[-.]/g, '_');
}

/**
 * Services from `MESH_ENDPOINTS_<SERVICE>` variables. A host matches when its name, upper-cased
 * with `-` and `.` as `_`, is a variable suffix (`payments-v2` ↔ `MESH_ENDPOINTS_PAYMENTS_V2`).
 * Every spelling of one suffix (`payments-v2`, `payments_v2`, `payments.v2`) is one service, so one
 * destination and one policy: the spelling `names` declares, else the first spelling a host used.
 *
 * @throws MeshError `MESH_CONFIG_INVALID` naming every bad variable and its value.
 */
export function createEnvResolver(options: EnvResolverOptions): Resolver {
  const issues = new Issues();
  const bySuffix = readEnvEndpoints(options.env, issues);
  issues.throwIfAny('invalid environment');
  const canonical = new Map<string, string>();
  const names = options.names;
  for (const name of typeof names === 'function' ? names() : (names ?? [])) {
    const suffix = suffixOf(name);
    if (bySuffix.has(suffix) && !canonical.has(suffix)) canonical.set(suffix, name.toLowerCase());
  }
  return new EnvResolver(
    bySuffix,
    canonical,
    options.clock ?? systemClock,
    typeof names === 'function' ? names : undefined,
  );
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
      issues.add(
        name,
        suffix === ''
          ? 'a known MESH_* variable (did you mean "MESH_ENDPOINTS_<SERVICE>"?)'
          : 'a variable name MESH_ENDPOINTS_<SERVICE> with A-Z, 0-9 and _ only',
        raw,
      );
      continue;
    }
    // A service name starts and ends with a letter or digit (the rule of a document's names): a
    // stray `_` (`MESH_ENDPOINTS_PAYMENTS_`) would define a service no request to `payments` reaches.
    if (suffix.startsWith('_') || suffix.endsWith('_')) {
      const meant = suffix.replace(/^_+|_+$/g, '');
      issues.add(
        name,
        `a variable name MESH_ENDPOINTS_<SERVICE> whose service name starts and ends with a letter or digit (did you mean "${ENDPOINTS_PREFIX}${meant === '' ? '<SERVICE>' : meant}"?)`,
        raw,
      );
      continue;
    }
    // `http://localhost/` and `http://123/` (0.0.0.123) never reach a service: such a variable
    // could never apply (the rule a config document's service names follow).
    const service = suffix.toLowerCase();
    if (service === 'localhost' || /^([0-9]+|0x[0-9a-f]*)$/.test(service)) {
      issues.add(
        name,
        `a service name a request can reach: ${
          service === 'localhost'
            ? '`localhost` names are never services (RFC 6761)'
            : 'a name whose last label is a number is an IPv4 address to URL parsers'
        }`,
        service,
      );
      continue;
    }
    const list = issues.try(() => parseEndpointSpec(raw, name));
    if (list === undefined) continue;
    // As in a document: the same address:port twice would be one endpoint with one weight dropped.
    const seen = new Set<string>();
    const twice = list.find((e) => {
      const key = formatHostPort(e.address, e.port);
      if (seen.has(key)) return true;
      seen.add(key);
      return false;
    });
    if (twice !== undefined) {
      const key = formatHostPort(twice.address, twice.port);
      issues.add(name, `a list of unique endpoints (${key} is listed twice)`, raw);
      continue;
    }
    bySuffix.set(suffix, Object.freeze(list.map(createEndpoint)));
  }
  return bySuffix;
}

class EnvResolver extends FixedResolver {
  readonly #suffixes: ReadonlyMap<string, readonly Endpoint[]>;
  /** Variable suffix → the service's name (one per suffix, whatever the host's spelling). */
  readonly #canonical: Map<string, string>;
  /** Service name → endpoints, filled as names are matched (read by the watches). */
  readonly #services: Map<string, readonly Endpoint[]>;

  /** The names declared elsewhere now (see {@link EnvResolverOptions.names}). */
  readonly #declared: (() => Iterable<string>) | undefined;

  constructor(
    bySuffix: ReadonlyMap<string, readonly Endpoint[]>,
    canonical: Map<string, string>,
    clock: Clock,
    declared: (() => Iterable<string>) | undefined,
  ) {
    const services = new Map<string, readonly Endpoint[]>();
    for (const [suffix, name] of canonical) services.set(name, bySuffix.get(suffix)!);
    super('env', services, clock);
    this.#suffixes = bySuffix;
    this.#canonical = canonical;
    this.#services = services;
    this.#declared = declared;
  }

  override match(host: string): string | undefined {
    const suffix = suffixOf(host);
    const known = this.#canonical.get(suffix);
    if (known !== undefined) return known;
    const endpoints = this.#suffixes.get(suffix);
    if (endpoints === undefined) return undefined;
    // The spelling declared by then (a document's `services.payments.v2` for `http://payments-v2/`),
    // else the first host that names the service names it from then on.
    let name = host.toLowerCase();
    for (const declared of this.#declared?.() ?? []) {
      if (suffixOf(declared) === suffix) {
        name = declared.toLowerCase();
        break;
      }
    }
    this.#canonical.set(suffix, name);
    this.#services.set(name, endpoints);
    return name;
  }
}
