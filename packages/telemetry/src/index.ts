export {
  type AccessLogOptions,
  type AccessLogRecord,
  type AccessLogSink,
  checkAccessLogTarget,
  formatAccessLogLine,
  openAccessLog,
  type ResponseFlag,
  type ResponseFlagsInput,
  responseFlags,
} from './access-log.js';
export { type AdminServer, type AdminServerOptions, createAdminServer } from './admin.js';
export { EjectionLog, type TelemetryDeps } from './call-recorder.js';
export {
  OTEL_DURATION_BUCKETS,
  resolveTelemetryConfig,
  type TelemetryConfig,
  type TelemetrySettings,
  telemetryEnvVars,
  telemetryPatchFromEnv,
  telemetrySection,
} from './config.js';
export {
  type BalancerEventLike,
  type BreakerState,
  type CallEventLike,
  type EndpointLike,
  type EndpointSetLike,
  type ErrorLike,
  errorCode,
  giveUpCause,
  type TelemetryEvent,
} from './events.js';
export { withHeaders } from './headers.js';
export { createAttemptInterceptor, createCallInterceptor } from './interceptors.js';
export { BoundedValues, errorTypeLabel, methodLabel, OTHER, statusLabel } from './labels.js';
export {
  type AttemptOutcome,
  createMeshMetrics,
  type MeshMetrics,
  type MeshMetricsOptions,
  type MetricLimits,
} from './metrics.js';
export { TracerSource } from './otel-api.js';
export {
  extractServerContext,
  type ServerSpan,
  type ServerSpanOptions,
  startServerSpan,
  withServerSpan,
} from './server.js';
export {
  type AdminProviders,
  checkTelemetry,
  createTelemetry,
  INSTRUMENTATION_SCOPE,
  type Telemetry,
  type TelemetryOptions,
} from './telemetry.js';
export {
  allResolved,
  createEventRing,
  describeEvent,
  type EndpointStatsLike,
  type EndpointView,
  type EventRing,
  type EventView,
  type ServiceStatsLike,
  type ServiceView,
  type ServiceViewSource,
  serviceView,
  type TargetView,
} from './views.js';
