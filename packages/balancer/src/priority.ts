/**
 * Priority levels, as Envoy computes them: endpoints of priority 0 take the traffic, and each
 * further level (an SRV record's higher priority number, a backup site) takes only the share the
 * levels before it cannot, judged by their healthy share with Envoy's overprovisioning factor
 * (1.4): a level with 72 % or more of its endpoints usable still takes every call.
 */
import type { CallContext, Random } from '@proxyless/core';
import type { HashOn, LoadBalancerConfig } from './config.js';
import type { ActiveLevel, LevelLoad } from './endpoint-set.js';
import { HASH_OUT } from './hash.js';
import { requestHash } from './hash-pickers.js';
import type { StatePicker } from './picker-host.js';
import type { EndpointState } from './state.js';

/** Envoy's default `overprovisioning_factor` (140 %). */
export const OVERPROVISIONING = 1.4;

/** One priority level of a set. */
export interface PriorityLevel {
  readonly priority: number;
  /** Share of calls (0–100) the level takes. */
  readonly load: number;
  /** The level's reachable endpoints. */
  readonly all: EndpointState[];
  /** The level's usable endpoints (healthy, not ejected). */
  readonly usable: EndpointState[];
  /** The level balances over all its reachable endpoints: too few of them are usable. */
  readonly panic: boolean;
}

/** The levels of `reachable` states, lowest priority number first; one level when all share it. */
export function groupLevels(reachable: readonly EndpointState[]): EndpointState[][] {
  const first = reachable[0]?.endpoint.priority ?? 0;
  let single = true;
  for (const s of reachable) {
    if ((s.endpoint.priority ?? 0) !== first) {
      single = false;
      break;
    }
  }
  if (single) return [reachable as EndpointState[]];
  const by = new Map<number, EndpointState[]>();
  for (const s of reachable) {
    const p = s.endpoint.priority ?? 0;
    const list = by.get(p);
    if (list === undefined) by.set(p, [s]);
    else list.push(s);
  }
  return [...by.keys()].sort((a, b) => a - b).map((p) => by.get(p) as EndpointState[]);
}

/**
 * The load of each level (Envoy's `recalculatePerPriorityState` and `recalculatePerPriorityPanic`):
 * each level's healthy share, scaled by {@link OVERPROVISIONING} and capped at 100, takes calls in
 * order until 100 % is given out (scaled up when the levels together fall short). A level is in
 * panic (balances over all its reachable endpoints) only while the levels together fall short of
 * 100 % and its own healthy share is under `panicThreshold`. `undefined` in total panic — every
 * level in panic: then every reachable endpoint of every level takes calls, as Envoy spreads the
 * load by host count. With no usable endpoint and a `panicThreshold` of 0, no level takes any.
 */
export function priorityLoads(
  levels: readonly EndpointState[][],
  config: LoadBalancerConfig,
): PriorityLevel[] | undefined {
  const health: number[] = [];
  const usables: EndpointState[][] = [];
  let total = 0;
  for (const all of levels) {
    const usable = all.filter((s) => s.usable);
    usables.push(usable);
    const h = all.length === 0 ? 0 : Math.min(100, ((usable.length * 100) / all.length) * OVERPROVISIONING);
    health.push(h);
    total += h;
  }
  const normalized = Math.min(100, total);
  const threshold = Math.min(100, config.panicThreshold);
  if (normalized === 0 && threshold === 0) return [];
  let remaining = 100;
  let totalPanic = true;
  const out = levels.map((all, i): PriorityLevel => {
    const load = normalized === 0 ? 0 : Math.min(remaining, ((health[i] as number) * 100) / normalized);
    remaining -= load;
    const usable = usables[i] as EndpointState[];
    const panic = normalized < 100 && (usable.length * 100) / all.length < threshold;
    totalPanic &&= panic;
    return { priority: all[0]?.endpoint.priority ?? 0, load, all, usable, panic };
  });
  return totalPanic ? undefined : out;
}

/** A priority level calls are shared with: its picker, its endpoints, and its share's upper bound. */
export interface PickLevel {
  /** The cumulative share (0–100) of the levels up to and including this one. */
  readonly upTo: number;
  readonly picker: StatePicker;
  readonly active: EndpointState[];
}

/** A picker for each level that takes calls, with the cumulative shares {@link chooseLevel} draws on. */
export function pickLevels(
  levels: readonly ActiveLevel[],
  build: (states: EndpointState[]) => StatePicker,
): PickLevel[] {
  let upTo = 0;
  return levels.map((l) => {
    upTo += l.load;
    return { upTo, picker: build(l.active), active: l.active };
  });
}

/**
 * The level a call goes to, by the levels' shares: at random, or by the call's hash key when
 * `byHash` is the policy's `hashOn` (`ring_hash` and `maglev`; Envoy chooses the level by the hash
 * too), so a key stays with one level while the shares hold.
 */
export function chooseLevel(
  levels: readonly PickLevel[],
  ctx: CallContext,
  byHash: HashOn | undefined | false,
  random: Random,
): PickLevel {
  const at =
    byHash !== false && requestHash(ctx, byHash)
      ? ((HASH_OUT[0] as number) % 10_000) / 100
      : random.next() * 100;
  for (const level of levels) if (at < level.upTo) return level;
  return levels[levels.length - 1] as PickLevel;
}

/**
 * Whether the levels' shares (whole percent) changed: a first set that starts spilled over to a
 * later level counts; one that starts on the first level does not.
 */
export function loadsChanged(
  before: readonly LevelLoad[] | undefined,
  after: readonly LevelLoad[] | undefined,
): boolean {
  if (after === undefined) return false;
  if (before === undefined) return after.some((l, i) => i > 0 && l.load > 0);
  return (
    before.length !== after.length ||
    before.some((b, i) => b.priority !== after[i]?.priority || b.load !== after[i]?.load)
  );
}
