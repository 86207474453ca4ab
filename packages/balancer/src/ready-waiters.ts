/** The callers waiting in `whenReady` for a balancer to have an endpoint to pick. */
import { abortError } from '@proxyless/core';

/** A caller waiting in {@link ObservableBalancer.whenReady}. */
interface Waiter {
  resolve(): void;
  reject(error: unknown): void;
}

/** The pending `whenReady` calls of one balancer. */
export class ReadyWaiters {
  readonly #waiters = new Set<Waiter>();

  get size(): number {
    return this.#waiters.size;
  }

  /** Wait until {@link resolveAll} or {@link rejectAll}, or until `signal` aborts (rejected with its reason). */
  wait(signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#waiters.delete(waiter);
        reject(abortError(signal as AbortSignal));
      };
      const waiter: Waiter = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      };
      this.#waiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Resolve every waiting call. */
  resolveAll(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w.resolve();
  }

  /** Reject every waiting call, each with an error of its own from `error`. */
  rejectAll(error: () => unknown): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w.reject(error());
  }
}
