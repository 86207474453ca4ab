/**
 * The load-aware picker: power of choices over in-flight requests (`least_request`), weighted by
 * peak-EWMA latency for `peak_ewma`.
 */
import type { PickerHost, StatePicker } from './picker-host.js';
import type { EndpointState } from './state.js';

/**
 * Power of `choiceCount` choices. `least_request`: cost = (in-flight + 1) / weight.
 * `peak_ewma` (Finagle/Linkerd): cost = peak-EWMA latency × (in-flight + 1) / weight, with the
 * default RTT for endpoints never measured. The cheapest candidate wins.
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

  constructor(states: readonly EndpointState[], host: PickerHost, ewma: boolean) {
    this.#states = states;
    this.#host = host;
    this.#ewma = ewma;
    this.#choices = host.config.choiceCount;
    this.#timeMode = host.config.slowStart !== undefined ? 2 : ewma ? 1 : 0;
    this.#drawn = new Int32Array(Math.max(0, this.#choices));
  }

  #cost(s: EndpointState, now: number): number {
    const w = this.#host.effectiveWeight(s, now);
    const load = s.inflight + 1;
    const base = this.#ewma ? this.#host.latency(s, now) * load : load;
    return w > 0 ? base / w : Number.POSITIVE_INFINITY;
  }

  pick(): EndpointState {
    const states = this.#states;
    const n = states.length;
    if (n === 1) return states[0] as EndpointState;
    const ints = this.#host.ints;
    const first = ints.int(n);
    const mode = this.#timeMode;
    const now = mode === 0 ? 0 : mode === 1 ? this.#host.recentNow() : this.#host.now();
    let best = states[first] as EndpointState;
    let bestCost = this.#cost(best, now);
    const choices = this.#choices;
    if (choices === 2) {
      // The usual case: a second candidate other than the first.
      let j = ints.int(n - 1);
      if (j >= first) j++;
      const c = states[j] as EndpointState;
      const cost = this.#cost(c, now);
      return cost < bestCost ? c : best;
    }
    if (choices >= n) {
      // As many candidates as endpoints: every endpoint, from a random start (ties go to the first seen).
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
    // `choiceCount` distinct candidates (as the docs say; Envoy samples with replacement): each draw
    // is taken again while it repeats one already drawn. Fewer candidates than endpoints, so a new
    // one is found in a few draws.
    const drawn = this.#drawn;
    drawn[0] = first;
    for (let k = 1; k < choices; k++) {
      let j = ints.int(n);
      while (drawn.lastIndexOf(j, k - 1) >= 0) j = ints.int(n);
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
}
