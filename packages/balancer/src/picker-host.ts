/**
 * The picker contract: what a picker needs from its balancer ({@link PickerHost}), what it offers
 * ({@link StatePicker}), and the allocation-free integer randomness pickers draw from.
 */
import type { CallContext, Random } from '@proxyless/core';
import type { LoadBalancerConfig } from './config.js';
import type { EndpointState } from './state.js';

/**
 * xorshift32 with its state in a typed array, seeded once from the injected `Random`: integer
 * draws on the hot path without heap-allocated numbers. Deterministic when the seed source is.
 */
export class IntRandom {
  readonly #s = new Int32Array(1);
  constructor(seed: Random) {
    const v = Math.floor(seed.next() * 4294967296) | 0;
    this.#s[0] = v === 0 ? 0x2545f491 : v;
  }
  /** An integer in [0, n), for 1 ≤ n ≤ 2^31. */
  int(n: number): number {
    let x = this.#s[0] as number;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#s[0] = x;
    return (x >>> 0) % n;
  }
}

/** What a picker needs from its balancer. */
export interface PickerHost {
  readonly random: Random;
  /** Hot-path integer randomness, seeded from `random`. */
  readonly ints: IntRandom;
  readonly config: LoadBalancerConfig;
  now(): number;
  /**
   * The clock time of the latest attempt start/end or update: cheap to read (no clock call), used
   * to decay latency estimates on the pick path.
   */
  recentNow(): number;
  /** Weight after slow start (≥ 0). */
  effectiveWeight(state: EndpointState, now: number): number;
  /** Peak-EWMA latency of `state` decayed to `now`, ms (the default RTT when never measured). */
  latency(state: EndpointState, now: number): number;
}

/** A picker over a fixed, non-empty list of endpoint states. `pick` allocates nothing. */
export interface StatePicker {
  pick(ctx: CallContext): EndpointState;
}
