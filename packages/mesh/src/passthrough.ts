import { undiciAgent, undiciPool } from '@proxyless/core';
import type { Dispatcher } from 'undici';

/** What the mesh asks of its pass-through dispatcher: its own (below) or one given in options. */
export interface PassthroughDispatcher {
  dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean;
  close(): Promise<void>;
  destroy(err: Error | null): Promise<void>;
}

/**
 * The pass-through agent: undici's `Agent` with its default pools, each recorded in `pools` until
 * it is destroyed. undici's `Agent.close()` lets go of its pools at once, so a `destroy()` after it
 * reaches none of them; the mesh destroys these itself when a bounded `close()` runs out of time.
 *
 * The agent is made at the first pass-through call (`created` is told then): undici's connection
 * classes are loaded at first use (see `undiciAgent`), and a mesh whose calls all go to mesh
 * services never needs them for pass-through. Closed or destroyed before that, it makes the
 * agent closed or destroyed, so a later call fails as undici fails it.
 */
export function passthroughAgent(
  pools: Set<Dispatcher>,
  created: (agent: Dispatcher) => void,
): PassthroughDispatcher {
  let agent: Dispatcher | undefined;
  let ended: 'closed' | 'destroyed' | undefined;
  const make = (): Dispatcher => {
    const Agent = undiciAgent();
    const made = new Agent({ factory: (origin, opts) => trackedPool(origin, opts, pools) });
    created(made);
    if (ended === 'closed') void made.close();
    else if (ended === 'destroyed') void made.destroy(null);
    return made;
  };
  return {
    dispatch(opts, handler) {
      if (agent === undefined) agent = make();
      return agent.dispatch(opts, handler);
    },
    close() {
      if (agent !== undefined) return agent.close();
      ended ??= 'closed';
      return Promise.resolve();
    },
    destroy(err) {
      if (agent !== undefined) return agent.destroy(err);
      ended = 'destroyed';
      return Promise.resolve();
    },
  };
}

/** One of the pass-through agent's pools, in `pools` until it is closed or destroyed. */
function trackedPool(origin: string | URL, opts: object, pools: Set<Dispatcher>): Dispatcher {
  const Pool = undiciPool();
  const pool = new Pool(origin, opts);
  pools.add(pool);
  let leaving = false;
  // The agent closes a pool once its last connection is gone (its own listener runs after this
  // one, hence the microtask); the pool is forgotten when that close is over.
  const onGone = (): void =>
    queueMicrotask(() => {
      if (leaving || !(pool.closed || pool.destroyed)) return;
      leaving = true;
      const forget = (): void => {
        pools.delete(pool);
      };
      pool.close().then(forget, forget);
    });
  pool.on('disconnect', onGone).on('connectionError', onGone);
  return pool;
}
