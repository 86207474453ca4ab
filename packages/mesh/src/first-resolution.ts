/**
 * A destination's wait for the registry's first answer for its service: calls made before it wait
 * here (bounded by the resolve timeout, abortable), and are sent on or failed when it comes or the
 * time is over. A failure of the registry before any answer is not an answer.
 */

import {
  type Clock,
  callOf,
  type DispatchFn,
  KEEP_ALIVE,
  MeshError,
  type MeshHandler,
  RelayController,
  RelayedHandler,
  type Timer,
} from '@proxyless/core';
import { cancelQueuedCall } from '@proxyless/resilience';
import type { Dispatcher } from 'undici';

export class FirstResolution {
  readonly #service: string;
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  #ready = false;
  #waiters: Array<() => void> = [];
  /** The registry's latest failure (cleared by an answer), told to calls that waited in vain. */
  failure: MeshError | undefined;
  /** Calls held by {@link wait}. */
  #callWaiters: Array<() => void> = [];
  /** The registry's first answer was refused ({@link refusedAnswer}); no answer since. */
  #refused = false;

  constructor(service: string, clock: Clock, timeoutMs: number) {
    this.#service = service;
    this.#clock = clock;
    this.#timeoutMs = timeoutMs;
  }

  /** The registry has answered. */
  get ready(): boolean {
    return this.#ready;
  }

  /**
   * Run `fn` once the registry has answered (at once if it has), or when the resolve timeout is
   * over without an answer — whichever comes first; `fn` runs once. Returns the cancel of the wait.
   */
  whenResolved(fn: () => void): () => void {
    if (this.#ready) {
      fn();
      return () => undefined;
    }
    let done = false;
    const run = (): void => {
      if (done) return;
      done = true;
      timer.cancel();
      fn();
    };
    this.#waiters.push(run);
    const timer = this.#clock.setTimer(
      this.#timeoutMs,
      () => {
        this.#waiters = this.#waiters.filter((w) => w !== run);
        run();
      },
      KEEP_ALIVE,
    );
    // Cancel: the waiter is dropped and its timer released (the caller gave up on the wait).
    return () => {
      if (done) return;
      done = true;
      timer.cancel();
      this.#waiters = this.#waiters.filter((w) => w !== run);
    };
  }

  /**
   * The registry answered, but with a payload the mesh refused (every key of an etcd listing
   * invalid, say) and no last good set: that is final until the registry changes, so calls waiting
   * for a first answer fail now, and new ones at once, with the refusal as the cause — instead of
   * waiting out the resolve timeout. A later answer clears it ({@link markReady}).
   */
  refusedAnswer(): void {
    if (this.#ready) return;
    this.#refused = true;
    const w = this.#callWaiters;
    this.#callWaiters = [];
    for (const fn of w) fn();
  }

  /** The registry answered (endpoints, or a failure with a last good set): release the waiting calls. */
  markReady(): void {
    if (this.#ready) return;
    this.#ready = true;
    this.#refused = false;
    const calls = this.#callWaiters;
    this.#callWaiters = [];
    for (const fn of calls) fn();
    const w = this.#waiters;
    this.#waiters = [];
    for (const fn of w) fn();
  }

  /** What a call gets when the registry gave no answer within the resolve timeout. */
  noAnswerError(): MeshError {
    const failed = this.failure;
    return new MeshError(
      'MESH_NO_ENDPOINTS',
      failed === undefined
        ? `no endpoints for "${this.#service}": the registry gave no answer within ${this.#timeoutMs}ms`
        : this.#refused
          ? `no endpoints for "${this.#service}": the registry's answer was refused: ${failed.message}`
          : `no endpoints for "${this.#service}": the registry failed and gave no answer within ${this.#timeoutMs}ms: ${failed.message}`,
      { details: { service: this.#service }, ...(failed !== undefined ? { cause: failed } : {}) },
    );
  }

  /**
   * Hold a call until the first answer (then send it on through `next`) or the resolve timeout
   * (then fail it with {@link noAnswerError}), with a controller of its own so the caller can abort
   * the wait.
   */
  wait(opts: Dispatcher.DispatchOptions, handler: MeshHandler, next: DispatchFn): void {
    let timer: Timer | undefined;
    let inner: Dispatcher.DispatchController | undefined;
    let waiting = true;
    const leave = (): void => {
      waiting = false;
      timer?.cancel();
      this.#callWaiters = this.#callWaiters.filter((w) => w !== go);
    };
    const relay = new RelayController((reason) => {
      if (inner !== undefined) return inner.abort(reason);
      if (!waiting) {
        // Sent on, but no stage below has started it (it waits in an endpoint pool's queue, or
        // for its connect): its innermost holder takes it back and sends the reason up now.
        const ctx = callOf(opts);
        if (ctx !== undefined) cancelQueuedCall(ctx, reason);
        return;
      }
      leave();
      handler.onResponseError?.(relay, reason);
    });
    const go = (): void => {
      if (!waiting) return;
      leave();
      if (this.#refused && !this.#ready) {
        handler.onResponseError?.(relay, this.noAnswerError());
        return;
      }
      next(
        opts,
        new RelayedHandler(handler, relay, (c) => {
          inner = c;
        }),
      );
    };
    handler.onRequestStart?.(relay, {});
    if (relay.aborted) return;
    if (this.#refused) {
      go();
      return;
    }
    this.#callWaiters.push(go);
    timer = this.#clock.setTimer(
      this.#timeoutMs,
      () => {
        if (!waiting) return;
        leave();
        handler.onResponseError?.(relay, this.noAnswerError());
      },
      KEEP_ALIVE,
    );
  }
}
