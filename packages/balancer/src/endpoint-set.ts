/**
 * A balancer's endpoints: their states carried across endpoint-set updates, and which of them take
 * traffic — the reachable ones, the usable among them, and panic mode and zone locality choosing
 * between them.
 */
import type { Endpoint } from '@proxyless/core';
import type { LoadBalancerConfig } from './config.js';
import { groupLevels, priorityLoads } from './priority.js';
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

/** One priority level that takes calls. */
export interface ActiveLevel {
  readonly priority: number;
  /** Share of calls (0–100). */
  readonly load: number;
  /** The level's endpoints to pick from. */
  readonly active: EndpointState[];
}

/** The share of calls of each priority level, in whole percent (for stats and events). */
export interface LevelLoad {
  readonly priority: number;
  readonly load: number;
}

/** The endpoints a balancer picks from, and the modes that chose them. */
export interface ActiveSet {
  /** Every usable endpoint (all zones, all levels), for retries when the chosen ones have nothing else. */
  readonly usable: EndpointState[];
  /** The endpoints to pick from (of every level that takes calls). */
  readonly active: EndpointState[];
  /** Reachable endpoints. */
  readonly total: number;
  /** Too few reachable endpoints are usable: balance over all reachable ones (of a level, or all). */
  readonly panic: boolean;
  /** Traffic stays in the configured zone. */
  readonly local: boolean;
  /** Reachable endpoints in the configured zone; 0 without a zone and in panic mode. */
  readonly inZone: number;
  /** The levels calls are shared between, when more than one takes calls; else `undefined`. */
  readonly levels: readonly ActiveLevel[] | undefined;
  /** Every level's share of calls, when the endpoints have more than one priority; else `undefined`. */
  readonly loads: readonly LevelLoad[] | undefined;
}

/** The endpoints of one level to pick from: the configured zone's, when it has enough usable ones. */
function zoned(
  all: EndpointState[],
  usable: EndpointState[],
  config: LoadBalancerConfig,
): { active: EndpointState[]; local: boolean; inZone: number } {
  const zone = config.zone;
  if (zone === undefined) return { active: usable, local: false, inZone: 0 };
  const inZone = all.filter((s) => s.endpoint.zone === zone);
  const usableInZone = usable.filter((s) => s.endpoint.zone === zone);
  const local =
    usableInZone.length > 0 &&
    (usableInZone.length * 100) / inZone.length >= config.localityMinHealthyPercent;
  return { active: local ? usableInZone : usable, local, inZone: inZone.length };
}

/**
 * Choose the endpoints of `states` to pick from (health, ejection, reachability, priority levels,
 * locality, panic).
 */
export function selectActive(states: readonly EndpointState[], config: LoadBalancerConfig): ActiveSet {
  // An endpoint whose connect failed cannot take traffic in any mode (not even panic): it is left
  // out of every figure below, as if it were not in the set until a connection succeeds again.
  const all = states.filter((s) => s.reachable);
  const usable = all.filter((s) => s.usable);
  const total = all.length;
  const groups = groupLevels(all);
  const priorities = levelsOf(states);
  if (groups.length > 1) return selectLevels(groups, all, usable, config, priorities);
  const panic = total > 0 && (usable.length * 100) / total < config.panicThreshold;
  const z = panic ? { active: all, local: false, inZone: 0 } : zoned(all, usable, config);
  // Endpoints of several priorities, all reachable ones of one: that level takes every call.
  const at = all[0]?.endpoint.priority ?? 0;
  const loads =
    priorities === undefined
      ? undefined
      : priorities.map((p) => ({ priority: p, load: p === at && z.active.length > 0 ? 100 : 0 }));
  return {
    usable,
    active: z.active,
    total,
    panic,
    local: z.local,
    inZone: z.inZone,
    levels: undefined,
    loads,
  };
}

/** The priorities of `states` in order, when there are more than one; else `undefined`. */
function levelsOf(states: readonly EndpointState[]): number[] | undefined {
  const groups = groupLevels(states);
  return groups.length > 1 ? groups.map((g) => g[0]?.endpoint.priority ?? 0) : undefined;
}

/** {@link selectActive} over endpoints of several priority levels (`groups`, in order). */
function selectLevels(
  groups: EndpointState[][],
  all: EndpointState[],
  usable: EndpointState[],
  config: LoadBalancerConfig,
  priorities: readonly number[] = [],
): ActiveSet {
  const total = all.length;
  const loads = priorityLoads(groups, config);
  /** Every priority of the set in whole percent, those with no reachable endpoint at 0. */
  const every = (given: readonly LevelLoad[]): LevelLoad[] =>
    priorities.map((p) => {
      const l = given.find((x) => x.priority === p);
      return { priority: p, load: l === undefined ? 0 : Math.round(l.load) };
    });
  if (loads === undefined) {
    // Total panic: every reachable endpoint of every level, each level's share by its size.
    return {
      usable,
      active: all,
      total,
      panic: true,
      local: false,
      inZone: 0,
      levels: undefined,
      loads: every(
        groups.map((g) => ({ priority: g[0]?.endpoint.priority ?? 0, load: (g.length * 100) / total })),
      ),
    };
  }
  const levels: ActiveLevel[] = [];
  let panic = false;
  let local = true;
  let inZone = 0;
  for (const l of loads) {
    if (l.load <= 0) continue;
    const z = l.panic ? { active: l.all, local: false, inZone: 0 } : zoned(l.all, l.usable, config);
    if (z.active.length === 0) continue;
    levels.push({ priority: l.priority, load: l.load, active: z.active });
    panic ||= l.panic;
    local &&= z.local;
    inZone += z.inZone;
  }
  return {
    usable,
    active: levels.length === 1 ? (levels[0] as ActiveLevel).active : levels.flatMap((l) => l.active),
    total,
    panic,
    local: levels.length > 0 && local,
    inZone,
    levels: levels.length > 1 ? levels : undefined,
    loads: every(loads.map((l) => ({ priority: l.priority, load: l.load }))),
  };
}
