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

  constructor(states: readonly EndpointState[], host: PickerHost, ewma: boolean) {
    this.#states = states;
    this.#host = host;
    this.#ewma = ewma;
    this.#choices = host.config.choiceCount;
    this.#timeMode = host.config.slowStart !== undefined ? 2 : ewma ? 1 : 0;
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
    for (let k = 1; k < this.#choices; k++) {
      let j = ints.int(n - 1);
      if (j >= first) j++;
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
