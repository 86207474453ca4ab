import { type Balancer, type CallContext, type Endpoint, MeshError } from '@proxyless/core';

/** Call attribute that overrides the service's `waitForReady` setting for one call (`true`/`false`). */
export const WAIT_FOR_READY_ATTRIBUTE = 'waitForReady';

/**
 * Whether a pick that failed with `error` should wait for an endpoint instead of failing: the error
 * says nothing is usable (`MESH_NO_HEALTHY_ENDPOINTS`, `MESH_NO_ENDPOINTS`) and the call (its
 * `waitForReady` attribute) or else the service (`balancer.waitForReady`) asks to wait.
 */
export function shouldWaitForReady(balancer: Balancer, ctx: CallContext, error: unknown): boolean {
  if (!MeshError.is(error, ['MESH_NO_HEALTHY_ENDPOINTS', 'MESH_NO_ENDPOINTS'])) return false;
  const perCall = ctx.attributes.get(WAIT_FOR_READY_ATTRIBUTE);
  return typeof perCall === 'boolean' ? perCall : balancer.waitForReady;
}

/**
 * Pick an endpoint; when none is usable and the call waits for ready, wait until one is (or the
 * call's signal — its deadline — aborts) and pick again. Without waiting, the pick error is thrown.
 * The pick stage uses it only after a synchronous `pick` threw, so the hot path stays synchronous.
 *
 * @throws MeshError `MESH_NO_HEALTHY_ENDPOINTS` / `MESH_NO_ENDPOINTS` when not waiting; the signal's
 *   reason (`MESH_TIMEOUT`, `MESH_ABORTED`) when it aborts while waiting; `MESH_CLOSED`.
 * @example
 * let endpoint: Endpoint;
 * try { endpoint = lb.pick(ctx); } catch (e) {
 *   if (!shouldWaitForReady(lb, ctx, e)) throw e;
 *   endpoint = await pickWhenReady(lb, ctx);
 * }
 */
export async function pickWhenReady(balancer: Balancer, ctx: CallContext): Promise<Endpoint> {
  // Each round waits for a change that made picking possible; the loop ends with a pick, an
  // abort or the balancer closing. The bound only guards against a balancer that flaps forever.
  for (let round = 0; round < 1000; round++) {
    try {
      return balancer.pick(ctx);
    } catch (error) {
      if (!shouldWaitForReady(balancer, ctx, error)) throw error;
    }
    await balancer.whenReady(ctx.signal);
  }
  return balancer.pick(ctx);
}
