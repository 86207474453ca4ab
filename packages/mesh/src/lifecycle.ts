/**
 * The mesh's shutdown: `close({ timeout })` drains every destination and the pass-through agent
 * against one deadline, `destroy()` forces — also a graceful close still draining (#9.10) — and
 * both refuse new calls synchronously, as undici's `close()` does.
 */

import { type Clock, KEEP_ALIVE, quote, type Timer } from '@proxyless/core';
import type { Dispatcher } from 'undici';
import type { CloseOptions } from './api.js';
import type { Destination } from './destination.js';
import type { DestinationTable } from './destination-table.js';
import type { PassthroughDispatcher } from './passthrough.js';

/** What the lifecycle needs from the mesh that owns it. */
export interface LifecycleDeps {
  clock: Clock;
  destinations: DestinationTable;
  /** The pass-through agent; only one the mesh made (`own`) is closed by it. */
  agent: PassthroughDispatcher | undefined;
  ownAgent: boolean;
  /** The pools of the mesh's own pass-through agent, until each is destroyed. */
  agentPools: Set<Dispatcher>;
  /**
   * The rest of the shutdown (telemetry, signal handlers, deregistration, routing sources,
   * resolvers, the config source), run while `drained` — the calls in flight — settles.
   */
  shutdown(drained: Promise<void>): Promise<void>;
}

export class MeshLifecycle {
  readonly #deps: LifecycleDeps;
  /** Set synchronously by `close()`/`destroy()`: from then on every call fails with `MESH_CLOSED`. */
  #stopped = false;
  #closing: Promise<void> | undefined;
  /** What `destroy()` returned the first time: every later call returns it too. */
  #destroying: Promise<void> | undefined;
  /** Ends a graceful drain of the pass-through agent (its deadline, or `destroy()`). */
  #cutAgent: (() => void) | undefined;
  #closingDests = new Set<Destination>();
  #destroyed = false;
  /** `close()` was called (undici's `closed`: `destroy()` alone does not set it). */
  #closeCalled = false;
  /** The close or destroy finished: undici's dispatcher is destroyed once its `close()` has. */
  #ended = false;

  constructor(deps: LifecycleDeps) {
    this.#deps = deps;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** `destroy()` was called, or `close()` finished (undici's `destroyed`). */
  get destroyed(): boolean {
    return this.#destroyed || this.#ended;
  }

  /** `close()` was called (undici's `closed`). */
  get closeCalled(): boolean {
    return this.#closeCalled;
  }

  close(options: CloseOptions = {}): Promise<void> {
    // A deadline that is no number of ms (NaN, negative, a string) would force at once: refused,
    // before anything is closed (`Infinity` is no deadline, as leaving it out).
    const t = options?.timeout;
    if (t !== undefined && !(typeof t === 'number' && t >= 0)) {
      return Promise.reject(
        new TypeError(`mesh.close({ timeout }): expected a number of milliseconds ≥ 0, got ${quote(t)}`),
      );
    }
    this.#closeCalled = true;
    this.#closing ??= this.#markEnded(
      this.#deps.shutdown(this.#drain(t === Number.POSITIVE_INFINITY ? undefined : t)),
    );
    return this.#closing;
  }

  /** `reason`: what calls in flight fail with (undici's `destroy(err)`); `MESH_CLOSED` without one. */
  destroy(reason?: Error): Promise<void> {
    this.#destroyed = true;
    // Idempotent as `close()` is: a later call (with a reason or not) gets the same promise.
    this.#destroying ??= this.#startDestroy(reason);
    return this.#destroying;
  }

  #startDestroy(reason: Error | undefined): Promise<void> {
    if (this.#closing === undefined) {
      this.#closing = this.#markEnded(this.#deps.shutdown(this.#force(reason)));
      return this.#closing;
    }
    // A graceful close may still be draining: destroy() forces it (#9.10).
    return (async () => {
      this.#cutAgent?.();
      await Promise.all([
        ...[...this.#closingDests].map((d) => d.destroy(reason)),
        this.#destroyAgent(reason),
      ]);
      await this.#closing;
    })();
  }

  /** `shutdown`, marking the lifecycle ended once it has finished. */
  #markEnded(shutdown: Promise<void>): Promise<void> {
    return shutdown.then(() => {
      this.#ended = true;
    });
  }

  /**
   * The synchronous start of a graceful close, as undici's `close()` refuses new requests at once:
   * stop accepting calls, and let every destination and the pass-through agent drain, all against
   * one deadline; past it, what is left is destroyed.
   */
  #drain(timeoutMs: number | undefined): Promise<void> {
    const dests = this.#stop();
    let timer: Timer | undefined;
    const deadline =
      timeoutMs === undefined
        ? undefined
        : new Promise<void>((resolve) => {
            timer = this.#deps.clock.setTimer(timeoutMs, resolve, KEEP_ALIVE);
          });
    const { agent: a, ownAgent } = this.#deps;
    const agent = a && ownAgent ? a : undefined;
    let agentDrained: Promise<void> | undefined;
    if (agent !== undefined) {
      const cut = new Promise<void>((resolve) => {
        this.#cutAgent = resolve;
      });
      const closed = agent.close().then(
        () => 'closed' as const,
        () => 'closed' as const,
      );
      agentDrained = Promise.race([
        closed,
        deadline === undefined ? cut : Promise.race([deadline, cut]),
      ]).then((outcome) => (outcome === 'closed' ? undefined : this.#destroyAgent()));
    }
    return Promise.all([...dests.map((d) => d.close(deadline)), agentDrained]).then(
      () => timer?.cancel(),
      () => timer?.cancel(),
    );
  }

  /** The synchronous start of `destroy()`: fail every call in flight, and the pass-through agent's. */
  #force(reason?: Error): Promise<void> {
    const dests = this.#stop();
    return Promise.all([...dests.map((d) => d.destroy(reason)), this.#destroyAgent(reason)]).then(
      () => undefined,
    );
  }

  /** Destroy the mesh's own pass-through agent, and the pools a `close()` of it is still draining. */
  async #destroyAgent(reason?: Error): Promise<void> {
    const { agent, ownAgent, agentPools } = this.#deps;
    if (!agent || !ownAgent) return;
    const pools = [...agentPools];
    agentPools.clear();
    await Promise.all([agent, ...pools].map((d) => d.destroy(reason ?? null).catch(() => undefined)));
  }

  /** Refuse every call from now on; the destinations that were live, to drain or destroy. */
  #stop(): Destination[] {
    this.#stopped = true;
    this.#deps.destinations.stopSweep();
    const dests = this.#deps.destinations.clear();
    this.#closingDests = new Set(dests);
    return dests;
  }
}
