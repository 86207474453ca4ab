/**
 * A balancer's endpoints: their states carried across endpoint-set updates, and which of them take
 * traffic — the reachable ones, the usable among them, and panic mode and zone locality choosing
 * between them.
 */
import type { Endpoint } from '@proxyless/core';
import type { LoadBalancerConfig } from './config.js';
import { EndpointState } from './state.js';

/** The endpoint states of one update: by id, and in set order. */
export interface MergedStates {
  readonly byId: Map<string, EndpointState>;
  readonly states: EndpointState[];
}

/**
 * The states of `endpoints` (the first of each id), reusing and refreshing those in `previous`;
 * endpoints not seen before get a new state that joined at `addedAt`.
 */
export function mergeStates(
  previous: ReadonlyMap<string, EndpointState>,
  endpoints: readonly Endpoint[],
  addedAt: number,
  /** The clock time now (an endpoint's unmeasured latency estimate decays from it). */
  now = 0,
): MergedStates {
  const next = new Map<string, EndpointState>();
  const states: EndpointState[] = [];
  for (const e of endpoints) {
    if (next.has(e.id)) continue;
    let s = previous.get(e.id);
    if (s) {
      s.endpoint = e;
      s.weight = e.weight;
    } else s = new EndpointState(e, addedAt, now);
    s.index = states.length;
    states.push(s);
    next.set(e.id, s);
  }
  return { byId: next, states };
}

/** The endpoints a balancer picks from, and the modes that chose them. */
export interface ActiveSet {
  /** Every usable endpoint (all zones), for retries when the local zone has nothing else. */
  readonly usable: EndpointState[];
  /** The endpoints to pick from. */
  readonly active: EndpointState[];
  /** Reachable endpoints. */
  readonly total: number;
  /** Too few reachable endpoints are usable: balance over all reachable ones. */
  readonly panic: boolean;
  /** Traffic stays in the configured zone. */
  readonly local: boolean;
  /** Reachable endpoints in the configured zone; 0 without a zone and in panic mode. */
  readonly inZone: number;
}

/** Choose the endpoints of `states` to pick from (health, ejection, reachability, locality, panic). */
export function selectActive(states: readonly EndpointState[], config: LoadBalancerConfig): ActiveSet {
  // An endpoint whose connect failed cannot take traffic in any mode (not even panic): it is left
  // out of every figure below, as if it were not in the set until a connection succeeds again.
  const all = states.filter((s) => s.reachable);
  const usable = all.filter((s) => s.usable);
  const total = all.length;
  const panic = total > 0 && (usable.length * 100) / total < config.panicThreshold;
  let active = usable;
  let local = false;
  let inZoneCount = 0;
  const zone = config.zone;
  if (panic) {
    active = all;
  } else if (zone !== undefined) {
    const inZone = all.filter((s) => s.endpoint.zone === zone);
    const usableInZone = usable.filter((s) => s.endpoint.zone === zone);
    if (
      usableInZone.length > 0 &&
      (usableInZone.length * 100) / inZone.length >= config.localityMinHealthyPercent
    ) {
      active = usableInZone;
      local = true;
    }
    inZoneCount = inZone.length;
  }
  return { usable, active, total, panic, local, inZone: inZoneCount };
}
