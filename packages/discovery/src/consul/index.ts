export { consulEnvVars, consulOptionsFromEnv } from './env.js';
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
} from './registrar.js';
export {
  type ConsulResolver,
  type ConsulResolverOptions,
  createConsulResolver,
  parseIndex,
} from './resolver.js';
