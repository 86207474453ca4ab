/**
 * What the circuit breaker counts against its destination: outcomes of an exchange with the
 * endpoint only.
 */
import { isRequestBodyError, MeshError } from '@proxyless/core';

/** Whether an outcome counts as a failure of the destination. */
export function isFailure(error: unknown): boolean {
  // Only outcomes of an exchange with the endpoint count: undici's own validation errors, the
  // caller's aborts and the caller's failing body never reached (or were not caused by) it.
  if (!MeshError.is(error)) return false;
  if (isRequestBodyError(error)) return false;
  switch (error.code) {
    case 'MESH_CONNECT_FAILED':
    case 'MESH_UPSTREAM_RESET':
    case 'MESH_INTERNAL':
      return true;
    case 'MESH_TIMEOUT':
      // A per-try timeout of an attempt still queued in the endpoint's pool (`sent: false`) never
      // reached the endpoint: the pool was busy, which is not a failure of the destination.
      if (error.details.limit === 'perTry') return error.details.sent !== false;
      return error.details.limit === 'headers';
    default:
      return false;
  }
}
