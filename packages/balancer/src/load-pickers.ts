/**
 * The load-aware picker: power of choices over in-flight requests (`least_request`), weighted by
 * peak-EWMA latency for `peak_ewma`.
 */
import type { PickerHost, StatePicker } from './picker-host.js';
import type { EndpointState } from './state.js';

/**
 * Power of `choiceCount` choices. `least_request` (every endpoint of the same weight): cost =
 * in-flight + 1. `peak_ewma` (Finagle/Linkerd): cost = peak-EWMA latency × (in-flight + 1), with
 * the default RTT (decaying) for endpoints never measured. The cheapest candidate wins, the first
 * drawn on a tie.
 *
 * Weighted (`peak_ewma` with weights that differ, or slow start): candidates are drawn in
 * proportion to their effective weight, and compared by the same cost. While nothing is in flight
 * and latencies are alike, each endpoint gets its weight's share; dividing the cost by the weight
 * instead gave a lighter (or ramping) endpoint nothing at low load.
 */
export class P2CPicker implements StatePicker {
  readonly #states: readonly EndpointState[];
  readonly #host: PickerHost;
  readonly #ewma: boolean;
  readonly #choices: number;
  /** 0: no time needed; 1: the recent time is enough (EWMA decay); 2: read the clock (slow start). */
  readonly #timeMode: number;
  /** The candidates drawn for one pick, when `choiceCount` is above 2 (reused, not allocated per pick). */
  readonly #drawn: Int32Array;
  /** Candidates drawn in proportion to their effective weight (see the class). */
  readonly #weighted: boolean;
  /** The largest weight: a draw of weight w is kept with probability w / this. */
  readonly #maxWeight: number;

  constructor(states: readonly EndpointState[], host: PickerHost, ewma: boolean, weighted = false) {
    this.#states = states;
    this.#host = host;
    this.#ewma = ewma;
    this.#choices = host.config.choiceCount;
    this.#timeMode = host.config.slowStart !== undefined ? 2 : ewma ? 1 : 0;
    this.#drawn = new Int32Array(Math.max(0, this.#choices));
    let max = 0;
    for (const s of states) max = Math.max(max, s.weight);
    this.#weighted = weighted && max > 0;
    this.#maxWeight = max;
  }

  #cost(s: EndpointState, now: number): number {
    const load = s.inflight + 1;
    const cost = this.#ewma ? this.#host.latency(s, now) * load : load;
    // A weight of 0 is never picked over another endpoint (as before: it is drained).
    return this.#host.effectiveWeight(s, now) > 0 ? cost : Number.POSITIVE_INFINITY;
  }

  /** An index drawn in proportion to effective weight (rejection sampling, bounded). */
  #weightedIndex(now: number): number {
    const ints = this.#host.ints;
    const states = this.#states;
    const n = states.length;
    const max = this.#maxWeight;
    const random = this.#host.random;
    let i = ints.int(n);
    // Expected draws: max / mean weight (10 at most under slow start's default floor of 10 %).
    for (let k = 0; k < 64; k++) {
      if (this.#host.effectiveWeight(states[i] as EndpointState, now) >= max * random.next()) return i;
      i = ints.int(n);
    }
    return i;
  }

  pick(): EndpointState {
    const states = this.#states;
    const n = states.length;
    if (n === 1) return states[0] as EndpointState;
    const mode = this.#timeMode;
    const now = mode === 0 ? 0 : mode === 1 ? this.#host.recentNow() : this.#host.now();
    if (this.#weighted) return this.#cheapestOf(this.#weightedIndex(now), Math.min(this.#choices, n), now);
    const ints = this.#host.ints;
    const first = ints.int(n);
    const choices = this.#choices;
    if (choices === 2) {
      // The usual case: a second candidate other than the first.
      let j = ints.int(n - 1);
      if (j >= first) j++;
      const best = states[first] as EndpointState;
      const c = states[j] as EndpointState;
      return this.#cost(c, now) < this.#cost(best, now) ? c : best;
    }
    if (choices >= n) {
      // As many candidates as endpoints: every endpoint, from a random start (ties go to the first seen).
      let best = states[first] as EndpointState;
      let bestCost = this.#cost(best, now);
      for (let k = 1; k < n; k++) {
        const c = states[(first + k) % n] as EndpointState;
        const cost = this.#cost(c, now);
        if (cost < bestCost) {
          best = c;
          bestCost = cost;
        }
      }
      return best;
    }
    return this.#cheapestOf(first, choices, now);
  }

  /**
   * The cheapest of `choices` distinct candidates, `first` among them (ties go to the first drawn).
   * `choiceCount` distinct candidates, as the docs say (Envoy samples with replacement): a draw is
   * taken again while it repeats one already drawn — uniformly, or by weight (see the class);
   * fewer candidates than endpoints, so a new one is found in a few draws (64 at most).
   */
  #cheapestOf(first: number, choices: number, now: number): EndpointState {
    const states = this.#states;
    const drawn = this.#drawn;
    let best = states[first] as EndpointState;
    let bestCost = this.#cost(best, now);
    drawn[0] = first;
    for (let k = 1; k < choices; k++) {
      let j = this.#draw(now);
      for (let tries = 0; drawn.lastIndexOf(j, k - 1) >= 0 && tries < 64; tries++) j = this.#draw(now);
      drawn[k] = j;
      const c = states[j] as EndpointState;
      const cost = this.#cost(c, now);
      if (cost < bestCost) {
        best = c;
        bestCost = cost;
      }
    }
    return best;
  }

  #draw(now: number): number {
    return this.#weighted ? this.#weightedIndex(now) : this.#host.ints.int(this.#states.length);
  }
}
