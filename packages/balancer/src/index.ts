/**
 * `@proxyless/balancer`: load balancing for the proxyless mesh — pickers, locality, slow start,
 * panic mode, outlier detection and active health checks.
 */
export {
  type BalancerDeps,
  type BalancerEvent,
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
export { HealthChecker, type HealthCheckerDeps, type HealthProbe, httpHealthProbe } from './health-check.js';
