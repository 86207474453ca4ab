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
  type BalancerPatch,
  balancerEnvVars,
  balancerPatchFromEnv,
  DEFAULT_BALANCER_CONFIG,
  type FailurePercentageConfig,
  type HashOn,
  type HealthCheckConfig,
  LOAD_BALANCER_POLICIES,
  type LoadBalancerConfig,
  type LoadBalancerPatch,
  type LoadBalancerPolicy,
  type OutlierDetectionConfig,
  type OutlierDetectionPatch,
  parseBalancerPatch,
  resolveBalancerConfig,
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
} from './connectivity.js';
export { HealthChecker, type HealthCheckerDeps, type HealthProbe, httpHealthProbe } from './health-check.js';
export { pickWhenReady, shouldWaitForReady, WAIT_FOR_READY_ATTRIBUTE } from './wait-for-ready.js';
