/**
 * From a routing decision to endpoints: a target's subset of a service's endpoints (its bexpr
 * filter and health rule), and failover when the primary target has no usable endpoint.
 *
 * Health rule (consul-api.md §7, `OnlyPassing`): critical endpoints never belong to a target;
 * warning ones do unless the subset says `OnlyPassing`.
 */
import type { Endpoint } from '@proxyless/core';
import type { ChainTarget, RouteDecision } from './chain.js';

/** The endpoints of `target` among a service's endpoints, in their original order. */
export function filterSubset(endpoints: readonly Endpoint[], target: ChainTarget): Endpoint[] {
  const out: Endpoint[] = [];
  const p = target.predicate;
  for (const e of endpoints) {
    if (e.health === 'critical' || (target.onlyPassing && e.health === 'warning')) continue;
    if (p === undefined || p(e)) out.push(e);
  }
  return out;
}

const cache = new WeakMap<readonly Endpoint[], Map<string, readonly Endpoint[]>>();

/**
 * {@link filterSubset}, memoised per endpoint list (an `EndpointSet`'s `endpoints` is immutable
 * and replaced on change) and target ID: the hot path filters once per endpoint-set version.
 */
export function subsetOf(endpoints: readonly Endpoint[], target: ChainTarget): readonly Endpoint[] {
  let byTarget = cache.get(endpoints);
  if (!byTarget) {
    byTarget = new Map();
    cache.set(endpoints, byTarget);
  }
  let subset = byTarget.get(target.id);
  if (!subset) {
    subset = Object.freeze(filterSubset(endpoints, target));
    byTarget.set(target.id, subset);
  }
  return subset;
}

/** Where a request goes after failover. */
export interface TargetSelection {
  readonly target: ChainTarget;
  readonly endpoints: readonly Endpoint[];
  /** 0 for the primary target, n for the n-th failover target. */
  readonly failoverIndex: number;
}

/**
 * The decision's target when it has a usable endpoint, else the first failover target (in the
 * resolver's order) that has one, else the primary with none (the caller answers
 * `MESH_NO_ENDPOINTS`). Failover is decided before the request is sent, so no request fails
 * because a target is empty.
 *
 * @param endpointsOf the current endpoints of a service in a datacenter (`undefined`: unknown yet).
 * @param usable extra per-endpoint test (outlier ejection, open breaker); default all.
 */
export function selectTarget(
  decision: RouteDecision,
  endpointsOf: (service: string, datacenter: string) => readonly Endpoint[] | undefined,
  usable?: (endpoint: Endpoint, target: ChainTarget) => boolean,
): TargetSelection {
  const candidates = [decision.target, ...decision.resolver.failover];
  let primary: readonly Endpoint[] | undefined;
  for (let i = 0; i < candidates.length; i++) {
    const t = candidates[i]!;
    const all = endpointsOf(t.service, t.datacenter);
    const subset = all ? subsetOf(all, t) : [];
    if (i === 0) primary = subset;
    if (subset.length > 0 && (usable === undefined || subset.some((e) => usable(e, t)))) {
      return { target: t, endpoints: subset, failoverIndex: i };
    }
  }
  return { target: decision.target, endpoints: primary ?? [], failoverIndex: 0 };
}
