export {
  type ConsulBackoffOptions,
  consulRetryDelay,
  DEFAULT_CONSUL_BACKOFF,
  parseRetryAfter,
} from './backoff.js';
export {
  type ConsulBlockingQuery,
  consulErrorDelay,
  runConsulBlockingQuery,
} from './blocking.js';
export { checkConsulEnv, consulEnvVars, consulOptionsFromEnv } from './env.js';
export {
  type ConsulConnectionOptions,
  ConsulHttp,
  type ConsulRequestOptions,
  type ConsulResponse,
  type ConsulTarget,
  type ConsulTlsOptions,
  consulStatusError,
  DEFAULT_MAX_BODY_BYTES,
  parseConsulAddress,
} from './http.js';
export {
  DEFAULT_MAX_LONG_POLLS,
  type LongPollLimitEvent,
  LongPollSlots,
} from './long-polls.js';
export {
  type HealthPayload,
  type HealthPayloadOptions,
  parseHealthPayload,
  payloadError,
} from './payload.js';
export {
  type ConsulRegistrarEvent,
  type ConsulRegistrarOptions,
  consulServiceDefinition,
  createConsulRegistrar,
  DEFAULT_CONSUL_CHECK,
} from './registrar.js';
export {
  type ConsulResolver,
  type ConsulResolverEvent,
  type ConsulResolverOptions,
  createConsulResolver,
  parseIndex,
} from './resolver.js';
