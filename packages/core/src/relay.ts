/**
 * The controllers and handlers a stage puts between its caller and the exchanges it makes: one
 * controller for the caller over several attempts (retries, hedges, waits), a handler that relays
 * an attempt to the caller, and a local controller for a call a stage answers itself.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { ForwardingHandler, type MeshHandler } from './interceptor.js';
import { undiciErrors } from './undici.js';

/** A stage's per-call object that stops its exchange when the caller aborts the relay. */
export interface RelayOwner {
  onRelayAbort(reason: Error): void;
}

/**
 * The controller a stage hands to the handler above it when the stage may wait (backoff, a queue,
 * a delay) or dispatch more than once (retries, hedges). The caller keeps one controller for the
 * whole call; pause and resume go to the attempt in flight (and to the next one), abort runs the
 * stage's own abort, which cancels its timers and aborts the attempt in flight.
 */
export class RelayController implements Dispatcher.DispatchController {
  #inner: Dispatcher.DispatchController | undefined;
  #paused = false;
  #aborted = false;
  #reason: Error | null = null;
  #error: Error | null = null;
  readonly #onAbort: ((reason: Error) => void) | RelayOwner;

  /**
   * @param onAbort what stops the exchange when the caller aborts: a function, or the stage's
   *   per-call object itself (its `onRelayAbort`), which saves a closure per call on a hot path.
   */
  constructor(onAbort: ((reason: Error) => void) | RelayOwner) {
    this.#onAbort = onAbort;
  }

  /** The controller of the attempt now in flight (or `undefined` between attempts). */
  setInner(inner: Dispatcher.DispatchController | undefined): void {
    this.#inner = inner;
    if (inner !== undefined && this.#paused) inner.pause();
  }

  get inner(): Dispatcher.DispatchController | undefined {
    return this.#inner;
  }

  /** The raw response header lines of the attempt in flight (undici's controller field). */
  get rawHeaders(): Buffer[] | null {
    return (this.#inner as { rawHeaders?: Buffer[] | null } | undefined)?.rawHeaders ?? null;
  }

  /** The raw trailer lines of the attempt in flight. */
  get rawTrailers(): Buffer[] | null {
    return (this.#inner as { rawTrailers?: Buffer[] | null } | undefined)?.rawTrailers ?? null;
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** The reason `abort()` was given, as given (undici's controllers keep it so). */
  get reason(): Error | null {
    return this.#reason;
  }

  /** What the call fails with since `abort()`: its reason, or undici's `RequestAbortedError` for none. */
  get error(): Error | null {
    return this.#error;
  }

  abort(reason?: Error): void {
    if (this.#aborted) return;
    this.#aborted = true;
    // `reason` reads back as given, as undici's controllers keep it. The error the call fails with
    // is undici's: without a reason — or with a falsy one (`abort(0)`) — its transport fails the
    // request with `RequestAbortedError` (`err || new RequestAbortedError()`); a falsy error would
    // reach the caller's error callback as "no error" and settle the call as a success.
    this.#reason = reason as Error; // as given, `undefined` included
    this.#error = reason || new undiciErrors.RequestAbortedError();
    const onAbort = this.#onAbort;
    if (typeof onAbort === 'function') onAbort(this.#error);
    else onAbort.onRelayAbort(this.#error);
  }

  pause(): void {
    this.#paused = true;
    this.#inner?.pause();
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#inner?.resume();
  }
}

/**
 * The handler for an exchange a stage starts after a wait (a queue, a delay, the first
 * resolution): the handler above keeps the stage's {@link RelayController}, which learns the
 * exchange's own controller when it starts (and aborts it at once if the caller already did).
 */
export class RelayedHandler extends ForwardingHandler {
  readonly #relay: RelayController;
  readonly #onInner: ((c: Dispatcher.DispatchController) => void) | undefined;

  constructor(
    handler: MeshHandler,
    relay: RelayController,
    onInner?: (c: Dispatcher.DispatchController) => void,
  ) {
    super(handler);
    this.#relay = relay;
    this.#onInner = onInner;
  }

  override onRequestStart(c: Dispatcher.DispatchController): void {
    this.#onInner?.(c);
    this.#relay.setInner(c);
    if (this.#relay.aborted) c.abort(this.#relay.error!);
  }

  override onRequestUpgrade(
    _c: Dispatcher.DispatchController,
    status: number,
    headers: IncomingHttpHeaders,
    socket: import('node:stream').Duplex,
  ): void {
    super.onRequestUpgrade(this.#relay, status, headers, socket);
  }

  override onResponseStart(
    _c: Dispatcher.DispatchController,
    status: number,
    headers: IncomingHttpHeaders,
    text?: string,
  ): void {
    super.onResponseStart(this.#relay, status, headers, text);
  }

  override onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    super.onResponseData(this.#relay, chunk);
  }

  override onResponseEnd(_c: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    super.onResponseEnd(this.#relay, trailers);
  }

  override onResponseError(_c: Dispatcher.DispatchController, error: Error): void {
    super.onResponseError(this.#relay, error);
  }
}

/** A controller for an answer the mesh makes itself (a fault's status, an error before sending). */
export class LocalController implements Dispatcher.DispatchController {
  aborted = false;
  paused = false;
  reason: Error | null = null;
  abort(reason?: Error): void {
    this.aborted = true;
    this.reason = reason ?? null;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
}

/** Fail a dispatch before anything was sent: start, then error, as undici does. */
export function failDispatch(handler: MeshHandler, error: Error): void {
  const c = new LocalController();
  handler.onRequestStart?.(c, {});
  handler.onResponseError?.(c, error);
}

/** Answer a dispatch locally with a complete response (fault injection, tests). */
export function answerLocally(
  handler: MeshHandler,
  status: number,
  headers: IncomingHttpHeaders,
  body: string,
  statusText = '',
): void {
  const c = new LocalController();
  handler.onRequestStart?.(c, {});
  if (c.aborted) {
    handler.onResponseError?.(c, c.reason || new undiciErrors.RequestAbortedError());
    return;
  }
  handler.onResponseStart?.(c, status, headers, statusText);
  if (body.length > 0) handler.onResponseData?.(c, Buffer.from(body));
  handler.onResponseEnd?.(c, {});
}
