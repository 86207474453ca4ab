import { Readable } from 'node:stream';
import { markRequestBodyError, undiciErrors } from '@proxyless/core';
import type { Dispatcher } from 'undici';

type Body = Dispatcher.DispatchOptions['body'];

/**
 * How much of a streamed request body is kept so the request can be sent again: Envoy's default
 * retry buffer (`per_request_buffer_limit_bytes`) is 1 MiB; a body larger than that is sent once.
 */
export const REPLAY_BUFFER_BYTES = 1024 * 1024;

/**
 * Bodies undici can send any number of times: none, a string, bytes (an `ArrayBuffer`, or any
 * `ArrayBufferView`: every typed array and `DataView`, which undici sends as the bytes they view),
 * or a Blob/FormData it re-reads.
 */
export function isReusableBody(body: Body): boolean {
  if (body == null || typeof body === 'string' || ArrayBuffer.isView(body) || body instanceof ArrayBuffer)
    return true;
  const tag = (body as { [Symbol.toStringTag]?: unknown })[Symbol.toStringTag];
  return tag === 'Blob' || tag === 'File' || tag === 'FormData';
}

/**
 * A chunk of a streamed body as the bytes undici would write: a string (UTF-8) or any
 * `ArrayBufferView` (the bytes it views, whatever its element type). Anything else is refused with
 * the `TypeError` (`ERR_INVALID_ARG_TYPE`) undici's writer gets from Node for it — never turned into
 * text: an `ArrayBuffer` chunk fails in `socket.write`, any other value in `Buffer.byteLength`
 * (which is also how a `URLSearchParams` body, an iterable of `[name, value]` arrays, fails).
 */
function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk);
  if (ArrayBuffer.isView(chunk)) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (chunk instanceof ArrayBuffer || chunk instanceof SharedArrayBuffer) {
    const name = chunk.constructor.name;
    throw Object.assign(
      new TypeError(
        `The "chunk" argument must be of type string or an instance of Buffer, TypedArray, or DataView. Received an instance of ${name}`,
      ),
      { code: 'ERR_INVALID_ARG_TYPE' },
    );
  }
  Buffer.byteLength(chunk as string); // throws Node's own ERR_INVALID_ARG_TYPE for this value
  throw new TypeError(`a request body chunk must be a string or bytes, got ${typeof chunk}`);
}

/** The part of a Node stream's `_readableState` undici reads to know a stream body's length. */
interface ReadableState {
  objectMode?: boolean;
  ended?: boolean;
  length?: number;
  errored?: unknown;
}

/**
 * A Node `Readable` as undici tells one (`util.isStream`: `pipe` and `on`), with the state undici
 * reads its length from. undici writes such a body as a stream, and knows its length when it has
 * ended by the time the request is written.
 */
function nodeReadable(body: unknown): (Readable & { _readableState: ReadableState }) | undefined {
  const b = body as { pipe?: unknown; on?: unknown; read?: unknown; _readableState?: unknown } | null;
  if (b === null || typeof b !== 'object') return undefined;
  if (typeof b.pipe !== 'function' || typeof b.on !== 'function' || typeof b.read !== 'function')
    return undefined;
  if (typeof b._readableState !== 'object' || b._readableState === null) return undefined;
  return body as Readable & { _readableState: ReadableState };
}

/**
 * A streamed request body (a Readable, an async iterable such as the one fetch dispatches) shared
 * by the attempts of one call. The source is read once; what was read is kept (up to `limit`
 * bytes) so a later attempt can send it again, then continue from the source. A body can be sent
 * again while the source is untouched (a connect failure read nothing), or when it was read to the
 * end within the limit. An error of the source is marked as the caller's own
 * ({@link markRequestBodyError}): never charged to an endpoint, never retried.
 *
 * Framing is undici's: each attempt of a `Readable` source is itself a `Readable` (of the source's
 * object mode), so undici writes it as it writes the caller's stream, and, as for that stream,
 * sends a `content-length` when the body is over by the time the request is written (undici's
 * `util.bodyLength`: an ended byte stream, after a `read(0)`), `transfer-encoding: chunked`
 * otherwise. Any other source stays an async iterable, whose length undici never knows.
 */
export class BodyRecorder {
  readonly #source: AsyncIterator<unknown>;
  /** The source when it is a Node `Readable`: its attempts are streams. */
  readonly #stream: (Readable & { _readableState: ReadableState }) | undefined;
  readonly #limit: number;
  readonly #chunks: Buffer[] = [];
  #size = 0;
  #overflow = false;
  #ended = false;
  #touched = false;
  #reading = false;

  constructor(source: AsyncIterable<unknown>, limit = REPLAY_BUFFER_BYTES) {
    this.#stream = nodeReadable(source);
    // A Readable's iterator is lazy: it touches the stream at its first `next()`, not here.
    this.#source = source[Symbol.asyncIterator]();
    this.#limit = limit;
  }

  /** The body can be sent (again) in full by another attempt. */
  get replayable(): boolean {
    return !this.#reading && (!this.#touched || (this.#ended && !this.#overflow));
  }

  /** The source was read to its end and every byte is kept (a concurrent hedge may send it). */
  get complete(): boolean {
    return this.#ended && !this.#overflow;
  }

  /** More was read than is kept ({@link REPLAY_BUFFER_BYTES}): the body can never be sent again. */
  get exceeded(): boolean {
    return this.#overflow;
  }

