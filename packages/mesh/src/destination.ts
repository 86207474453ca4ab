import type { ObservableBalancer } from '@proxyless/balancer';
import {
  callOf,
  composeInterceptors,
  type DispatchFn,
  type Disposable,
  type EndpointSet,
  type Filter,
  type Interceptor,
  MeshError,
  type MeshHandler,
  type Resolver,
  type ResolverUpdate,
  sameEndpointSet,
} from '@proxyless/core';
import type { TokenBucket } from '@proxyless/resilience';
import type { Dispatcher } from 'undici';
import type { DestinationDeps, DestinationPolicy } from './destination-deps.js';
import { EndpointPools } from './endpoint-pools.js';
import { FirstResolution } from './first-resolution.js';
import { createPickStage } from './pick.js';
import { RouteStacks } from './route-stacks.js';
import type { RouteOverrides } from './routing-targets.js';
import { buildStack } from './stack.js';
import { DestinationCalls } from './tracked-calls.js';

export type { DestinationDeps, DestinationPolicy } from './destination-deps.js';

/**
 * One logical destination service: its resolver watch, current endpoint set, balancer, policy
 * pipeline and one undici `Pool` per endpoint. The pipeline is composed when the policy is built,
 * never per request.
 */
export class Destination {
  readonly service: string;
  #deps: DestinationDeps;
  #watch: Disposable;
  #set: EndpointSet | undefined;
  #policy: DestinationPolicy;
  #dispatch: DispatchFn;
  #roles: readonly string[] = [];
  /** The stacks of the routes that send here with timeout or retry settings of their own. */
  readonly #routes: RouteStacks;
  readonly #pools: EndpointPools;
  /**
   * Set when the mesh evicted this destination (idle, or its service no longer named): callers
   * look it up again, and its calls in flight finish without it reporting any event.
   */
  evicted = false;
  /** Calls in flight through this destination (until their exchange ends). */
  inFlight = 0;
  /** Clock time of the latest call (for idle eviction). */
  lastUsed: number;
  /**
   * Calls accepted and not yet ended, by the stack they entered (a limit a reload turns on counts
   * the earlier ones): shutdown waits for them, and aborts them when it forces.
   */
  // Idle time counts from the end of the last exchange (a long stream is not evicted as it ends).
  readonly #calls = new DestinationCalls(() => (this.lastUsed = this.#deps.clock.now()));
  /** The registry's first answer for the service, which new calls wait for (bounded). */
  readonly #first: FirstResolution;
  /** `close()` or `destroy()` was called: new calls are refused with `MESH_CLOSED`. */
  #refusing = false;
  /** Watch, policy and pools are released: no update is applied and no pool is made any more. */
  #released = false;
  #closing: Promise<void> | undefined;
  #destroying: Promise<void> | undefined;
  /** Resolves when `destroy()` is called: a graceful close stops waiting then. */
  #forced: Promise<void>;
  #force!: () => void;
  #unsubscribe: () => void;

