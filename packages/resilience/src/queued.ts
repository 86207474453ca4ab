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
