/**
 * The picker of each load-balancing policy: {@link buildPicker} chooses among the picker families
 * (load-oblivious, load-aware, consistent hashing), re-exported here with their contract.
 */
import type { LoadBalancerPolicy } from './config.js';
import { MaglevPicker, RingHashPicker } from './hash-pickers.js';
import { P2CPicker } from './load-pickers.js';
import type { PickerHost, StatePicker } from './picker-host.js';
import { RandomPicker, RoundRobinPicker, WeightedRoundRobinPicker } from './simple-pickers.js';
import type { EndpointState } from './state.js';

export { MaglevPicker, RingHashPicker, requestHash } from './hash-pickers.js';
export { P2CPicker } from './load-pickers.js';
export { IntRandom, type PickerHost, type StatePicker } from './picker-host.js';
export { RandomPicker, RoundRobinPicker, WeightedRoundRobinPicker } from './simple-pickers.js';

/** Build the picker for `policy` over `states` (non-empty). */
export function buildPicker(
  policy: LoadBalancerPolicy,
  states: readonly EndpointState[],
  host: PickerHost,
): StatePicker {
  switch (policy) {
    case 'round_robin':
      // Envoy's ROUND_ROBIN: a plain rotation while every endpoint weighs the same, a weighted
      // schedule (the same as weighted_round_robin's) once weights differ or slow start ramps them.
      return host.config.slowStart || !sameWeights(states)
        ? new WeightedRoundRobinPicker(states, host)
        : new RoundRobinPicker(states, host.random);
    case 'random':
      return new RandomPicker(states, host.ints);
    case 'weighted_round_robin':
      return new WeightedRoundRobinPicker(states, host);
    case 'least_request':
      // Envoy's LEAST_REQUEST: power of choices while every endpoint weighs the same; once weights
      // differ or slow start ramps them, a weighted schedule over weight / (in-flight + 1), so
      // every endpoint gets its weight's share at any load (P2C dividing by the weight gave a
      // lighter endpoint nothing while nothing was in flight).
      return host.config.slowStart || !sameWeights(states)
        ? new WeightedRoundRobinPicker(states, host, true)
        : new P2CPicker(states, host, false);
    case 'peak_ewma':
      return new P2CPicker(states, host, true, host.config.slowStart !== undefined || !sameWeights(states));
    case 'ring_hash':
      return new RingHashPicker(states, host);
    case 'maglev':
      return new MaglevPicker(states, host);
  }
}

/** Whether every endpoint has the same weight. */
function sameWeights(states: readonly EndpointState[]): boolean {
  const w = (states[0] as EndpointState).weight;
  for (let i = 1; i < states.length; i++) if ((states[i] as EndpointState).weight !== w) return false;
  return true;
}
