import { UndiciDispatcher } from '@proxyless/core';
import type { Dispatcher } from 'undici';

/** What the dispatcher asks of the mesh. */
export interface DispatchTarget {
  /** Dispatch one request: a mesh call, or pass-through for other origins. */
  dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean;
  close(): Promise<void>;
  destroy(reason?: Error): Promise<void>;
  /** `close()` or `destroy()` was called. */
  readonly closed: boolean;
  /** `destroy()` was called. */
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

  /** True once `close()` or `destroy()` was called: new requests are refused (`MESH_CLOSED`). */
  get closed(): boolean {
    return this.#target.closed;
  }

  /** True once `destroy()` was called. */
  get destroyed(): boolean {
    return this.#target.destroyed;
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
    // As undici's `destroy(err)`: requests in flight fail with `err`.
    const p = this.#target.destroy(a instanceof Error ? a : undefined);
    if (callback) {
      p.then(callback as () => void, callback as () => void);
      return;
    }
    return p;
  }
}
