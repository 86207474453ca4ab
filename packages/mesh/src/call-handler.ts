import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import { type CallContext, ENDPOINT_ATTRIBUTE, MeshError, undiciErrors } from '@proxyless/core';
import { cancelQueuedCall } from '@proxyless/resilience';
import type { Dispatcher } from 'undici';
import { linesOf, rawOf, toRaw } from './header-lines.js';
import { undiciHeaderError } from './request.js';

type Legacy = Dispatcher.DispatchHandler & {
  onConnect?: (abort: (err?: Error) => void, context?: unknown) => void;
  onResponseStarted?: () => void;
  onHeaders?: (status: number, raw: Buffer[], resume: () => void, text: string) => boolean | undefined;
  onData?: (chunk: Buffer) => boolean | undefined;
  onComplete?: (raw: Buffer[] | null) => void;
  onError?: (err: Error) => void;
  onUpgrade?: (status: number, raw: Buffer[], socket: Duplex) => void;
};

/** What counts a call in flight until it ends (a destination): an object, not a closure per call. */
export interface CallCounter {
  inFlight: number;
}

/**
 * The caller's side of one mesh call: the only place the caller's handler is called. It serves both
 * handler styles (undici 7's controller style, and the `onConnect`/`onHeaders` style of Node 20's
 * bundled fetch, like undici's `WrapHandler`), shows the caller one controller for the whole call,
 * forwards fetch's `onResponseStarted` (Resource Timing), and — as undici does — turns a throw from
 * the caller's own callbacks into an aborted exchange whose error reaches the caller's error
 * callback, never an unhandled exception. After the end or an error, nothing more is delivered.
 */
export class CallHandler implements Dispatcher.DispatchHandler, Dispatcher.DispatchController {
  readonly #h: Legacy;
  readonly #modern: boolean;
  /** What counts the call as in flight (its destination): one less when the call ends. */
  readonly #counter: CallCounter | undefined;
  /** For a routed call: the routed service's own destination, which counts it too (see `send`). */
  readonly #owner: CallCounter | undefined;
  /** The exchange's controller; the caller holds this handler in its place (see {@link abort}). */
  #controller: Dispatcher.DispatchController | undefined;
  /**
   * The controller the response came with, when a handler below handed on another one than the
   * exchange started with (a route's response-header edits hide the raw lines): raw lines are read
   * from it.
   */
  #response: Dispatcher.DispatchController | undefined;
  /** The raw lines the caller can still read once the call is over and its controllers are let go. */
  #rawHeadersAtEnd: Buffer[] | null = null;
  #rawTrailersAtEnd: Buffer[] | null = null;
  #aborted = false;
  #reason: Error | null = null;
  #done = false;
  /** The caller's handler has been started (`onRequestStart` / `onConnect`). */
  #started = false;
  /** The call's context, once {@link start} ran: an abort before any stage started finds it there. */
  #ctx: CallContext | undefined;
  /** An abort (or a throw) before the exchange had a controller: given to it when it comes. */
  #pending: Error | undefined;
  /** Inside {@link start}: the caller's start callback is running. */
  #starting = false;
  /** An error the caller's own callback threw: what the caller gets once the exchange stops. */
  #thrown: Error | undefined;
  /** The headers the call sends, for undici's checks of them when the mesh answers it itself. */
  #headers: Dispatcher.DispatchOptions['headers'];
  /**
   * The caller is undici's `request()` handler and only parses the header lines it is given: it
   * gets the record the stages saw, as lines ({@link linesOf}), not the received lines to parse
   * again.
   */
  #parsesLines = false;

  /**
   * @param headers the headers the call would send: given, a call the mesh fails or answers
   *   before any endpoint's pool took it (an open breaker, no healthy endpoint, a limit, an
   *   injected fault, the caller's early abort…) is refused with undici's error instead when
   *   undici's `Request` would have refused these headers — as undici refuses them before anything
   *   else happens to the request ({@link precheck}).
   */
  constructor(
    handler: Dispatcher.DispatchHandler,
    counter?: CallCounter,
    headers?: Dispatcher.DispatchOptions['headers'],
    owner?: CallCounter,
  ) {
    this.#h = handler as Legacy;
    this.#headers = headers;
    // undici's own test (`WrapHandler.wrap`, `assertRequestHandler`): `onRequestStart` alone says
    // a handler is in the controller style; one with `onResponseStart` but no `onRequestStart` is
    // in the old style and gets the old callbacks.
    this.#modern = typeof handler.onRequestStart === 'function';
    this.#counter = counter;
    this.#owner = owner;
  }

