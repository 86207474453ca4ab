export { type BackoffOptions, backoffDelay } from './backoff.js';
export {
  type ConsulBackoffOptions,
  type ConsulBlockingQuery,
  type ConsulConnectionOptions,
  ConsulHttp,
  type ConsulRegistrarEvent,
  type ConsulRegistrarOptions,
  type ConsulResolver,
  type ConsulResolverEvent,
  type ConsulResolverOptions,
  type ConsulResponse,
  type ConsulTlsOptions,
  checkConsulEnv,
  consulEnvVars,
  consulErrorDelay,
  consulOptionsFromEnv,
  consulRetryDelay,
  consulServiceDefinition,
  createConsulRegistrar,
  createConsulResolver,
  DEFAULT_CONSUL_BACKOFF,
  DEFAULT_CONSUL_CHECK,
  DEFAULT_MAX_LONG_POLLS,
  type LongPollLimitEvent,
  LongPollSlots,
  parseConsulAddress,
  parseIndex as parseConsulIndex,
  runConsulBlockingQuery,
} from './consul/index.js';
export { checkDnsEnv, dnsEnvVars, dnsOptionsFromEnv } from './dns/env.js';
export {
  createDnsResolver,
  DNS_DEFAULTS,
  type DnsLookupResult,
  type DnsResolver,
  type DnsResolverOptions,
} from './dns/resolver.js';
export type { DnsServer } from './dns/wire.js';
export { ENDPOINT_KEYS, parseEndpointEntry, parseEndpointList, parseEndpointSpec } from './endpoint-doc.js';
export {
  createEnvResolver,
  ENDPOINTS_PREFIX,
  type EnvResolverOptions,
  embeddedEnvVars,
  readEnvEndpoints,
  suffixOf as envEndpointsSuffix,
} from './env-resolver.js';
export {
  checkEtcdEnv,
  createEtcdClient,
  createEtcdRegistrar,
  createEtcdResolver,
  DEFAULT_ETCD_ENDPOINTS,
  DEFAULT_ETCD_PREFIX,
  type EtcdClient,
  type EtcdConnectionOptions,
  type EtcdEnvOptions,
  type EtcdPrefixPair,
  type EtcdPrefixWatchOptions,
  type EtcdRegisteredInstance,
  EtcdRegistrar,
  type EtcdRegistrarOptions,
  EtcdResolver,
  type EtcdResolverOptions,
  etcdEnvVars,
  etcdOptionsFromEnv,
  validateEtcdRegistration,
  watchEtcdPrefix,
} from './etcd/index.js';
export {
  type ConfigDocument,
  createDocumentEndpointsResolver,
  createFileResolver,
  type DocumentEndpointsResolver,
  type FileResolver,
  type FileResolverOptions,
} from './file-resolver.js';
export { ResolverHub, type ResolverHubOptions, type StartWatch, type WatchSink } from './hub.js';
export {
  type JsonFile,
  type JsonFileOptions,
  type JsonFileVersion,
  MAX_CONFIG_BYTES,
  watchJsonFile,
} from './json-file.js';
export { type ManageSignalsOptions, manageSignals, type SignalSource } from './registrar/lifecycle.js';
export { createStaticResolver, FixedResolver, type StaticResolverOptions } from './static.js';
