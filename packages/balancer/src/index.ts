/**
 * `@proxyless/balancer`: load balancing for the proxyless mesh — pickers, locality, slow start,
 * panic mode, outlier detection and active health checks.
 */
export {
  type BalancerDeps,
  type BalancerEvent,
  type BalancerSettings,
  type BalancerStats,
  createBalancer,
  type EndpointStats,
  type ObservableBalancer,
} from './balancer.js';
export {
  BALANCER_CONFIG_KEYS,
  type BalancerConfig,
  type BalancerOptions,
  type BalancerPatch,
  balancerEnvVars,
  balancerPatchFromEnv,
  balancerPatchOf,
  balancerProperties,
  balancerSchema,
  DEFAULT_BALANCER_CONFIG,
  DEFAULT_HEALTH_CHECK,
  DEFAULT_LOAD_BALANCER,
  DEFAULT_OUTLIER_DETECTION,
  DEFAULT_SLOW_START,
  type FailurePercentageConfig,
  type HashOn,
  type HealthCheckConfig,
  type HealthCheckOptions,
  type HealthCheckPatch,
  healthCheckSection,
  LOAD_BALANCER_POLICIES,
  type LoadBalancerConfig,
  type LoadBalancerOptions,
  type LoadBalancerPatch,
  type LoadBalancerPolicy,
  loadBalancerSection,
  type OutlierDetectionConfig,
  type OutlierDetectionOptions,
  type OutlierDetectionPatch,
  outlierDetectionSection,
  parseBalancerPatch,
  resolveBalancerConfig,
  resolveBalancerPatches,
  type SlowStartConfig,
  type SuccessRateConfig,
} from './config.js';
export { tcpConnectProbe } from './connect-probe.js';
export {
  type ConnectBackoffConfig,
  type ConnectivitySettings,
  type ConnectivityState,
  type ConnectProbe,
  DEFAULT_CONNECT_BACKOFF,
  GRPC_CONNECT_BACKOFF,
} from './connectivity.js';
export { HealthChecker, type HealthCheckerDeps, type HealthProbe, httpHealthProbe } from './health-check.js';
export { HealthCheckHub, type HealthCheckHubDeps, type HealthCheckLease } from './health-check-hub.js';
export { pickWhenReady, shouldWaitForReady, WAIT_FOR_READY_ATTRIBUTE } from './wait-for-ready.js';