  constructor(service: string, resolver: Resolver, deps: DestinationDeps) {
    this.service = service;
    this.#deps = deps;
    this.#policy = deps.policy(service);
    this.#first = new FirstResolution(service, deps.clock, deps.resolveTimeoutMs);
    this.#unsubscribe = this.#policy.balancer.onEvent(deps.onBalancerEvent);
    this.#pools = new EndpointPools({
      service,
      connectionsPerEndpoint: deps.connectionsPerEndpoint,
      connectTimeoutMs: () => deps.connectTimeoutMs ?? this.#policy.connectTimeoutMs,
      ...(deps.poolEvent ? { poolEvent: deps.poolEvent } : {}),
      balancer: () => this.#policy.balancer,
      maxConnections: () => this.#policy.maxConnections,
      endpointCount: () => this.#set?.endpoints.length ?? 1,
      released: () => this.#released,
      // The registry may know where the endpoint went (a DNS name re-pointed): ask it again.
      connectFailed: () => resolver.refresh?.(service),
    });
    this.#dispatch = this.#compose();
    this.#routes = new RouteStacks(
      (route, base) => deps.routePolicy(service, route, base),
      (policy) => this.#compose(policy),
    );
    this.lastUsed = deps.clock.now();
    this.#forced = new Promise<void>((resolve) => {
      this.#force = resolve;
    });
    deps.onPolicy?.(this);
    this.#watch = resolver.watch(service, (u) => this.#onUpdate(u));
  }

  get endpointSet(): EndpointSet | undefined {
    return this.#set;
  }

  /** Endpoints a pick may choose outside panic (healthy, not ejected, reachable). */
  get usableEndpoints(): number {
    return this.#policy.balancer.usableCount;
  }

  /**
   * Run `fn` once the registry has answered (at once if it has), or when the resolve timeout is
   * over without an answer — whichever comes first; `fn` runs once. Returns the cancel of the wait.
   */
  whenResolved(fn: () => void): () => void {
    return this.#first.whenResolved(fn);
  }

  /** What a call gets when the registry gave no answer within the resolve timeout. */
  noAnswerError(): MeshError {
    return this.#first.noAnswerError();
  }

  /** Open connections of the pool of the endpoint `endpointId` (`undefined`: no pool yet). */
  connections(endpointId: string): number | undefined {
    const e = this.#set?.endpoints.find((x) => x.id === endpointId);
    return e === undefined ? undefined : this.#pools.connections(e);
  }

  get lastError(): MeshError | undefined {
    return this.#first.failure;
  }

  get policyKey(): string {
    return this.#policy.key;
  }

  /** The routing target's ID, for the destination of a service subset (`v2.web.default.default.dc1`). */
  get target(): string | undefined {
    return this.#deps.target;
  }

  get circuitBreakerState(): 'closed' | 'open' | 'half-open' | undefined {
    return this.#policy.circuitBreakerState();
  }

  get balancer(): ObservableBalancer {
    return this.#policy.balancer;
  }

  /** The rate limit's token bucket in force, when there is one. */
  get rateLimitBucket(): TokenBucket | undefined {
    return this.#policy.rateLimitBucket();
  }

  /**
   * State an idle eviction would forget, which must run out first: the circuit breaker is open
   * (until its `resetTimeout`), or an endpoint is ejected (until its readmission). A destination
   * built again would start with a closed breaker and every endpoint in, and so let through calls
   * this one refuses or keeps off the ejected endpoint. A half-open breaker has run its time: it
   * waits for a trial call, which the next destination's closed breaker lets through as well.
   */
  get holdsState(): boolean {
    if (this.#policy.circuitBreakerState() === 'open') return true;
    // An endpoint readmitted lately keeps its ejection multiplier (a next ejection lasts longer)
    // until outlier intervals have worn it down: that is state too.
    return this.#policy.balancer.stats().endpoints.some((e) => e.ejected || e.ejectionMultiplier > 0);
  }

  /** The roles of the stages in force, outermost first (the pick stage under them is not listed). */
  get roles(): readonly string[] {
    return this.#roles;
  }

  /**
   * Send one call (dispatch options carrying its context) through this destination's stack. Before
   * the first resolution the call waits (up to `resolveTimeoutMs`), with a controller of its own so
   * the caller can abort it. Every call is tracked until it ends, so that shutdown can wait for it
   * or abort it wherever it is (waiting for endpoints, in a backoff, on a pool).
   * @throws MeshError `MESH_CLOSED` once `close()` or `destroy()` has been called.
   */
  dispatch(opts: Dispatcher.DispatchOptions, handler: MeshHandler, route?: RouteOverrides): boolean {
    if (this.#refusing) throw closedError(this.service, 'the mesh is closed; no new call to');
    const call = this.#calls.enter(handler, callOf(opts));
    try {
      if (route !== undefined) return this.#routes.dispatchOf(route, this.#policy)(opts, call);
      return this.#dispatch(opts, call);
    } catch (error) {
      // The caller's handler gets this error from the call path; the call never started here.
      this.#calls.ended(call);
      throw error;
    }
  }

  /**
   * Track a call this destination is not sending (yet): the routing stage waiting for it to resolve
   * before choosing a failover target. Shutdown waits for it and aborts it as it does its own
   * calls; it ends when `handler`'s call ends. Give the call's events to the handler returned.
   * @throws MeshError `MESH_CLOSED` once `close()` or `destroy()` has been called.
   */
  track(handler: MeshHandler): MeshHandler {
    if (this.#refusing) throw closedError(this.service, 'the mesh is closed; no new call to');
    return this.#calls.track(handler);
  }

  /**
   * Run `fn` once no call accepted is in flight (waiting for endpoints, in a backoff, on a pool):
   * at once when none is, else as the last one ends — after its telemetry recorded it.
   */
  whenIdle(fn: () => void): void {
    this.#calls.whenIdle(fn);
  }

  /**
   * Apply a config change: only the parts of the policy it touches are built anew (the balancer,
   * single stages); the rest keep their instances and state, and so do the endpoint set and pools.
   * @returns what was built anew (empty: nothing changed, nothing was built or armed).
   */
  refreshPolicy(): readonly string[] {
    const old = this.#policy;
    // A stage built anew for this change (a limit or breaker turned on) counts the calls already
    // in flight through the stacks before it: they entered generations before the next one.
    const earlier = this.#calls.beforeNext();
    let next: DestinationPolicy;
    try {
      next = this.#deps.policy(this.service, old, earlier);
    } catch (error) {
      // Validated before the configuration was accepted; if it still fails, keep the policy in force.
      this.#deps.logger.error('policy rebuild failed; keeping the policy in force', {
        service: this.service,
        error,
      });
      return [];
    }
    if (next.key === old.key && next.rebuilt.length === 0) return [];
    this.#policy = next;
    if (next.balancer !== old.balancer) {
      this.#unsubscribe();
      this.#unsubscribe = next.balancer.onEvent(this.#deps.onBalancerEvent);
      if (this.#set) next.balancer.update(this.#set);
    }
    const sameStack =
      next.filters.length === old.filters.length && next.filters.every((f, i) => f === old.filters[i]);
    if (!sameStack) {
      this.#dispatch = this.#compose();
      this.#calls.advance();
      // The routes' stacks share stages of the old one: built again over the new one as used.
      this.#routes.drop();
    }
    old.retire(next);
    // A pool's `connections` and `connectTimeout` are fixed when it is made: pools made under the
    // old values are retired (their requests finish there), new ones follow the new values.
    const resized = this.#pools.resize();
    this.#deps.onPolicy?.(this);
    return resized ? [...next.rebuilt, 'connectionPools'] : next.rebuilt;
  }

  #compose(
    policy: { readonly roles: readonly string[]; readonly filters: readonly Filter[] } = this.#policy,
  ): DispatchFn {
    const pick = createPickStage(
      this.service,
      () => this.#policy.balancer,
      { pool: (e) => this.#pools.pool(e) },
      this.#deps.clock,
      this.#deps.target,
    );
    const stages = new Map<string, Interceptor>();
    policy.roles.forEach((role, i) => {
      stages.set(role, policy.filters[i] as Interceptor);
    });
    const stack = buildStack({ policy: stages, telemetry: this.#deps.telemetry });
    if (policy === this.#policy) this.#roles = stack.roles;
    // The wait for the first resolution sits right under the call's telemetry, which so sees the
    // whole call: its duration counts the wait, and a call that fails or is aborted there is
    // recorded (metrics, span, access log) like any other.
    const interceptors = [...stack.interceptors];
    interceptors.splice(stack.roles[0] === 'telemetry' ? 1 : 0, 0, this.#readyStage);
    return composeInterceptors(interceptors, pick);
  }

  /** Before the registry's first answer, a call waits here (see {@link FirstResolution.wait}). */
  readonly #readyStage: Interceptor = (next) => (opts, handler) => {
    if (this.#first.ready) return next(opts, handler);
    this.#first.wait(opts, handler as MeshHandler, next);
    return true;
  };

  #onUpdate(update: ResolverUpdate): void {
    // While a graceful close drains, updates still apply: a call waiting for the first answer may
    // still be served, and a retry goes to the endpoints of the day.
    if (this.#released) return;
    // Taken out of the table because no registry names its service any more: the calls it
    // accepted (queued, in a backoff or an injected delay) finish on the last set it had. The
    // empty set a source now gives for the service it dropped is no answer for them.
    if (
      this.evicted &&
      this.#set !== undefined &&
      update.kind === 'endpoints' &&
      update.set.endpoints.length === 0
    )
      return;
    if (update.kind === 'endpoints') {
      this.#first.failure = undefined;
      this.#apply(update.set);
    } else {
      this.#first.failure = update.error;
      this.#deps.onResolverError(this.service, update.error);
      // Keep routing on the last known set (marked stale); never empty a working set on a failure.
      // A failure before any answer is not an answer: calls keep waiting for one (the resolver
      // retries), up to the resolve timeout, and are never told "no endpoints" by an error —
      // unless the registry did answer, with a payload that was refused: that is final until
      // the registry changes, so the calls fail now with it.
      if (!update.lastGood) {
        // A payload refused, a request the registry refused as misconfigured (CONSUL_NAMESPACE
        // against Consul CE answers 400), or credentials it refused (a wrong ACL token or etcd
        // password): final until the registry or the configuration changes (the resolver keeps
        // trying, and its first answer releases the calls again).
        if (
          update.error.details.reason === 'access_denied' ||
          MeshError.is(update.error, ['MESH_REGISTRY_PAYLOAD_INVALID', 'MESH_CONFIG_INVALID'])
        )
          this.#first.refusedAnswer();
        return;
      }
      this.#apply(update.lastGood);
    }
    this.#first.markReady();
  }

  #apply(set: EndpointSet): void {
    const prev = this.#set;
    this.#set = set;
    this.#policy.balancer.update(set);
    this.#pools.keepOnly(set.endpoints);
    // A registry failing again hands over the same stale set each time: no change to report.
    if (prev !== undefined && sameEndpointSet(prev, set)) return;
    this.#deps.onSetChange(this.service, set);
  }

  /**
   * Graceful: refuse new calls at once, let the calls accepted finish (a call still waiting for
   * the first resolution may yet be served, a retry may still be sent), then stop the watch and
   * the policy timers and close every pool, retired ones too. When `deadline` resolves first,
   * what is left is destroyed (see {@link destroy}). Later calls get the same promise.
   */
  close(deadline?: Promise<unknown>): Promise<void> {
    if (this.#closing === undefined) {
      this.#closing = this.#drain(deadline);
      return this.#closing;
    }
    // Already draining (the mesh retired it) with no deadline or another one: this one cuts it too.
    if (deadline !== undefined && this.#destroying === undefined) {
      const closing = this.#closing;
      let settled = false;
      void closing.finally(() => {
        settled = true;
      });
      void deadline.then(() => {
        if (!settled) void this.destroy(deadlineError(this.service));
      });
    }
    return this.#closing;
  }

  async #drain(deadline: Promise<unknown> | undefined): Promise<void> {
    this.#refusing = true;
    const cut = (deadline === undefined ? this.#forced : Promise.race([deadline, this.#forced])).then(
      () => 'cut' as const,
    );
    if (this.#calls.size > 0) {
      const idle = new Promise<'idle'>((resolve) => this.#calls.whenIdle(() => resolve('idle')));
      const outcome = await Promise.race([idle, cut]);
      if (outcome === 'cut') return this.destroy(deadlineError(this.service));
    }
    if (this.#destroying) return this.#destroying;
    this.#release();
    const pools = this.#pools.take();
    const closed = Promise.all(pools.map((p) => p.close().catch(() => p.destroy()))).then(
      () => 'closed' as const,
    );
    if ((await Promise.race([closed, cut])) === 'cut') await this.destroy(deadlineError(this.service));
  }

  /**
   * Immediate: refuse new calls, abort every call accepted — wherever it is: waiting for the first
   * resolution, in a backoff, on a pool, retired or not — with `MESH_CLOSED` (or `reason`), and
   * destroy every pool. Also ends a graceful close in progress.
   */
  destroy(reason?: Error): Promise<void> {
    if (this.#destroying) return this.#destroying;
    this.#refusing = true;
    const error = reason ?? closedError(this.service, 'the mesh was destroyed while a call was in flight to');
    // The calls first, so callers see the abort reason (an abort is never retried or charged to the
    // endpoint), then the pools, for anything an abort did not reach.
    this.#calls.abortAll(error);
    this.#release();
    const pools = this.#pools.take();
    this.#force();
    this.#destroying = Promise.all(pools.map((p) => p.destroy().catch(() => undefined))).then(
      () => undefined,
    );
    return this.#destroying;
  }

  /** Stop the watch, the balancer's events and the policy's timers (once). */
  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#watch.dispose();
    this.#unsubscribe();
    this.#routes.drop();
    this.#policy.close();
  }
}

/** `MESH_CLOSED` for a call to `service`, in the mesh's words. */
export function closedError(service: string, what: string): MeshError {
  return new MeshError('MESH_CLOSED', `${what} "${service}"`, { details: { service } });
}

function deadlineError(service: string): MeshError {
  return closedError(service, 'the close deadline passed while a call was in flight to');
}
