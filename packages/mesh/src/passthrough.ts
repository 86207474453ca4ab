import { UndiciAgent, UndiciPool } from '@proxyless/core';
import type { Dispatcher } from 'undici';

/**
 * The pass-through agent: undici's `Agent` with its default pools, each recorded in `pools` until
 * it is destroyed. undici's `Agent.close()` lets go of its pools at once, so a `destroy()` after it
 * reaches none of them; the mesh destroys these itself when a bounded `close()` runs out of time.
 */
export function passthroughAgent(pools: Set<Dispatcher>): Dispatcher {
  return new UndiciAgent({
    factory: (origin, opts) => {
      const pool = new UndiciPool(origin, opts);
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
    },
  });
}
