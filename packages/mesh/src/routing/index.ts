/**
 * Traffic management: Consul's `service-router`, `service-splitter`, `service-resolver` and
 * `service-defaults` config entries, compiled into one routing model per service whatever the
 * source (file, etcd, or Consul's own compiled discovery chain), and the routing decision for a
 * request. Pure: no I/O, no timers; the mesh wires it in as a stage before the destination stack.
 */
export { type BexprNode, type BexprPredicate, type BexprTarget, compileBexpr, parseBexpr } from './bexpr.js';
export type {
  ChainNext,
  ChainRoute,
  ChainSplit,
  ChainTarget,
  HeaderOps,
  RetryOverride,
  RouteDecision,
  RoutingChain,
  TargetResolver,
} from './chain.js';
export { targetId } from './chain.js';
export {
  type CompileOptions,
  compileChain,
  compileRoutingConfig,
  DEFAULT_CONNECT_TIMEOUT_MS,
  L7_PROTOCOLS,
  protocolOf,
  type RoutingConfig,
} from './compile.js';
export { chainFromConsul } from './consul-chain.js';
export {
  CONFIG_ENTRY_KINDS,
  CONFIG_ENTRY_SCHEMAS,
  type ConfigEntry,
  type ConfigEntryKind,
  type Failover,
  type FailoverTarget,
  type HashPolicy,
  type HeaderMatch,
  type HeaderModifiers,
  type HttpMatch,
  type LoadBalancer,
  type QueryParamMatch,
  type Redirect,
  type RouteDestination,
  type ServiceDefaultsEntry,
  type ServiceResolverEntry,
  type ServiceRoute,
  type ServiceRouterEntry,
  type ServiceSplitterEntry,
  type Split,
  type Subset,
} from './entries.js';
export { type EntryIssue, goDurationMs } from './entry-issues.js';
export { ETCD_CONFIG_PREFIX, type EtcdKeyValue, entriesFromEtcd, etcdConfigKey } from './etcd-entries.js';
export { mapLoadBalancer, unsupportedHashPolicies } from './load-balancer.js';
export {
  applyHeaderOps,
  editRequestHeaders,
  type RouteRequest,
  rewritePath,
  route,
  routeRequestOf,
} from './router.js';
export { filterSubset, selectTarget, subsetOf, type TargetSelection } from './targets.js';
export { type ConfigEntrySet, validateConfigEntries, validateConfigEntry } from './validate.js';
