import type { Clock, Env, Issues, Logger, Random, Resolver } from '@proxyless/core';
import {
  type ConsulResolverOptions,
  checkConsulEnv,
  checkDnsEnv,
  checkEtcdEnv,
  consulOptionsFromEnv,
  createConsulResolver,
  createDnsResolver,
  createEnvResolver,
  createEtcdResolver,
  createStaticResolver,
  type DnsResolverOptions,
  dnsOptionsFromEnv,
  type EtcdEnvOptions,
  etcdOptionsFromEnv,
} from '@proxyless/discovery';
import type { MeshOptions } from './mesh.js';

export interface ResolverSet {
  /** Asked in order which service a host names; the first answer wins. */
  readonly list: readonly Resolver[];
  close(): Promise<void>;
}

/** Settings of the shared registries, read (and validated) with the rest of the environment. */
export interface RegistrySettings {
  consul?: ConsulResolverOptions;
  dns?: DnsResolverOptions;
  etcd?: EtcdEnvOptions;
}

/**
 * Read the shared registry's variables. With `MESH_REGISTRY` (or `options.registry`) set, only
 * that registry is configured; otherwise each registry whose own variables are present is.
 * Every `MESH_*` registry variable is checked either way (a bad value of a registry not in use is
 * still an error), and a variable that selects a registry conflicts with another one named.
 * `CONSUL_*` variables are checked only when Consul is in use: Consul's own tools read them too.
 */
export function readRegistryEnv(env: Env, registry: string | undefined, issues: Issues): RegistrySettings {
  const out: RegistrySettings = {};
  /** The options of `kind` when it is in use; otherwise its `MESH_*` variables are only checked. */
  const read = <T>(
    kind: string,
    options: (env: Env) => T | undefined,
    check: (env: Env, issues: Issues) => void,
  ) => {
    if (registry !== undefined && registry !== kind) {
      check(env, issues);
      return undefined;
    }
    const before = issues.list.length;
    const o = issues.try(() => options(registry === kind ? { ...env, MESH_REGISTRY: kind } : env));
    if (o === undefined && issues.list.length === before) check(env, issues);
    return o;
  };
  const dns = read('dns', dnsOptionsFromEnv, checkDnsEnv);
  if (dns) out.dns = dns;
  const consul = read('consul', consulOptionsFromEnv, checkConsulEnv);
  if (consul) out.consul = consul;
  const etcd = read('etcd', etcdOptionsFromEnv, checkEtcdEnv);
  if (etcd) out.etcd = etcd;
  if (registry !== undefined && registry !== 'dns')
    selectorConflict(
      env,
      registry,
      ['MESH_DNS_DOMAIN', 'MESH_DNS_SERVERS', 'MESH_DNS_SERVICES'],
      'dns',
      issues,
    );
  if (registry !== undefined && registry !== 'etcd')
    selectorConflict(env, registry, ['MESH_ETCD_ENDPOINTS'], 'etcd', issues);
  return out;
}

/**
 * A variable documented as selecting `kind` while the registry in use is another one: reported,
 * since it would be silently ignored.
 */
function selectorConflict(
  env: Env,
  registry: string,
  names: readonly string[],
  kind: string,
  issues: Issues,
): void {
  for (const name of names) {
    const v = env[name];
    if (v === undefined || v.trim() === '') continue;
    issues.add(
      name,
      `unset while the registry is ${registry} (setting ${name} selects ${kind}; use MESH_REGISTRY=${kind})`,
      v,
    );
  }
}

export interface ResolverSetInput {
  registries: RegistrySettings;
  random: Random;
  env: Env;
  options: MeshOptions;
  clock: Clock;
  logger: Logger;
  /** Endpoints of the config document in force (the mesh feeds it each accepted version). */
  documentEndpoints: Resolver | undefined;
  /**
   * The service names the configuration declares now (code options and the document in force):
   * the spelling a `MESH_ENDPOINTS_*` service takes whichever host spelling is called first.
   */
  serviceNames?: () => Iterable<string>;
}

/**
 * The resolvers a mesh asks, in order: explicit ones from options, services from options, the
 * environment (`MESH_ENDPOINTS_*`), the config file, then the shared registry (Consul, etcd, DNS).
 * Resolvers the mesh created are closed with it; those passed in options belong to the caller.
 */
export function createResolvers(input: ResolverSetInput): ResolverSet {
  const { env, options, clock, logger } = input;
  const owned: Resolver[] = [];
  const list: Resolver[] = [...(options.resolvers ?? [])];

  const staticServices: Record<
    string,
    NonNullable<NonNullable<MeshOptions['services']>[string]['endpoints']>
  > = {};
  for (const [name, entry] of Object.entries(options.services ?? {})) {
    if (entry.endpoints !== undefined) staticServices[name] = entry.endpoints;
  }
  if (Object.keys(staticServices).length > 0)
    owned.push(createStaticResolver({ services: staticServices, clock }));
  owned.push(
    createEnvResolver({ env, clock, names: input.serviceNames ?? Object.keys(options.services ?? {}) }),
  );

  // The config file's endpoints: the file itself is a config source the mesh validates and applies.
  if (input.documentEndpoints) owned.push(input.documentEndpoints);

  // The shared registry comes last: embedded definitions override it for local development.
  const { registries } = input;
  if (registries.consul)
    owned.push(createConsulResolver({ ...registries.consul, clock, logger, random: input.random }));
  if (registries.etcd)
    owned.push(createEtcdResolver({ ...registries.etcd, clock, logger, random: input.random }));
  if (registries.dns)
    owned.push(createDnsResolver({ ...registries.dns, clock, logger, random: input.random }));

  list.push(...owned);
  let closing: Promise<void> | undefined;
  return {
    list,
    close() {
      closing ??= Promise.all(owned.map((r) => r.close())).then(() => undefined);
      return closing;
    },
  };
}
