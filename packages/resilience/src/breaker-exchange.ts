import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import { ForwardingHandler, type MeshHandler } from '@proxyless/core';
import type { Dispatcher } from 'undici';
import type { DestinationBreaker } from './breaker.js';
import type { QueuedHold } from './queued.js';

/**
 * Watches one admitted attempt: its outcome counts when the head (or an error) arrives, and its
 * `maxRequests` slot is held until the exchange ends — or until the stage above gives up on an
 * attempt still queued in the endpoint's pool ({@link QueuedHold}).
 */
export class BreakerExchange extends ForwardingHandler implements QueuedHold {
  #recorded = false;
  #released = false;
  #started = false;
  /** Set when the attempt was given up before it started: undici's later callbacks are not forwarded. */
  #cancelled: Error | undefined;
  constructor(
    handler: MeshHandler,
    readonly breaker: DestinationBreaker,
    readonly kind: 'trial' | 'normal',
  ) {
    super(handler);
  }
  cancelQueued(reason: Error): boolean {
    if (this.#started || this.#released) return false;
    this.#cancelled = reason;
    this.#record(undefined, reason);
    this.#release();
    super.onResponseError(undefined as never, reason);
    return true;
  }
  override onRequestStart(c: Dispatcher.DispatchController, context: unknown): void {
    this.#started = true;
    if (this.#cancelled !== undefined) {
      // Given up while it was queued: abort it now rather than send it.
      c.abort(this.#cancelled);
      return;
    }
    super.onRequestStart(c, context);
  }
  override onRequestUpgrade(
    c: Dispatcher.DispatchController,
    status: number,
    headers: IncomingHttpHeaders,
    socket: Duplex,
  ): void {
    this.#record(status, undefined);
    this.#release();
    super.onRequestUpgrade(c, status, headers, socket);
  }
  override onResponseStart(
    c: Dispatcher.DispatchController,
    status: number,
    headers: IncomingHttpHeaders,
    text?: string,
  ): void {
    if (status >= 200) this.#record(status, undefined);
    super.onResponseStart(c, status, headers, text);
  }
  override onResponseEnd(c: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    this.#release();
    super.onResponseEnd(c, trailers);
  }
  override onResponseError(c: Dispatcher.DispatchController, error: Error): void {
    if (this.#cancelled !== undefined) return;
    this.#record(undefined, error);
    this.#release();
    super.onResponseError(c, error);
  }
  #record(status: number | undefined, error: Error | undefined): void {
    if (this.#recorded) return;
    this.#recorded = true;
    this.breaker.record(this.kind, status, error);
  }
  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.breaker.release();
  }
}
