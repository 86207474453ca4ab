/** The per-endpoint figures of a balancer's stats snapshot. */
import type { ConnectivityTracker } from './connectivity.js';
import type { EndpointStats } from './observe.js';
import type { PickerHost } from './picker-host.js';
import type { EndpointState } from './state.js';

/** The figures of `s` at `now`: weights and latency as `host` sees them, reconnect timing from `connectivity`. */
export function endpointStats(
  s: EndpointState,
  now: number,
  host: PickerHost,
  connectivity: ConnectivityTracker,
): EndpointStats {
  return {
    id: s.endpoint.id,
    address: s.endpoint.address,
    port: s.endpoint.port,
    zone: s.endpoint.zone,
    priority: s.endpoint.priority ?? 0,
    weight: s.endpoint.weight,
    effectiveWeight: host.effectiveWeight(s, now),
    health: s.endpoint.health,
    checkHealthy: s.checkHealthy,
    connectivity: s.connectivity,
    reachable: s.reachable,
    connectFailures: s.connectFailures,
    reconnectInMs: reconnectIn(connectivity.nextAttemptAt(s), now),
    inflight: s.inflight,
    ewmaMs: s.ewma < 0 ? undefined : host.latency(s, now),
    ejected: s.ejected,
    ejections: s.ejections,
    ejectionMultiplier: s.ejectionMultiplier,
    requests: s.requests,
    failures: s.failures,
  };
}

function reconnectIn(at: number | undefined, now: number): number | undefined {
  return at === undefined ? undefined : Math.max(at - now, 0);
}
