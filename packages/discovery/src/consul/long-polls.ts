/**
 * Slots for blocking queries, shared by every Consul client of the process that talks to the same
 * agent.
 *
 * Each blocking query holds one connection for its whole `wait`, and an agent accepts at most
 * `limits.http_max_conns_per_client` (default 200) connections per client IP, answering the next
 * one with 429 (hashicorp/go-connlimit). A pool shared with other requests starves: with more
 * watches than connections, a watch's request waits in the pool queue for up to a whole `wait`
 * while its service changes. So long polls get their own connections, one per active watch, up
 * to a process-wide cap below 200. Beyond the cap the watches take turns (FIFO), each blocking
 * for a `wait` scaled down by `cap / watches`, so every watch still gets a fresh answer about once
 * per `wait`; crossing the cap is reported once.
 */
import { processWide } from '@proxyless/core';

/** Process-wide cap on concurrent blocking queries to one agent. @defaultValue 128 */
export const DEFAULT_MAX_LONG_POLLS = 128;

/** Shortest `wait` a watch is scaled down to when watches exceed the cap, in ms. */
export const MIN_SHARED_WAIT_MS = 1_000;

/** Emitted when the number of watches on one agent first exceeds the cap. */
export interface LongPollLimitEvent {
  type: 'long-poll-limit';
  /** Watches on this agent now. */
  watches: number;
  /** The cap on concurrent blocking queries. */
  limit: number;
}

/** A watch's membership in the slots of its agent. */
export interface LongPollWatch {
  /** The `wait` to send now: `waitMs`, scaled down while watches exceed the cap. */
  waitMs(waitMs: number): number;
  /** Take a slot for one call; resolves with its release (`undefined` when aborted). */
  acquire(signal: AbortSignal): Promise<(() => void) | undefined>;
  /** Leave: the watch stopped. */
  leave(): void;
}

/** The blocking-query slots of one agent address. */
export class LongPollSlots {
  readonly #limits: number[] = [];
  #watches = 0;
  #active = 0;
  #over = false;
  readonly #queue: Array<() => void> = [];

  get limit(): number {
    return this.#limits.length ? Math.min(...this.#limits) : DEFAULT_MAX_LONG_POLLS;
  }

  get watches(): number {
    return this.#watches;
  }

  /** Blocking queries in flight. */
  get active(): number {
    return this.#active;
  }

  /** A client using these slots with its own cap (the smallest cap of all users applies). */
  addUser(limit: number): void {
    this.#limits.push(limit);
  }

  /** Returns `true` when no user is left. */
  removeUser(limit: number): boolean {
    const i = this.#limits.indexOf(limit);
    if (i >= 0) this.#limits.splice(i, 1);
    this.#drain();
    return this.#limits.length === 0;
  }

  /** Add a watch; `onLimit` is called when this watch takes the count past the cap. */
  join(onLimit: (event: LongPollLimitEvent) => void): LongPollWatch {
    this.#watches += 1;
    if (this.#watches > this.limit && !this.#over) {
      this.#over = true;
      onLimit({ type: 'long-poll-limit', watches: this.#watches, limit: this.limit });
    }
    let left = false;
    return {
      waitMs: (waitMs) => {
        const limit = this.limit;
        if (this.#watches <= limit) return waitMs;
        return Math.max(MIN_SHARED_WAIT_MS, Math.floor((waitMs * limit) / this.#watches));
      },
      acquire: (signal) => this.#acquire(signal),
      leave: () => {
        if (left) return;
        left = true;
        this.#watches -= 1;
        if (this.#watches <= this.limit) this.#over = false;
      },
    };
  }

  #acquire(signal: AbortSignal): Promise<(() => void) | undefined> {
    if (signal.aborted) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const grant = (): void => {
        signal.removeEventListener('abort', onAbort);
        this.#active += 1;
        let released = false;
        resolve(() => {
          if (released) return;
          released = true;
          this.#active -= 1;
          this.#drain();
        });
      };
      const onAbort = (): void => {
        const i = this.#queue.indexOf(grant);
        if (i >= 0) this.#queue.splice(i, 1);
        resolve(undefined);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#queue.push(grant);
      this.#drain();
    });
  }

  #drain(): void {
    while (this.#active < this.limit && this.#queue.length) this.#queue.shift()?.();
  }
}

// Per agent for the whole process, whichever copy of this package (proxyless bundles one) asks.
const slotsByAgent = processWide('proxyless.consulLongPollSlots.1', () => new Map<string, LongPollSlots>());

/** The slots of the agent at `key` (its origin or socket path), shared process-wide. */
export function longPollSlots(key: string, limit: number): LongPollSlots {
  let slots = slotsByAgent.get(key);
  if (!slots) {
    slots = new LongPollSlots();
    slotsByAgent.set(key, slots);
  }
  slots.addUser(limit);
  return slots;
}

/** Release a client's use of the slots of `key`. */
export function releaseLongPollSlots(key: string, limit: number): void {
  // Watches still finishing (aborted by their resolver's close) only leave a detached object.
  if (slotsByAgent.get(key)?.removeUser(limit)) slotsByAgent.delete(key);
}
