export {
  createEtcdClient,
  DEFAULT_ETCD_ENDPOINTS,
  DEFAULT_ETCD_PREFIX,
  type EtcdClient,
  type EtcdConnectionOptions,
} from './client.js';
export { DEFAULT_MAX_VALUE_BYTES, EtcdServiceState, encodeRegistration, parseEtcdValue } from './codec.js';
export { type EtcdPrefixPair, type EtcdPrefixWatchOptions, watchEtcdPrefix } from './config-watch.js';
export { checkEtcdEnv, type EtcdEnvOptions, etcdEnvVars, etcdOptionsFromEnv } from './env.js';
export {
  createEtcdRegistrar,
  type EtcdRegisteredInstance,
  EtcdRegistrar,
  type EtcdRegistrarOptions,
  validateEtcdRegistration,
} from './registrar.js';
export { createEtcdResolver, EtcdResolver, type EtcdResolverOptions } from './resolver.js';
