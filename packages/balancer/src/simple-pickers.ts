/**
 * The load-oblivious pickers: `round_robin`, `random` and `weighted_round_robin` spread picks by
 * position, chance or weight, without reading in-flight load, latency or the request.
 */
import type { Random } from '@proxyless/core';
import type { IntRandom, PickerHost, StatePicker } from './picker-host.js';
import type { EndpointState } from './state.js';

/**
 * Each endpoint in turn, starting at a random offset: `round_robin` over endpoints of one weight
 * (with weights that differ, or slow start, `round_robin` is a {@link WeightedRoundRobinPicker}).
 */
export class RoundRobinPicker implements StatePicker {
  readonly #states: readonly EndpointState[];
  #next: number;
  constructor(states: readonly EndpointState[], random: Random) {
    this.#states = states;
    this.#next = Math.floor(random.next() * states.length);
  }
  pick(): EndpointState {
    if (this.#next >= this.#states.length) this.#next = 0;
    return this.#states[this.#next++] as EndpointState;
  }
}

/** Uniformly random; weights are ignored. */
export class RandomPicker implements StatePicker {
  readonly #states: readonly EndpointState[];
  readonly #ints: IntRandom;
  constructor(states: readonly EndpointState[], ints: IntRandom) {
    this.#states = states;
    this.#ints = ints;
  }
  pick(): EndpointState {
    return this.#states[this.#ints.int(this.#states.length)] as EndpointState;
  }
}

/**
 * Smooth weighted round robin as an earliest-deadline-first schedule (Envoy's EDF): each endpoint
 * is due every `1 / weight`; the earliest due is picked and rescheduled. O(log n) per pick, exact
 * proportions, interleaved rather than bursty. Weights are re-read at every pick, so slow start
 * ramps apply. Endpoints of weight 0 are skipped unless every weight is 0 (then all count as 1).
 */
export class WeightedRoundRobinPicker implements StatePicker {
  readonly #states: readonly EndpointState[];
  readonly #host: PickerHost;
  /** Heap of endpoint positions, ordered by (deadline, position); `#keys` is in heap order too. */
  readonly #heap: Int32Array;
  readonly #keys: Float64Array;
  readonly #size: number;
  readonly #uniform: boolean;
  /** Without slow start, weights are fixed: their inverses are computed once. */
  readonly #step: Float64Array | undefined;
  /** `least_request` with weights: each endpoint's weight divided by its requests in flight + 1. */
  readonly #byLoad: boolean;

  /**
   * @param byLoad Envoy's `LEAST_REQUEST` once weights differ: the schedule's weight of an endpoint
   * is its weight / (in-flight + 1), read as it is rescheduled.
   */
  constructor(states: readonly EndpointState[], host: PickerHost, byLoad = false) {
    this.#states = states;
    this.#host = host;
    this.#byLoad = byLoad;
    const n = states.length;
    const now = host.now();
    let positive = 0;
    for (const s of states) if (host.effectiveWeight(s, now) > 0) positive++;
    this.#uniform = positive === 0;
    const size = this.#uniform ? n : positive;
    this.#heap = new Int32Array(size);
    this.#keys = new Float64Array(size);
    this.#step = host.config.slowStart || byLoad ? undefined : new Float64Array(n);
    let k = 0;
    for (let i = 0; i < n; i++) {
      const w = this.#uniform ? 1 : host.effectiveWeight(states[i] as EndpointState, now);
      if (w <= 0) continue;
      if (this.#step) this.#step[i] = 1 / w;
      this.#heap[k] = i;
      this.#keys[k] = host.random.next() / w;
      k++;
    }
    this.#size = k;
    for (let i = (k >> 1) - 1; i >= 0; i--) this.#down(i, this.#heap[i] as number, this.#keys[i] as number);
  }

  /** Place (`item`, `key`) at or below slot `i`. */
  #down(i: number, item: number, key: number): void {
    const heap = this.#heap;
    const keys = this.#keys;
    const size = this.#size;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= size) break;
      let c = l;
      let ck = keys[l] as number;
      const r = l + 1;
      if (r < size) {
        const rk = keys[r] as number;
        if (rk < ck || (rk === ck && (heap[r] as number) < (heap[l] as number))) {
          c = r;
          ck = rk;
        }
      }
      if (ck > key || (ck === key && (heap[c] as number) > item)) break;
      heap[i] = heap[c] as number;
      keys[i] = ck;
      i = c;
    }
    heap[i] = item;
    keys[i] = key;
  }

  pick(): EndpointState {
    const top = this.#heap[0] as number;
    let step: number;
    if (this.#step) step = this.#step[top] as number;
    else {
      const s = this.#states[top] as EndpointState;
      const w = this.#uniform ? 1 : this.#host.effectiveWeight(s, this.#host.now());
      // Slow start has a floor above 0 unless configured to 0; never stall on a zero weight.
      step = 1 / (w > 0 ? w : 1e-9);
      if (this.#byLoad) step *= s.inflight + 1;
    }
    this.#down(0, top, (this.#keys[0] as number) + step);
    return this.#states[top] as EndpointState;
  }
}
