/**
 * `proxyless/testing` — the one import a service needs to test its use of the mesh: virtual time,
 * seeded randomness, scripted upstreams, call records and {@link runPolicy}, so policies can be
 * unit-tested with no sockets and no real time. Only `proxyless` has to be installed.
 *
 * @example
 * import { runPolicy } from 'proxyless/testing';
 * const rec = await runPolicy({ retry: { maxRetries: 2 } }, ['503', '503', 200]);
 * rec.attempts.map((a) => a.outcome); // [503, 503, 200]
 */
import {
  type BalancerEvent,
  type ConnectProbe,
  createBalancer,
  type HealthProbe,
  type ObservableBalancer,
  parseBalancerPatch,
  resolveBalancerConfig,
} from '@proxyless/balancer';
import {
  type AttemptOutcome,
  type CallContext,
  createEndpoint,
  createEndpointSet,
  type Endpoint,
  Issues,
  noopLogger,
  type Random,
} from '@proxyless/core';
import { type ScriptStep, seededRandom, testContext, VirtualClock } from '@proxyless/core/testing';
import { parseEndpointList } from '@proxyless/discovery';
import {
  checkRunPolicyArguments,
  isPolicyDocument,
  type PolicyInput,
  type PolicyRecord,
  type RunPolicyOptions,
  runPolicy as resilienceRunPolicy,
} from '@proxyless/resilience/testing';
import type { PolicyOptions, ServiceOptions } from './api.js';
import { unknownPolicyKeys } from './config/layers.js';

export type {
  BalancerEvent,
  BalancerStats,
  ConnectProbe,
  HealthProbe,
  ObservableBalancer,
} from '@proxyless/balancer';
export type { AttemptOutcome, CallContext, Endpoint, MeshRequest } from '@proxyless/core';
/** The issue list `parseResiliencePatch` records into (`throwIfAny` turns it into `MESH_CONFIG_INVALID`). */
export { Issues } from '@proxyless/core';
export {
  flushPromises,
  type Random,
  recordingObserver,
  type ScriptedCall,
  type ScriptedUpstream,
  type ScriptStep,
  scriptedUpstream,
  seededRandom,
  type TestContextOptions,
  testContext,
  testEndpoints,
  VirtualClock,
  type VirtualClockOptions,
} from '@proxyless/core/testing';
export { type ManualResolver, manualResolver } from '@proxyless/discovery/testing';
// Every single-policy filter of docs/policies.md "Using a policy alone", so a project that installs
// only `proxyless` can compose them itself.
export {
  createCircuitBreakerFilter,
  createConcurrencyLimitFilter,
  createDeadlineFilter,
  createFaultInjectionFilter,
  createHedgeFilter,
  createPerTryTimeoutFilter,
  createPolicyStack,
  createRateLimitFilter,
  createRetryFilter,
  DestinationBreaker,
  type PolicyStack,
  parseResiliencePatch,
  type ResilienceConfig,
  type ResiliencePatch,
  resolveResilienceConfig,
  withPolicies,
} from '@proxyless/resilience';
export {
  type AttemptRecord,
  type PolicyInput,
  type PolicyRecord,
  type RunPolicyOptions,
  recordAttempts,
} from '@proxyless/resilience/testing';
export { type TestRouteRequest, type TestRouteResult, testRoute } from './testing-routing.js';

/**
 * {@link resilienceRunPolicy | runPolicy} of `@proxyless/resilience/testing`, with the whole service
 * entry validated as `createMesh` validates it: the balancer sections (`loadBalancer`,
 * `outlierDetection`, `healthCheck`) too, though one call through the policy stack does not use them.
 *
 * @throws MeshError `MESH_CONFIG_INVALID` naming each bad field and value.
 * @example
 * const rec = await runPolicy({ retry: { maxRetries: 2 } }, ['503', '503', 200]);
 */
export async function runPolicy(
  config: PolicyInput<
    Pick<ServiceOptions, 'endpoints' | 'loadBalancer' | 'outlierDetection' | 'healthCheck'>
  >,
  script: readonly ScriptStep[],
  options?: RunPolicyOptions,
): Promise<PolicyRecord> {
  checkRunPolicyArguments(config, script, options);
  if (isPolicyDocument(config)) {
    const issues = new Issues();
    // Unknown keys against every section of a service entry (the suggestion and the list of known
    // keys then name the balancer's sections too), as createMesh reports them.
    // `endpoints` is a key of a service entry too (the scripted upstream answers in their place):
    // accepted, and checked as createMesh checks it.
    const entry = config as Record<string, unknown>;
    unknownPolicyKeys(entry, 'policy', issues, true);
    if (entry.endpoints !== undefined) parseEndpointList(entry.endpoints, 'policy.endpoints', issues);
    parseBalancerPatch(entry, 'policy', issues);
    issues.throwIfAny('runPolicy: invalid policy');
  }
  return resilienceRunPolicy(config, script, options);
}
// `proxyless/testing` bundles the resilience package's `runPolicy` too, and a bundler renames one of
// two top-level functions of one name (`runPolicy2`): stack traces and `runPolicy.name` read this.
Object.defineProperty(runPolicy, 'name', { value: 'runPolicy' });

const TEST_BALANCER_OPTIONS: readonly string[] = ['clock', 'random', 'service', 'probe', 'connectProbe'];

