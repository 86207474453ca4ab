import type { Clock, Env, Issues, Logger, Random, Resolver } from '@proxyless/core';
import {
  type ConsulResolverOptions,
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
 */
export function readRegistryEnv(env: Env, registry: string | undefined, issues: Issues): RegistrySettings {
  const out: RegistrySettings = {};
  const forced = (kind: string): Env => (registry === kind ? { ...env, MESH_REGISTRY: kind } : env);
  if (registry === undefined || registry === 'dns') {
    const dns = issues.try(() => dnsOptionsFromEnv(forced('dns')));
    if (dns) out.dns = dns;
  }
  if (registry === undefined || registry === 'consul') {
    const consul = issues.try(() => consulOptionsFromEnv(forced('consul')));
    if (consul) out.consul = consul;
  }
  if (registry === undefined || registry === 'etcd') {
    const etcd = issues.try(() => etcdOptionsFromEnv(forced('etcd')));
    if (etcd) out.etcd = etcd;
  }
  return out;
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
  owned.push(createEnvResolver({ env, clock }));

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