  /**
   * One attempt's body: what was kept, then the rest of the source. A `Readable` when the source
   * is one (see the class notes), otherwise an async iterable.
   */
  attempt(): AsyncIterable<Buffer> {
    if (this.#stream !== undefined)
      return this.#attemptStream(this.#stream._readableState.objectMode === true);
    return { [Symbol.asyncIterator]: () => this.#iterate() };
  }

  /**
   * An attempt as a stream. undici calls `read(0)` on a stream body before it writes the request,
   * then reads its state for the length: so the first read hands over, at once, a body that is
   * already whole — a kept one being sent again, or a source stream that has ended with its bytes
   * buffered — and the attempt ends with it, its length known as the caller's stream's would be.
   * Otherwise each read takes the next chunk from the recorder, as the async iterable does.
   */
  #attemptStream(objectMode: boolean): Readable {
    let chunks: AsyncGenerator<Buffer> | undefined;
    const take = (): Buffer[] | undefined => this.#takeWhole();
    const next = (): AsyncGenerator<Buffer> => {
      chunks ??= this.#iterate();
      return chunks;
    };
    const stream = new Readable({
      objectMode,
      read() {
        if (chunks === undefined) {
          const whole = take();
          if (whole !== undefined) {
            for (const chunk of whole) this.push(chunk);
            this.push(null);
            return;
          }
        }
        next()
          .next()
          .then(
            (step) => {
              if (!this.destroyed) this.push(step.done ? null : step.value);
            },
            (error: Error) => this.destroy(error),
          );
      },
      destroy(error, callback) {
        // Stops the reading (its `finally` runs), so the recorder knows it is no longer read.
        void chunks?.return(undefined).catch(() => undefined);
        callback(error);
      },
    });
    // undici destroys a stream body with its own error when the exchange fails: reported to the
    // call by undici, not a reason to throw here.
    stream.on('error', () => undefined);
    return stream;
  }

  /**
   * The whole body, without waiting, when it can be had so: what was kept, when the source was
   * read to its end within the limit; or, for a byte stream not read yet, what it holds once it
   * has ended (after a `read(0)`, as undici does, so a stream whose end is ready is seen ended).
   * `undefined` otherwise: the body is read chunk by chunk.
   */
  #takeWhole(): Buffer[] | undefined {
    if (this.#reading) return undefined;
    if (this.#ended) return this.#overflow ? undefined : this.#chunks.slice();
    const s = this.#stream;
    if (this.#touched || s === undefined) return undefined;
    const state = s._readableState;
    if (state.objectMode !== false || s.destroyed || state.errored) return undefined;
    s.read(0);
    if (state.ended !== true || !Number.isFinite(state.length)) return undefined;
    this.#touched = true;
    const whole: Buffer[] = [];
    for (let chunk = s.read() as unknown; chunk !== null; chunk = s.read() as unknown) {
      whole.push(toBuffer(chunk));
    }
    this.#ended = true;
    for (const chunk of whole) this.#keep(chunk);
    return whole;
  }

  /** Keep a chunk for another attempt, unless the body is past the limit (then nothing is kept). */
  #keep(chunk: Buffer): void {
    if (this.#overflow) return;
    this.#size += chunk.length;
    if (this.#size > this.#limit) {
      this.#overflow = true;
      this.#chunks.length = 0;
    } else this.#chunks.push(chunk);
  }

  async *#iterate(): AsyncGenerator<Buffer> {
    for (let i = 0; i < this.#chunks.length; i++) yield this.#chunks[i]!;
    if (this.#ended) return;
    this.#reading = true;
    this.#touched = true;
    try {
      for (;;) {
        let step: IteratorResult<unknown>;
        try {
          step = await this.#source.next();
        } catch (error) {
          // A stream destroyed without an error: undici, writing it itself, calls that
          // `RequestAbortedError` (its iterator says "Premature close").
          const e =
            (error as { code?: unknown } | null)?.code === 'ERR_STREAM_PREMATURE_CLOSE' &&
            this.#stream !== undefined &&
            !this.#stream.errored
              ? new undiciErrors.RequestAbortedError()
              : error;
          markRequestBodyError(e);
          throw e;
        }
        if (step.done) {
          this.#ended = true;
          return;
        }
        let chunk: Buffer;
        try {
          chunk = toBuffer(step.value);
        } catch (error) {
          markRequestBodyError(error);
          throw error;
        }
        this.#keep(chunk);
        yield chunk;
      }
    } finally {
      this.#reading = false;
    }
  }

  /**
   * Release the source (the call is over). A caller's stream that was being sent and has not ended
   * (the server answered before reading it all) is destroyed, as undici destroys a stream body it
   * was writing when the exchange ended: a producer piped into it (`pipeline(src, body)`) finishes
   * and lets go of what it holds. Any other source is returned (an iterator's `return()`).
   */
  close(): void {
    if (this.#ended) return;
    const stream = this.#stream;
    if (stream !== undefined && this.#touched) {
      if (!stream.destroyed) stream.destroy();
      return;
    }
    void this.#source.return?.().catch(() => undefined);
  }
}

/** A recorder for a streamed body, or `undefined` when the body is reusable as it is. */
export function recordBody(body: Body): BodyRecorder | undefined {
  if (isReusableBody(body)) return undefined;
  const b = body as unknown as { [Symbol.asyncIterator]?: unknown; [Symbol.iterator]?: unknown };
  if (typeof b[Symbol.asyncIterator] === 'function') return new BodyRecorder(body as AsyncIterable<unknown>);
  if (typeof b[Symbol.iterator] === 'function') {
    const it = body as Iterable<unknown>;
    return new BodyRecorder(
      (async function* () {
        yield* it;
      })(),
    );
  }
  return undefined;
}
