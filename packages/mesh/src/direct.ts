import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';

/** Where a {@link DirectBody} delivers once a handler takes it over. */
export interface DirectSink {
  data(chunk: Buffer): void;
  end(trailers: Record<string, string | string[] | undefined>): void;
  error(error: Error): void;
}

/**
 * The response body of an attempt dispatched on the fetch/dispatcher path. Until a caller takes it
 * over it is an ordinary `Readable` (filters may read, dump or destroy it); once the mesh's
 * dispatcher `attach`es the caller's handler, chunks go from the connection straight to that
 * handler — no stream buffering in between — and pause/resume/destroy act on the connection.
 */
export class DirectBody extends Readable {
  readonly #controller: Dispatcher.DispatchController;
  #sink: DirectSink | undefined;
  #finished = false;
  #trailers: Record<string, string | string[] | undefined> = {};

  constructor(controller: Dispatcher.DispatchController) {
    super();
    this.#controller = controller;
  }

  override _read(): void {
    this.#controller.resume();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.#finished) this.#controller.abort(error ?? new Error('response body destroyed'));
    // Once attached, the caller's handler learns of errors through the sink, not stream events.
    callback(this.#sink ? null : error);
  }

  /** A chunk from the connection. */
  feed(chunk: Buffer): void {
    if (this.#sink) this.#sink.data(chunk);
    else if (!this.push(chunk)) this.#controller.pause();
  }

  /** The response ended. */
  finish(trailers: Record<string, string | string[] | undefined>): void {
    this.#finished = true;
    this.#trailers = trailers;
    if (this.#sink) this.#sink.end(trailers);
    else this.push(null);
  }

  /** The connection failed mid-body. */
  fail(error: Error): void {
    this.#finished = true;
    if (this.#sink) this.#sink.error(error);
    else this.destroy(error);
  }

  /**
   * Hand delivery to `sink`: whatever was already buffered first, then every later chunk straight
   * from the connection.
   */
  attach(sink: DirectSink): void {
    for (let chunk = this.read() as Buffer | null; chunk !== null; chunk = this.read() as Buffer | null) {
      sink.data(chunk);
    }
    this.#sink = sink;
    if (this.#finished && !this.destroyed) sink.end(this.#trailers);
    else this.#controller.resume();
  }

  override pause(): this {
    if (this.#sink) {
      this.#controller.pause();
      return this;
    }
    return super.pause();
  }

  override resume(): this {
    if (this.#sink) {
      this.#controller.resume();
      return this;
    }
    return super.resume();
  }
}

/** What the terminal learns from one directly dispatched attempt. */
export interface DirectCallbacks {
  /** The response head arrived. */
  head(status: number, headers: Record<string, string | string[] | undefined>, body: DirectBody): void;
  /** The attempt failed before the head. */
  fail(error: Error): void;
}

/**
 * A dispatch handler (undici's `onRequestStart` family) for one attempt: resolves at the response
 * head with a {@link DirectBody}, aborts when `signal` does.
 */
export class DirectHandler implements Dispatcher.DispatchHandler {
  readonly #cb: DirectCallbacks;
  readonly #signal: AbortSignal | undefined;
  #controller: Dispatcher.DispatchController | undefined;
  #body: DirectBody | undefined;
  #done = false;
  readonly #onAbort = (): void => {
    this.#controller?.abort(this.#signal!.reason as Error);
  };

  constructor(signal: AbortSignal | undefined, callbacks: DirectCallbacks) {
    this.#signal = signal;
    this.#cb = callbacks;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#signal === undefined) return;
    if (this.#signal.aborted) controller.abort(this.#signal.reason as Error);
    else this.#signal.addEventListener('abort', this.#onAbort, { once: true });
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    this.#body = new DirectBody(controller);
    this.#cb.head(statusCode, headers, this.#body);
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#body?.feed(chunk);
  }

  onResponseEnd(
    _controller: Dispatcher.DispatchController,
    trailers: Record<string, string | string[] | undefined>,
  ): void {
    this.#release();
    this.#body?.finish(trailers);
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.#release();
    if (this.#body) this.#body.fail(error);
    else this.#cb.fail(error);
  }

  #release(): void {
    if (this.#done) return;
    this.#done = true;
    this.#signal?.removeEventListener('abort', this.#onAbort);
  }
}
