export type { BalancerConfig, BalancerEvent, BalancerStats, EndpointStats } from '@proxyless/balancer';
export type {
  AttemptOutcome,
  Balancer,
  CallContext,
  CallResult,
  Clock,
  Disposable,
  Endpoint,
  EndpointInit,
  EndpointSet,
  Env,
  EnvVarSpec,
  Filter,
  Logger,
  MeshErrorCode,
  MeshErrorDetails,
  MeshRequest,
  Next,
  Random,
  RegisteredInstance,
  Registrar,
  Registration,
  Resolver,
  ResolverUpdate,
  Subscription,
} from '@proxyless/core';
export { compose, jsonLogger, MeshError, noopLogger, systemClock, systemRandom } from '@proxyless/core';
// The registries' resolvers and registrars, for `createMesh({ resolvers })` and registering without
// a mesh (docs/registries-*.md).
export {
  consulOptionsFromEnv,
  createConsulRegistrar,
  createConsulResolver,
  createDnsResolver,
  createEtcdRegistrar,
  createEtcdResolver,
  dnsOptionsFromEnv,
  etcdOptionsFromEnv,
  manageSignals,
} from '@proxyless/discovery';
// The types of `mesh.config(service)`'s `balancer` and `resilience`.
export type { ResilienceConfig, ResiliencePatch } from '@proxyless/resilience';
// What a service's own handlers and tools use: `proxyless` is the one package an application
// installs (with pnpm, its dependencies are not importable by the application). Deadline
// propagation (docs/policies.md), the resilience variables, and SERVER spans (docs/observability.md).
export {
  DEADLINE_HEADER,
  deadlineFromHeaders,
  remainingIncomingDeadline,
  resilienceEnvVars,
  runWithIncomingDeadline,
} from '@proxyless/resilience';
export {
  extractServerContext,
  type ServerSpan,
  type ServerSpanOptions,
  startServerSpan,
  withServerSpan,
} from '@proxyless/telemetry';
export {
  type CheckConfigOptions,
  type ConfigWarning,
  checkConfigDocument,
} from './config/check.js';
export {
  changedRoles,
  type EffectiveConfig,
  POLICY_ROLES,
  type PolicyRole,
  type SettingSource,
} from './config/effective.js';
export type { LayerName } from './config/layers.js';
export {
  type ConfigDocument,
  configDocumentJsonSchema,
  configDocumentSchema,
  POLICY_KEYS,
  policySchema,
} from './config/schema.js';
export {
  type ConfigSource,
  type ConfigVersion,
  createConfigSource,
  type ManualConfigSource,
} from './config/source.js';
export { allEnvVars } from './env-schema.js';
export {
  createMesh,
  type JsonValue,
  type Mesh,
  type MeshEvent,
  type MeshOptions,
  type MeshRequestOptions,
  type MeshResponseData,
  type PolicyOptions,
  type RegisterOptions,
  type ServiceOptions,
  type ServiceStats,
  type TargetStats,
} from './mesh.js';
export { meshEnvVars, type RegistryKind } from './mesh-env.js';
export { IDEMPOTENT_HEADER } from './request.js';
