/**
 * The stacks of the routes that send to one destination with timeout or retry settings of their
 * own (Consul's `RequestTimeout`, `NumRetries`, `RetryOn…`): each is the route's deadline and
 * retry stages over the destination's same instances of every other stage, composed once per
 * route and policy — Envoy's route settings over the one cluster the route names.
 */
import type { DispatchFn } from '@proxyless/core';
import type { DestinationPolicy } from './destination.js';
import type { RoutePolicy } from './policy.js';
import type { RouteOverrides } from './routing-targets.js';

/** The route stacks a destination keeps (one per distinct set of route settings in use). */
const MAX_ROUTES = 64;

export class RouteStacks {
  readonly #build: (route: RouteOverrides, base: DestinationPolicy) => RoutePolicy;
  readonly #compose: (policy: RoutePolicy) => DispatchFn;
  readonly #stacks = new Map<string, { policy: RoutePolicy; dispatch: DispatchFn }>();

  constructor(
    build: (route: RouteOverrides, base: DestinationPolicy) => RoutePolicy,
    compose: (policy: RoutePolicy) => DispatchFn,
  ) {
    this.#build = build;
    this.#compose = compose;
  }

  /**
   * The stack of `route`'s settings over `base` (the destination's policy in force), built at the
   * route's first call. At most {@link MAX_ROUTES} are kept; past that, the ones kept are dropped
   * and built again as used.
   */
  dispatchOf(route: RouteOverrides, base: DestinationPolicy): DispatchFn {
    const kept = this.#stacks.get(route.key);
    if (kept !== undefined) return kept.dispatch;
    const policy = this.#build(route, base);
    if (this.#stacks.size >= MAX_ROUTES) this.drop();
    const dispatch = this.#compose(policy);
    this.#stacks.set(route.key, { policy, dispatch });
    return dispatch;
  }

  /**
   * Release every route's own stages (calls in flight through them finish there): the policy they
   * were built over was replaced, or the destination is released.
   */
  drop(): void {
    for (const r of this.#stacks.values()) r.policy.close();
    this.#stacks.clear();
  }
}
