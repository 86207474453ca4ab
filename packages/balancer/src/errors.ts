/** The errors a balancer raises: nothing to pick, and use after close. */
import { MeshError } from '@proxyless/core';
import type { EndpointState } from './state.js';

/** Why `service` has nothing to pick among `states`: none known, none reachable, or none healthy. */
export function noEndpointsError(service: string, states: readonly EndpointState[]): MeshError {
  const total = states.length;
  if (total > 0 && states.every((s) => !s.reachable)) {
    return new MeshError(
      'MESH_NO_HEALTHY_ENDPOINTS',
      `service "${service}" has no reachable endpoints (${total} known, every connect failed; reconnecting)`,
      { details: { service } },
    );
  }
  return new MeshError(
    'MESH_NO_ENDPOINTS',
    total === 0
      ? `service "${service}" has no endpoints`
      : `service "${service}" has no usable endpoints (${total} known, none healthy)`,
    { details: { service } },
  );
}

/** The balancer of `service` is closed. */
export function closedError(service: string): MeshError {
  return new MeshError('MESH_CLOSED', `the balancer of "${service}" is closed`, {
    details: { service },
  });
}
