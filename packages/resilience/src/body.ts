import { markRequestBodyError } from '@proxyless/core';
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

/**
 * A streamed request body (a Readable, an async iterable such as the one fetch dispatches) shared
 * by the attempts of one call. The source is read once; what was read is kept (up to `limit`
 * bytes) so a later attempt can send it again, then continue from the source. A body can be sent
 * again while the source is untouched (a connect failure read nothing), or when it was read to the
 * end within the limit. An error of the source is marked as the caller's own
 * ({@link markRequestBodyError}): never charged to an endpoint, never retried.
 */
export class BodyRecorder {
  readonly #source: AsyncIterator<unknown>;
  readonly #limit: number;
  readonly #chunks: Buffer[] = [];
  #size = 0;
  #overflow = false;
  #ended = false;
  #touched = false;
  #reading = false;

  constructor(source: AsyncIterable<unknown>, limit = REPLAY_BUFFER_BYTES) {
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

  /** One attempt's body: what was kept, then the rest of the source. */
  attempt(): AsyncIterable<Buffer> {
    return { [Symbol.asyncIterator]: () => this.#iterate() };
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
          markRequestBodyError(error);
          throw error;
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
        if (!this.#overflow) {
          this.#size += chunk.length;
          if (this.#size > this.#limit) {
            this.#overflow = true;
            this.#chunks.length = 0;
          } else this.#chunks.push(chunk);
        }
        yield chunk;
      }
    } finally {
      this.#reading = false;
    }
  }

  /** Release the source (the call is over). */
  close(): void {
    if (!this.#ended) void this.#source.return?.().catch(() => undefined);
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
