import { UndiciDispatcher, undiciErrors } from '@proxyless/core';
import type { Dispatcher } from 'undici';

/** What the dispatcher asks of the mesh. */
export interface DispatchTarget {
  /** Dispatch one request: a mesh call, or pass-through for other origins. */
  dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean;
  close(): Promise<void>;
  destroy(reason?: Error): Promise<void>;
  /** `close()` was called. */
  readonly closed: boolean;
  /** `destroy()` was called, or `close()` finished. */
  readonly destroyed: boolean;
}

/**
 * The mesh as an undici `Dispatcher`: `mesh.request` (undici's `request()`), `mesh.fetch` (undici's
 * `fetch`), Node's global `fetch` after `mesh.install()`, and any undici API given
 * `{ dispatcher: mesh.dispatcher }` all take this one path. Mesh services go through their
 * destination's interceptor stack; other origins go to the pass-through agent untouched.
 */
export class MeshDispatcher extends UndiciDispatcher {
  readonly #target: DispatchTarget;

  constructor(target: DispatchTarget) {
    super();
    this.#target = target;
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return this.#target.dispatch(opts, handler);
  }

  /**
   * True once `close()` was called, as undici's (`destroy()` alone leaves it false). From `close()`
   * or `destroy()` on, new requests are refused (`MESH_CLOSED`).
   */
  get closed(): boolean {
    return this.#target.closed;
  }

  /** True once `destroy()` was called or `close()` finished, as undici's (its `close()` ends by destroying). */
  get destroyed(): boolean {
    return this.#target.destroyed;
  }

  override close(): Promise<void>;
  override close(callback: (err: Error | null, data: null) => void): void;
  override close(callback?: unknown): Promise<void> | void {
    // undici's `DispatcherBase.close`: a callback must be a function; once destroyed (`destroy()`,
    // or a `close()` that finished) it fails with `ClientDestroyedError`; while closing, a second
    // `close()` waits for the first; callbacks get `(err, data)`.
    if (callback === undefined) {
      if (this.#target.destroyed) return Promise.reject(new undiciErrors.ClientDestroyedError());
      return this.#target.close();
    }
    if (typeof callback !== 'function') throw new undiciErrors.InvalidArgumentError('invalid callback');
    const done = callback as (err: Error | null, data: null) => void;
    if (this.#target.destroyed) {
      queueMicrotask(() => done(new undiciErrors.ClientDestroyedError(), null));
      return;
    }
    this.#target.close().then(
      () => done(null, null),
      (error: Error) => done(error, null),
    );
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: (err: Error | null, data: null) => void): void;
  override destroy(err: Error | null, callback: (err: Error | null, data: null) => void): void;
  override destroy(a?: unknown, b?: unknown): Promise<void> | void {
    // undici's `DispatcherBase.destroy`: `destroy(callback)` or `destroy(err, callback)`.
    const err = typeof a === 'function' ? undefined : a;
    const callback = typeof a === 'function' ? a : b;
    // As undici's `destroy(err)`: requests in flight fail with `err`.
    const reason = err instanceof Error ? err : undefined;
    if (callback === undefined) return this.#target.destroy(reason);
    if (typeof callback !== 'function') throw new undiciErrors.InvalidArgumentError('invalid callback');
    const done = callback as (err: Error | null, data: null) => void;
    this.#target.destroy(reason).then(
      () => done(null, null),
      (error: Error) => done(error, null),
    );
  }
}
