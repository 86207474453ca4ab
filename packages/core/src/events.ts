/** Something to release: call `dispose()` (idempotent). What a resolver's `watch` returns. */
export interface Disposable {
  dispose(): void;
}

/**
 * What `onXxx(listener)` returns: `dispose()` stops listening, and it is a standard disposable
 * too, so `using sub = mesh.onEvent(listener)` stops listening at the end of the scope.
 */
export interface Subscription extends Disposable, globalThis.Disposable {}

/** `onXxx(listener) → Subscription`. */
export type Event<T> = (listener: (value: T) => void) => Subscription;

/** A minimal event source: `event` is handed to subscribers, `fire` is kept by the owner. */
export interface Emitter<T> {
  readonly event: Event<T>;
  fire(value: T): void;
  readonly size: number;
  clear(): void;
}

/**
 * Create an emitter. A throwing listener does not stop the others; its error is passed to
 * `onListenerError` (default: rethrown asynchronously so it is not lost).
 */
export function createEmitter<T>(onListenerError?: (error: unknown) => void): Emitter<T> {
  let listeners: Array<(value: T) => void> = [];
  return {
    event(listener) {
      listeners = [...listeners, listener];
      let done = false;
      const dispose = (): void => {
        if (done) return;
        done = true;
        listeners = listeners.filter((l) => l !== listener);
      };
      return { dispose, [Symbol.dispose]: dispose };
    },
    fire(value) {
      for (const l of listeners) {
        try {
          l(value);
        } catch (error) {
          if (onListenerError) onListenerError(error);
          else
            queueMicrotask(() => {
              throw error;
            });
        }
      }
    },
    get size() {
      return listeners.length;
    },
    clear() {
      listeners = [];
    },
  };
}

/** Run once: every caller of the returned function gets the first call's promise. */
export function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => {
    p ??= fn();
    return p;
  };
}
