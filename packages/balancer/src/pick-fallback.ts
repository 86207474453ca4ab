/**
 * Where a pick goes when the picker's choice cannot take the call: an endpoint a retry excludes,
 * or one still opening its first connection for a call in flight. Both scan from a random offset.
 */
import type { IntRandom } from './picker-host.js';
import type { EndpointState } from './state.js';

/**
 * `s` has no connection yet and its first one is still being set up for a call in flight: it
 * takes no other call while another endpoint can. Without this, every caller whose turn fell on an
 * endpoint that does not answer SYNs (a dead node whose address is still listed) queued behind its
 * connect timeout: one such endpoint of three held all 16 callers of a load for 10 s. Linkerd's
 * balancer likewise picks only among endpoints that are ready, and gRPC's round_robin only READY
 * subchannels. One left CONNECTING with no call in flight (the call gave up while it connected)
 * is picked as usual: its connect's outcome reaches the balancer through its pool either way.
 */
export function isWaitingToConnect(s: EndpointState): boolean {
  return s.connectivity === 'CONNECTING' && s.inflight > 0;
}

/** An endpoint of `list` not in `exclude`, scanning from a random offset. */
export function firstNotExcluded(
  list: readonly EndpointState[],
  exclude: ReadonlySet<string>,
  ints: IntRandom,
): EndpointState | undefined {
  const n = list.length;
  const start = ints.int(n);
  for (let i = 0; i < n; i++) {
    const c = list[(start + i) % n] as EndpointState;
    if (!exclude.has(c.endpoint.id)) return c;
  }
  return undefined;
}

/**
 * One of the endpoints of `list` that can take the call now (not {@link isWaitingToConnect}, not
 * in `exclude`), chosen uniformly among up to 16 from a random offset; `s` when there is none.
 * Not the picker again: a round-robin picker would move on by more than one place per call.
 */
export function notConnecting(
  list: readonly EndpointState[],
  exclude: ReadonlySet<string> | undefined,
  ints: IntRandom,
  s: EndpointState,
): EndpointState {
  const n = list.length;
  const start = ints.int(n);
  let chosen = s;
  let fits = 0;
  for (let i = 0, m = Math.min(n, 16); i < m; i++) {
    const c = list[(start + i) % n] as EndpointState;
    if (isWaitingToConnect(c) || exclude?.has(c.endpoint.id)) continue;
    fits++;
    if (fits === 1 || ints.int(fits) === 0) chosen = c;
  }
  return chosen;
}
