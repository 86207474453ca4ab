import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { MeshError } from '@proxyless/core';
import { Dispatcher } from 'undici';
import { DirectBody } from './direct.js';

/** What the dispatcher asks of the mesh. */
export interface DispatchTarget {
  /**
   * Start a mesh call for these dispatch options, or return `undefined` when the origin is not a
   * mesh service (then the dispatcher passes it through).
   */
  /**
   * Start a mesh call, or return `undefined` for a pass-through origin. `signal()` creates the
   * call's abort signal; it is only called for mesh destinations (creating one is not free).
   */
  start(opts: Dispatcher.DispatchOptions, signal: () => AbortSignal): Promise<MeshResponseHead> | undefined;
  passthrough(): Dispatcher | undefined;
  close(): Promise<void>;
  destroy(): Promise<void>;
}

export interface MeshResponseHead {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable;
  trailers?: Record<string, string | string[] | undefined>;
}

type AnyHandler = Dispatcher.DispatchHandler;

/**
 * The mesh as an undici `Dispatcher`: `undici.fetch`, `undici.request` and Node's global `fetch`
 * (after `mesh.install()`) go through it. Mesh services run the mesh pipeline and the answer is
 * replayed into the caller's handler with back-pressure; other origins go to the pass-through agent
 * untouched. Both handler styles are served: the `onResponseStart` family (undici 7) and the older
 * `onHeaders` family (Node 20's bundled undici).
 */
export class MeshDispatcher extends Dispatcher {
  #target: DispatchTarget;

  constructor(target: DispatchTarget) {
    super();
    this.#target = target;
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: AnyHandler): boolean {
    let ac: AbortController | undefined;
    let started: Promise<MeshResponseHead> | undefined;
    try {
      started = this.#target.start(opts, () => {
        ac = new AbortController();
        return ac.signal;
      });
    } catch (error) {
      fail(handler, error as Error);
      return true;
    }
    if (started === undefined) {
      const agent = this.#target.passthrough();
      if (agent) return agent.dispatch(opts, handler);
      const origin = String(opts.origin ?? '');
      fail(
        handler,
        new MeshError(
          'MESH_UNKNOWN_SERVICE',
          `"${origin}" is not a mesh service and pass-through is disabled`,
          {
            details: { field: 'origin', value: origin },
          },
        ),
      );
      return true;
    }
    const sink = new HandlerSink(handler, (reason) => ac?.abort(reason));
    started.then(
      (head) => sink.replay(head),
      (error: Error) => sink.error(error),
    );
    return true;
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    const p = this.#target.close();
    if (callback) {
      p.then(callback, callback);
      return;
    }
    return p;
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(a?: unknown, b?: unknown): Promise<void> | void {
    const callback = typeof a === 'function' ? a : typeof b === 'function' ? b : undefined;
    const p = this.#target.destroy();
    if (callback) {
      p.then(callback as () => void, callback as () => void);
      return;
    }
    return p;
  }
}

function fail(handler: AnyHandler, error: Error): void {
  const sink = new HandlerSink(handler, () => undefined);
  sink.error(error);
}

/** The dispatch controller a handler sees: a class, so nothing is defined per request. */
class SinkController implements Dispatcher.DispatchController {
  readonly #sink: HandlerSink;
  constructor(sink: HandlerSink) {
    this.#sink = sink;
  }
  get paused(): boolean {
    return this.#sink.paused;
  }
  get aborted(): boolean {
    return this.#sink.aborted;
  }
  get reason(): Error | null {
    return this.#sink.reason;
  }
  abort(reason?: Error): void {
    this.#sink.abort(reason);
  }
  pause(): void {
    this.#sink.pause();
  }
  resume(): void {
    this.#sink.resume();
  }
}

/** Feeds one response into a handler of either style, honouring pause/resume. */
class HandlerSink {
  #h: AnyHandler;
  #modern: boolean;
  #abort: (reason?: Error) => void;
  #body: Readable | undefined;
  #paused = false;
  #aborted = false;
  #reason: Error | null = null;
  #done = false;
  #controller: Dispatcher.DispatchController;

  constructor(handler: AnyHandler, abort: (reason?: Error) => void) {
    this.#h = handler;
    this.#modern =
      typeof handler.onRequestStart === 'function' || typeof handler.onResponseStart === 'function';
    this.#abort = abort;
    this.#controller = new SinkController(this);
    if (this.#modern) this.#h.onRequestStart?.(this.#controller, {});
    else this.#h.onConnect?.((err?: Error) => this.#onAbort(err));
  }

  get paused(): boolean {
    return this.#paused;
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  get reason(): Error | null {
    return this.#reason;
  }

  pause(): void {
    this.#paused = true;
    this.#body?.pause();
  }

  resume(): void {
    this.#paused = false;
    this.#body?.resume();
  }

  abort(reason?: Error): void {
    this.#onAbort(reason);
  }

  #onAbort(reason?: Error): void {
    if (this.#aborted || this.#done) return;
    this.#aborted = true;
    this.#reason = reason ?? new MeshError('MESH_ABORTED', 'the request was aborted by the caller');
    this.#abort(this.#reason);
    this.#body?.destroy(this.#reason);
  }

  replay(head: MeshResponseHead): void {
    const body = head.body;
    this.#body = body;
    if (this.#aborted) {
      body.destroy();
      this.error(this.#reason!);
      return;
    }
    const h = this.#h;
    if (this.#modern) {
      h.onResponseStart?.(this.#controller, head.status, head.headers as IncomingHttpHeaders, '');
    } else {
      const keepGoing = h.onHeaders?.(
        head.status,
        toRawHeaders(head.headers),
        () => this.#controller.resume(),
        '',
      );
      if (keepGoing === false) this.#controller.pause();
    }
    const onData = (chunk: Buffer): void => {
      if (this.#done) return;
      if (this.#modern) {
        h.onResponseData?.(this.#controller, chunk);
        if (this.#paused) body.pause();
      } else if (h.onData?.(chunk) === false) {
        this.#controller.pause();
      }
    };
    const onEnd = (trailers: Record<string, string | string[] | undefined>): void => {
      if (this.#done) return;
      this.#done = true;
      if (this.#modern) h.onResponseEnd?.(this.#controller, trailers as IncomingHttpHeaders);
      else h.onComplete?.(toRawHeaders(trailers).map((b) => b.toString('latin1')));
    };
    if (body instanceof DirectBody) {
      // Straight from the connection to the caller's handler; pause/resume act on the connection.
      body.attach({ data: onData, end: onEnd, error: (err) => this.error(err) });
      if (this.#paused) body.pause();
      return;
    }
    if (this.#paused) body.pause();
    body.on('data', onData);
    body.once('end', () => onEnd(head.trailers ?? {}));
    body.once('error', (err: Error) => this.error(err));
    if (!this.#paused) body.resume();
  }

  error(err: Error): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#modern && this.#h.onResponseError) this.#h.onResponseError(this.#controller, err);
    else if (this.#h.onError) this.#h.onError(err);
  }
}

function toRawHeaders(headers: Record<string, string | string[] | undefined>): Buffer[] {
  const raw: Buffer[] = [];
  for (const key in headers) {
    const v = headers[key];
    if (v === undefined) continue;
    if (Array.isArray(v)) {
      for (const item of v) raw.push(Buffer.from(key, 'latin1'), Buffer.from(item, 'latin1'));
    } else {
      raw.push(Buffer.from(key, 'latin1'), Buffer.from(v, 'latin1'));
    }
  }
  return raw;
}