/** Options of {@link testBalancer}. */
export interface TestBalancerOptions {
  /** @defaultValue a new {@link VirtualClock} */
  clock?: VirtualClock;
  /** @defaultValue `seededRandom(1)` */
  random?: Random;
  /** @defaultValue `'api'` */
  service?: string;
  /**
   * The active health check's probe (`healthCheck`): whether `endpoint` answered `path` healthy.
   * @defaultValue every probe healthy (no request is sent)
   */
  probe?: HealthProbe;
  /**
   * The reconnect probe of an endpoint whose connect failed (`TRANSIENT_FAILURE`): resolves when
   * it connects, rejects when it does not.
   * @defaultValue every reconnect succeeds (no socket is opened)
   */
  connectProbe?: ConnectProbe;
}

/** A service's load balancer and outlier detection, alone, on virtual time: see {@link testBalancer}. */
export interface TestBalancer {
  /** The balancer the mesh would build for the entry (its `stats()` says what it sees). */
  readonly balancer: ObservableBalancer;
  readonly clock: VirtualClock;
  /** Its events so far: ejections, readmissions, panic, locality, health checks. */
  readonly events: BalancerEvent[];
  /** The endpoints it was given, in order. */
  readonly endpoints: readonly Endpoint[];
  /** One pick, as for a call's attempt (`ctx`: the call's context, a GET by default). */
  pick(ctx?: CallContext): Endpoint;
  /**
   * One attempt on `endpoint` from start to end, as the mesh reports it when the exchange ends:
   * in-flight and latency for the picker, the outcome for outlier detection.
   */
  attempt(endpoint: Endpoint, outcome: AttemptOutcome): void;
  /**
   * An attempt started on `endpoint` and still in flight (what `least_request` and `peak_ewma`
   * count); call the function it returns with the outcome when it ends.
   */
  start(endpoint: Endpoint): (outcome: AttemptOutcome) => void;
  /** Stop its timers (ejection and health-check timers). */
  close(): void;
}

/**
 * The load balancer and outlier detection of a service entry (`loadBalancer`, `outlierDetection`,
 * `healthCheck`, validated as `createMesh` validates them), built as the mesh builds them over
 * `endpoints`, on a {@link VirtualClock} and seeded randomness: which endpoint a policy picks, and
 * when one is ejected and readmitted, are tested with no sockets and no real time.
 *
 * @throws MeshError `MESH_CONFIG_INVALID` naming each bad field and value.
 * Health checks and reconnects run through `probe` and `connectProbe` (by default: healthy, and
 * connected), never through a socket.
 *
 * @example
 * const t = testBalancer({ outlierDetection: { consecutive5xx: 2 } }, '10.0.0.1:80,10.0.0.2:80');
 * const [a] = t.endpoints;
 * t.attempt(a, { status: 503, latencyMs: 1 });
 * t.attempt(a, { status: 503, latencyMs: 1 });
 * t.events.filter((e) => e.type === 'eject').length; // 1
 */
export function testBalancer(
  entry: Pick<PolicyOptions, 'loadBalancer' | 'outlierDetection' | 'healthCheck'>,
  endpoints: string | readonly (string | Endpoint)[],
  options: TestBalancerOptions = {},
): TestBalancer {
  const issues = new Issues();
  // A misspelt section (`outlierDetecton`) or option (`clok`) is named, as createMesh and
  // runPolicy name them, never silently left at its default.
  unknownPolicyKeys(entry as Record<string, unknown>, 'policy', issues, true);
  issues.unknownKeys(options as Record<string, unknown>, 'options', TEST_BALANCER_OPTIONS);
  const patch = parseBalancerPatch(entry as Record<string, unknown>, 'policy', issues);
  const list: Endpoint[] = [];
  const items = typeof endpoints === 'string' ? [endpoints] : endpoints;
  items.forEach((e, i) => {
    if (typeof e !== 'string') list.push(e);
    else
      for (const p of parseEndpointList(
        e,
        typeof endpoints === 'string' ? 'endpoints' : `endpoints[${i}]`,
        issues,
      ) ?? [])
        list.push(createEndpoint(p));
  });
  issues.throwIfAny('testBalancer: invalid policy');
  const clock = options.clock ?? new VirtualClock();
  const service = options.service ?? 'api';
  const balancer = createBalancer(resolveBalancerConfig(patch ?? {}), {
    service,
    clock,
    random: options.random ?? seededRandom(1),
    logger: noopLogger,
    // No sockets: health checks pass and reconnects succeed unless the test says otherwise.
    probe: options.probe ?? (() => Promise.resolve(true)),
    connectProbe: options.connectProbe ?? (() => Promise.resolve()),
  });
  const events: BalancerEvent[] = [];
  balancer.onEvent((e) => events.push(e));
  balancer.update(
    createEndpointSet({ service, version: 1, endpoints: list, source: 'test', updatedAt: clock.now() }),
  );
  return {
    balancer,
    clock,
    events,
    endpoints: list,
    pick: (ctx) => balancer.pick(ctx ?? testContext({ clock })),
    attempt(endpoint, outcome) {
      const token = balancer.onAttemptStart(endpoint);
      balancer.onAttemptEnd(endpoint, outcome, token);
    },
    start(endpoint) {
      const token = balancer.onAttemptStart(endpoint);
      let ended = false;
      return (outcome) => {
        if (ended) return;
        ended = true;
        balancer.onAttemptEnd(endpoint, outcome, token);
      };
    },
    close: () => balancer.close(),
  };
}
