export type { AttemptOutcome, Balancer, Picker } from './balancer.js';
export {
  abortError,
  type Clock,
  KEEP_ALIVE,
  sleepOn,
  systemClock,
  type Timer,
  type TimerOptions,
  wallClockMs,
} from './clock.js';
export {
  createEndpoint,
  createEndpointSet,
  type Endpoint,
  type EndpointHealth,
  type EndpointInit,
  type EndpointSet,
  type EndpointSetInit,
  formatHostPort,
  markStale,
  sameEndpoints,
} from './endpoint.js';
export {
  type Env,
  type EnvVarSpec,
  envBoolean,
  envDuration,
  envEnum,
  envHostPortList,
  envInteger,
  envNumber,
  envServiceSuffix,
  envString,
  envStringList,
} from './env.js';
export {
  type ConfigIssue,
  configError,
  MESH_ERROR_CODES,
  MeshError,
  type MeshErrorCode,
  type MeshErrorDetails,
  type MeshErrorOptions,
  quote,
} from './errors.js';
export { createEmitter, type Disposable, type Emitter, type Event, once } from './events.js';
export {
  type CallContext,
  type CallEvent,
  type CallObserver,
  type CallResult,
  discardResult,
  emitCallEvent,
  type Filter,
  isIdempotentMethod,
  isReplayableBody,
  type MeshRequest,
  type Next,
  type RequestBody,
  type RequestHeaders,
  type ResponseBody,
  type ResponseHeaders,
} from './filter.js';
export {
  type DispatchHeaders,
  forEachHeader,
  hasHeader,
  hasSafeIterator,
  headerRecord,
  isRequestBodyError,
  markRequestBodyError,
  withHeader,
} from './headers.js';
export {
  type AttemptEnd,
  callOf,
  composeInterceptors,
  copyOptions,
  type DispatchFn,
  ENDPOINT_ATTRIBUTE,
  ForwardingHandler,
  type Interceptor,
  kCall,
  type MeshDispatchOptions,
  type MeshHandler,
  withCall,
} from './interceptor.js';
export { Issues, issuesError } from './issues.js';
export {
  diagnosticsChannel,
  filterLogger,
  jsonLogger,
  LOG_LEVELS,
  type LogFields,
  type Logger,
  type LogLevel,
  noopLogger,
} from './log.js';
export {
  closestName,
  editDistance,
  type HostPort,
  isIPv4,
  isIPv6,
  isValidHost,
  omitKeys,
  parseBoolean,
  parseDuration,
  parseEnum,
  parseHostPort,
  parseHostPortList,
  parseInteger,
  parseNumber,
  parsePort,
  parseRatio,
  parseStringList,
  type RangeOptions,
} from './parse.js';
export { type Random, randomInt, seededRandom, systemRandom } from './random.js';
export type {
  HealthCheckDefinition,
  RegisteredInstance,
  Registrar,
  Registration,
  Resolver,
  ResolverListener,
  ResolverUpdate,
} from './resolver.js';
export {
  Duration,
  describe as describeSchema,
  type EnvBinding,
  env as envVar,
  Fields,
  kEnv,
  OneOf,
  Ratio,
  Section,
  type Static,
  type TSchema,
  Type,
  type Validator,
  validator,
} from './schema.js';
export { at, CUSTOM_KINDS as SCHEMA_KINDS } from './schema-check.js';
export { type EnvField, envFields, envIssues, envSpec, envToDocument, formatDefault } from './schema-env.js';
export { SectionMemo } from './section-memo.js';
export {
  answerLocally,
  compose,
  dispatchFromNext,
  failDispatch,
  LocalController,
  nextFromDispatch,
  RelayController,
  RelayedHandler,
} from './stage.js';
export {
  globalDispatcher,
  requestUrl,
  UndiciAgent,
  UndiciDispatcher,
  UndiciPool,
  undiciErrors,
  undiciIfLoaded,
  undiciModule,
} from './undici.js';