  /**
   * The caller is undici's own `request()` handler (`mesh.request`'s, or `undici.request()`'s over
   * the mesh), with `responseHeaders` other than `'raw'`: it reads the header lines only to parse
   * them.
   */
  parsesLines(): void {
    this.#parsesLines = !this.#modern;
  }

  #caught(error: unknown): void {
    this.#thrown ??= error instanceof Error ? error : new Error(String(error));
    // The exchange stops, but the caller's controller is not marked aborted: undici fails the
    // request with the error thrown and leaves `aborted` false and `reason` null.
    this.#stop(this.#thrown);
  }

  /** Stop the exchange with `error`, wherever it is. */
  #stop(error: Error): void {
    if (this.#controller !== undefined) {
      this.#controller.abort(error);
      return;
    }
    // No stage has started the exchange: the attempt may wait in an endpoint pool's queue (no
    // stage that answers at once, such as retry or a timeout, is on). Its innermost holder takes
    // it back and sends the error up now, releasing every count on the way (breaker slot,
    // in-flight); otherwise the controller, when it comes, is aborted at once.
    if (this.#ctx !== undefined && !this.#done && cancelQueuedCall(this.#ctx, error)) return;
    this.#pending ??= error;
  }

  /**
   * Start the caller's handler now, inside `dispatch()`, as undici starts a request: its
   * controller (this handler) works at once, so an abort before any stage started the exchange —
   * fetch's, which it can only signal through the `onConnect` callback — still reaches the call.
   * Returns the error to fail the call with at once when the caller aborted (a signal already
   * aborted) or threw as it started; nothing is dispatched then.
   */
  start(ctx: CallContext): Error | undefined {
    this.#ctx = ctx;
    this.#starting = true;
    try {
      this.#startCaller();
    } finally {
      this.#starting = false;
    }
    return this.#pending;
  }

  #startCaller(): void {
    if (this.#started) return;
    this.#started = true;
    try {
      if (this.#modern) this.#h.onRequestStart?.(this, undefined);
      // As undici's transport: an abort without an error, or with a falsy one (`ac.abort(0)` through
      // undici's `request()`), is its `RequestAbortedError`.
      else this.#h.onConnect?.((err?: Error) => this.abort(err || new undiciErrors.RequestAbortedError()));
    } catch (error) {
      this.#caught(error);
    }
  }

  // The controller the caller holds: the exchange's, except that `aborted` and `reason` say what
  // the caller did with it (as undici's controllers do), not how the mesh stopped the exchange.

  get aborted(): boolean {
    return this.#aborted;
  }

  get reason(): Error | null {
    return this.#reason;
  }

  get paused(): boolean {
    return this.#controller?.paused ?? false;
  }

  get rawHeaders(): Buffer[] | null {
    const c = this.#response ?? this.#controller;
    return c === undefined ? this.#rawHeadersAtEnd : (rawOf(c, 'rawHeaders') ?? null);
  }

  get rawTrailers(): Buffer[] | null {
    const c = this.#response ?? this.#controller;
    return c === undefined ? this.#rawTrailersAtEnd : (rawOf(c, 'rawTrailers') ?? null);
  }

  abort(reason?: Error): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason as Error; // as given, `undefined` included (undici's controllers keep it so)
    // Over, and its controllers let go (see `#release`): there is no exchange left to stop.
    if (this.#done && this.#controller === undefined) return;
    if (this.#controller !== undefined) {
      this.#controller.abort(reason as Error);
      return;
    }
    // undici's transport fails a request aborted without a reason (or a falsy one) with this.
    const error = reason || new undiciErrors.RequestAbortedError();
    if (this.#starting) {
      // Aborted as it is started (`onRequestStart` / `onConnect`): as undici, whose transport fails
      // the request before `abort()` returns. Nothing is dispatched (`start` returns the error).
      this.#pending ??= error;
      this.onResponseError(undefined as never, error);
      return;
    }
    this.#stop(error);
  }

  pause(): void {
    this.#controller?.pause();
  }

  resume(): void {
    this.#controller?.resume();
  }

  /**
   * The caller gets no context, as from undici's own transport (its `Client` passes none, so
   * `request()` results carry `context: undefined`): the mesh's stages start their handlers with
   * an empty placeholder that is no part of the exchange the caller sees.
   */
  onRequestStart(controller: Dispatcher.DispatchController, _context: unknown): void {
    if (this.#done || this.#controller !== undefined) return;
    this.#controller = controller;
    if (this.#pending !== undefined) controller.abort(this.#pending);
    else this.#startCaller();
  }

  onRequestUpgrade(
    controller: Dispatcher.DispatchController,
    status: number,
    headers: IncomingHttpHeaders,
    socket: Duplex,
  ): void {
    if (this.#done) return;
    const onUpgrade = this.#h.onUpgrade;
    if (!this.#modern && typeof onUpgrade !== 'function') {
      // No dispatch the mesh checked gets here (an upgrade needs `onUpgrade`); should one, close
      // the socket and fail the call rather than leave both open with nobody to settle them.
      socket.destroy();
      this.onResponseError(controller, new undiciErrors.InvalidArgumentError('invalid onUpgrade method'));
      return;
    }
    this.#finish();
    try {
      if (this.#modern) this.#h.onRequestUpgrade?.(this, status, headers, socket);
      // The header lines as received (names in their own case, repeats in order), as undici gives them.
      else onUpgrade?.call(this.#h, status, rawOf(controller, 'rawHeaders') ?? toRaw(headers), socket);
    } catch (error) {
      socket.destroy(error as Error);
    }
  }

  onResponseStarted(): void {
    if (this.#done || this.#thrown) return;
    try {
      this.#h.onResponseStarted?.();
    } catch (error) {
      this.#caught(error);
    }
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    status: number,
    headers: IncomingHttpHeaders,
    text?: string,
  ): void {
    if (this.#done || this.#thrown) return;
    // A response the mesh made itself (an injected fault's status) to a request undici would have
    // refused.
    const refused = this.#headerRefusal();
    if (refused !== undefined) {
      controller.abort(refused);
      this.onResponseError(controller, refused);
      return;
    }
    if (controller !== this.#controller) this.#response = controller;
    try {
      if (this.#modern) {
        this.#h.onResponseStart?.(this, status, headers, text ?? '');
      } else if (
        this.#h.onHeaders?.(
          status,
          // (Not when a stage handed on another controller: a route's response header edits, whose
          // edited lines keep the server's order and case.)
          this.#parsesLines && this.#response === undefined
            ? (linesOf(headers) as unknown as Buffer[])
            : (rawOf(controller, 'rawHeaders') ?? toRaw(headers)),
          // Through this handler, not `controller`: the caller keeps this function (fetch, in its
          // body stream) after the call, and it must not hold the exchange (see `#release`).
          () => this.#resumeResponse(),
          text ?? '',
        ) === false &&
        status >= 200
      ) {
        // `false` asks for a pause, except for a 1xx: undici's parser ignores what `onHeaders`
        // returns for one, and fetch returns `false` for every 1xx. Paused there, the connection
        // stayed paused past a final response with no body to pull (a 304 or 204 after a 103):
        // the exchange never ended, holding its connection, its slots and `close()`.
        controller.pause();
      }
    } catch (error) {
      this.#caught(error);
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#done || this.#thrown) return;
    try {
      if (this.#modern) this.#h.onResponseData?.(this, chunk);
      else if (this.#h.onData?.(chunk) === false) controller.pause();
    } catch (error) {
      this.#caught(error);
    }
  }

  onResponseEnd(controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    if (this.#done) return;
    if (this.#thrown) {
      this.onResponseError(controller, this.#thrown);
      return;
    }
    this.#finish();
    try {
      if (this.#modern) this.#h.onResponseEnd?.(this, trailers);
      else this.#h.onComplete?.(rawOf(controller, 'rawTrailers') ?? toRaw(trailers));
    } catch (error) {
      // As undici's `Request.onComplete`: a completion callback that throws gets its error through
      // its own error callback. undici's retry handler decides this way (it throws its
      // `RequestRetryError` from `onResponseEnd`), so swallowing it would leave the call unsettled.
      this.#deliverError(error instanceof Error ? error : new Error(String(error)));
    }
    this.#release();
  }

  onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    if (this.#done) return;
    this.#finish();
    const err = this.#precheck(this.#thrown ?? error);
    if (!this.#started) {
      // Failed before any stage started the exchange: the caller still gets its start first.
      this.#started = true;
      this.#controller ??= controller;
      try {
        if (this.#modern) this.#h.onRequestStart?.(this, undefined);
        else this.#h.onConnect?.(() => undefined);
      } catch {
        // ignored: the error below is what the caller gets
      }
    }
    this.#deliverError(err);
    this.#release();
  }

  #resumeResponse(): void {
    (this.#response ?? this.#controller)?.resume();
  }

  /**
   * Let go of the exchange once the caller has its end or error: the stages' handlers and
   * controllers, the pick, the call's context, the request's headers. The caller may keep this
   * handler, and what it gave the caller (fetch's `abort` and `resume` callbacks), long after the
   * call — fetch keeps them in objects that only a full garbage collection frees — and the
   * exchange must not be kept with them. Only the raw lines stay readable, for a caller in the
   * controller style (the only one that can read them).
   */
  #release(): void {
    const c = this.#response ?? this.#controller;
    // Only a caller in the controller style can read them (through this handler, its controller):
    // an old-style caller got them as arguments, and fetch keeps this handler until a full GC.
    if (c !== undefined && this.#modern) {
      this.#rawHeadersAtEnd = rawOf(c, 'rawHeaders') ?? null;
      this.#rawTrailersAtEnd = rawOf(c, 'rawTrailers') ?? null;
    }
    this.#controller = undefined;
    this.#response = undefined;
    this.#ctx = undefined;
    this.#headers = undefined;
  }

  /**
   * The error the caller gets for `error`: undici's own when the call's headers are ones undici's
   * `Request` refuses. With such headers no endpoint's pool took the call (each refuses them as it
   * takes a request, with this very error), so `error` is the mesh's own answer — an open
   * breaker, no healthy endpoint, a limit, an injected fault, an abort before sending — and undici
   * checks the headers before any of those could happen. Only a dispatcher closed or destroyed is
   * refused before undici reads the request: that error stays. Errors are not the hot path.
   */
  #precheck(error: Error): Error {
    if (MeshError.is(error, 'MESH_CLOSED')) return error;
    const code = (error as { code?: unknown }).code;
    if (code === 'UND_ERR_CLOSED' || code === 'UND_ERR_DESTROYED') return error;
    const refused = this.#headerRefusal();
    if (refused === undefined) return error;
    // undici's own refusal, raised by a pool: delivered as it is.
    if (error.constructor === refused.constructor && error.message === refused.message) return error;
    return refused;
  }

  /**
   * undici's error for the call's headers, when no endpoint's pool took the call (a pool's
   * `Request` checks them itself, and refuses them with this very error) and undici would refuse
   * them; else `undefined`.
   */
  #headerRefusal(): Error | undefined {
    if (this.#headers == null || this.#ctx?.attributes.get(ENDPOINT_ATTRIBUTE) !== undefined)
      return undefined;
    return undiciHeaderError(this.#headers);
  }

  #deliverError(err: Error): void {
    try {
      if (this.#modern) this.#h.onResponseError?.(this, err);
      else this.#h.onError?.(err);
    } catch {
      // An error callback that throws has nowhere left to report to.
    }
  }

  #finish(): void {
    this.#done = true;
    // Counted once: nothing reaches the caller after the end or an error (`#done`).
    if (this.#counter !== undefined) this.#counter.inFlight--;
    if (this.#owner !== undefined) this.#owner.inFlight--;
  }
}
