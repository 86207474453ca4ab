import type { CallContext } from '@proxyless/core';

/**
 * Something that holds resources for an attempt undici has not started yet (it waits in an
 * endpoint pool's queue behind `maxConnections` busy connections; undici calls `onRequestStart`
 * only when it writes the request to a socket). undici's dispatch API has no way to take such a
 * request back, so a stage above that gives up on the attempt (the caller aborted, a timer fired)
 * asks the holder instead: see {@link cancelQueued}.
 */
export interface QueuedHold {
  /**
   * Give up the attempt before it started. Return `false` when the attempt has already started or
   * ended (there is nothing to cancel: the stage above must abort or answer as usual). Otherwise:
   * release what is held for the attempt now, report `reason` upward through this handler's own
   * `onResponseError` at once (so every stage between here and the caller releases its share as
   * for any error), and return `true`; when undici later starts the request, abort it at once
   * (`controller.abort(reason)`) without forwarding anything, and ignore undici's callbacks that
   * follow.
   */
  cancelQueued(reason: Error): boolean;
}

/**
 * The key, on an attempt's {@link CallContext}, of the innermost {@link QueuedHold} of that attempt.
 * A context derived for a new attempt (`{ ...ctx }`) copies it: retry and hedge clear it there
 * (`[kQueuedHold]: undefined`), so one attempt never cancels another's holder.
 */
export const kQueuedHold: unique symbol = Symbol.for('proxyless.queuedHold') as never;

type Holding = CallContext & { [kQueuedHold]?: QueuedHold | undefined };

/**
 * Register `hold` as the innermost holder of the attempt `ctx` belongs to. A stage calls it as it
 * hands the attempt to the stage below (before it dispatches), so the last registration is the
 * innermost holder: its error passes through every handler above it, which release their own
 * share as it goes by. One property store per attempt; nothing is allocated.
 */
export function holdQueued(ctx: CallContext, hold: QueuedHold): void {
  (ctx as Holding)[kQueuedHold] = hold;
  ctx.attributes.set(CALL_HOLD, hold);
}

/**
 * The key, in a call's `attributes` (the one map every context derived from the call shares), of
 * the holder registered last: the innermost of the call's latest attempt.
 */
const CALL_HOLD = 'proxyless.queuedHold';

/**
 * Give up a call none of whose stages has started it (no stage answered its caller with a
 * controller: no retry, hedge, timeout or wait is on), from above the stack, where the context of
 * the attempt is not at hand: the innermost holder of its one attempt takes it back as
 * {@link cancelQueued} does. `false` when nothing holds an unstarted attempt.
 */
export function cancelQueuedCall(ctx: CallContext, reason: Error): boolean {
  const hold = ctx.attributes.get(CALL_HOLD) as QueuedHold | undefined;
  return hold?.cancelQueued(reason) === true;
}

/**
 * Give up an attempt that has not started (`onRequestStart` has not reached the caller of this):
 * ask the innermost holder registered on its context to release and report `reason` up. `true`
 * when a holder took it (the reason is on its way up, through the stage that called this, already
 * delivered when this returns); `false` when nothing below holds the attempt, and the caller must
 * answer on its own. `self` is the calling stage when it is a holder too: it is skipped.
 */
export function cancelQueued(ctx: CallContext, reason: Error, self?: QueuedHold): boolean {
  const hold = (ctx as Holding)[kQueuedHold];
  if (hold === undefined || hold === self) return false;
  return hold.cancelQueued(reason);
}
