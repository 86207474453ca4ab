import {
  type Clock,
  type Disposable,
  type Logger,
  type MeshError,
  noopLogger,
  type Random,
  systemClock,
  systemRandom,
  type Timer,
} from '@proxyless/core';
import type { Etcd3, IWatchResponse, Watcher } from 'etcd3';
import { type BackoffOptions, backoffDelay } from '../backoff.js';
import {
  asEtcd3,
  createEtcdClient,
  type EtcdClient,
  type EtcdConnectionOptions,
  ownWatch,
  unavailable,
} from './client.js';

/** One key and its value, as the whole-prefix snapshot holds them. */
export interface EtcdPrefixPair {
  readonly key: string;
  readonly value: Uint8Array;
}

/** Options of {@link watchEtcdPrefix}. */
export interface EtcdPrefixWatchOptions extends EtcdConnectionOptions {
  /** The prefix watched (for config entries: `/proxyless/config/`). */
  prefix: string;
  /** An existing client (not closed by the watch); otherwise one is created from the options. */
  client?: EtcdClient;
  /** Called with every key under the prefix after the listing and after each change. */
  onSnapshot: (pairs: readonly EtcdPrefixPair[], revision: number) => void;
  /**
   * Quiet period, in ms: changes that follow each other within it are handed over as one snapshot
   * (the newest), so a burst of puts is validated and compiled once rather than once per put; a
   * steady stream is still handed over at least every `10 × coalesceMs`. The listing is handed
   * over at once. 0 coalesces only the changes that arrive before the next timer turn.
   * @defaultValue 20
   */
  coalesceMs?: number;
  /** Called when listing or watching fails; the last snapshot stays in force. */
  onError?: (error: MeshError) => void;
  /** Called when, after {@link onError}, a listing succeeds or the watch is connected again. */
  onRecover?: () => void;
  /** @defaultValue `{ baseMs: 200, capMs: 10000 }` */
  backoff?: BackoffOptions;
  clock?: Clock;
  random?: Random;
  logger?: Logger;
}

/**
 * Watch every key under an etcd prefix as one document: list it, then watch from the listed
 * revision + 1, and hand the whole snapshot (with its revision) to `onSnapshot` after each change
 * (a burst of changes once, see `coalesceMs`), so the consumer validates and applies it as one
 * version. A broken watch lists the prefix again and watches from there (the snapshot is handed
 * over again only when it changed, so a wiped or restored etcd is followed too); failures back
 * off with full jitter.
 *
 * @returns stops the watch (and closes the client it created).
 */
export function watchEtcdPrefix(options: EtcdPrefixWatchOptions): Disposable {
  const w = new PrefixWatch(options);
  w.start();
  return { dispose: () => w.stop() };
}

class PrefixWatch {
  readonly #o: EtcdPrefixWatchOptions;
  /** Settles once `etcd3` is loaded (an optional peer dependency, imported on first use). */
  readonly #loading: Promise<Etcd3>;
  #client: Etcd3 | undefined;
  readonly #owns: boolean;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #logger: Logger;
  readonly #state = new Map<string, Uint8Array>();
  #revision: number | undefined;
  /** The cluster id of the last listing (a wiped or rebuilt etcd has another). */
  #cluster: string | undefined;
  #watcher: Watcher | undefined;
  #timer: Timer | undefined;
  /** The pending hand-over of coalesced changes, and when the first of them arrived. */
  #pending: Timer | undefined;
  #pendingSince = 0;
  #attempt = 0;
  /** The last listing or watch failed, and nothing has succeeded since. */
  #failing = false;
  #stopped = false;

  constructor(options: EtcdPrefixWatchOptions) {
    this.#o = options;
    this.#owns = options.client === undefined;
    this.#loading = (options.client ? Promise.resolve(options.client) : createEtcdClient(options)).then(
      asEtcd3,
    );
    this.#loading.catch(() => undefined);
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? systemRandom;
    this.#logger = options.logger ?? noopLogger;
  }

  start(): void {
    void this.#list();
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#timer?.cancel();
    this.#pending?.cancel();
    this.#drop();
    if (this.#owns)
      this.#loading.then(
        (c) => c.close(),
        () => undefined,
      );
  }

  /** Hand the snapshot over once the changes pause (see `coalesceMs`); the newest state wins. */
  #schedule(): void {
    const quiet = Math.max(0, this.#o.coalesceMs ?? 20);
    const now = this.#clock.now();
    if (this.#pending === undefined) this.#pendingSince = now;
    this.#pending?.cancel();
    const delay = Math.max(0, Math.min(quiet, this.#pendingSince + quiet * 10 - now));
    this.#pending = this.#clock.setTimer(delay, () => {
      this.#pending = undefined;
      if (!this.#stopped) this.#emit();
    });
  }

  #emit(): void {
    this.#pending?.cancel();
    this.#pending = undefined;
    const pairs = [...this.#state].map(([key, value]) => ({ key, value }));
    this.#o.onSnapshot(pairs, this.#revision ?? 0);
  }

  async #list(): Promise<void> {
    if (this.#stopped) return;
    this.#drop();
    try {
      this.#client ??= await this.#loading;
      if (this.#stopped) return;
      const res = await this.#client.getAll().prefix(this.#o.prefix).exec();
      if (this.#stopped) return;
      const listed = Number(res.header.revision);
      const cluster = String(res.header.cluster_id);
      const next = new Map<string, Uint8Array>();
      for (const kv of res.kvs) next.set(kv.key.toString(), new Uint8Array(kv.value));
      const first = this.#revision === undefined;
      if (!first && (cluster !== this.#cluster || listed < (this.#revision ?? 0)))
        // etcd was wiped, rebuilt or restored from an older snapshot: this listing is the state now.
        this.#logger.warn(
          'etcd revision went back or the cluster changed; the listing replaces the snapshot',
          {
            prefix: this.#o.prefix,
            revision: this.#revision,
            listed,
          },
        );
      const changed = first || cluster !== this.#cluster || !sameState(this.#state, next);
      this.#state.clear();
      for (const [k, v] of next) this.#state.set(k, v);
      this.#cluster = cluster;
      this.#revision = listed;
      this.#attempt = 0;
      this.#recovered();
      // A listing after a break that finds the snapshot as it was hands nothing over.
      if (changed) this.#emit();
      this.#watch(listed + 1);
    } catch (error) {
      if (this.#stopped) return;
      this.#fail(unavailable(`listing ${this.#o.prefix}`, error), () => this.#list());
    }
  }

  #watch(from: number): void {
    const client = this.#client;
    if (this.#stopped || client === undefined) return;
    const watcher = ownWatch(client).prefix(this.#o.prefix).startRevision(String(from)).watcher();
    this.#watcher = watcher;
    const current = (): boolean => this.#watcher === watcher && !this.#stopped;
    watcher.on('connected', () => {
      if (!current()) return;
      this.#attempt = 0;
      this.#recovered();
    });
    watcher.on('data', (res: IWatchResponse) => {
      if (!current() || res.events.length === 0) return;
      for (const ev of res.events) {
        const key = ev.kv.key.toString();
        if (ev.type === 'Put') this.#state.set(key, new Uint8Array(ev.kv.value));
        else this.#state.delete(key);
        this.#revision = Math.max(this.#revision ?? 0, Number(ev.kv.mod_revision));
      }
      this.#schedule();
    });
    const broken = (error: unknown): void => {
      if (!current()) return;
      this.#drop();
      const message = error instanceof Error ? error.message : String(error);
      if (/compacted/i.test(message) || /^Watcher canceled:\s*$/.test(message)) {
        void this.#list();
        return;
      }
      // Listed again rather than resumed from the last revision: the listing is the state whatever
      // happened meanwhile, a wiped or restored etcd included (a resumed watch would wait there for
      // a revision the new cluster has not reached, and miss every change until then).
      this.#fail(unavailable(`watch of ${this.#o.prefix} broke`, error), () => void this.#list());
    };
    watcher.on('disconnected', broken);
    watcher.on('error', broken);
  }

  #recovered(): void {
    if (!this.#failing) return;
    this.#failing = false;
    this.#logger.info('etcd prefix watch reading again', { prefix: this.#o.prefix });
    this.#o.onRecover?.();
  }

  #fail(error: MeshError, retry: () => void): void {
    this.#logger.warn('etcd prefix watch failed', { prefix: this.#o.prefix, error, attempt: this.#attempt });
    this.#failing = true;
    this.#o.onError?.(error);
    const delay = backoffDelay(
      this.#attempt++,
      this.#o.backoff ?? { baseMs: 200, capMs: 10_000 },
      this.#random,
    );
    this.#timer?.cancel();
    this.#timer = this.#clock.setTimer(delay, () => {
      this.#timer = undefined;
      if (!this.#stopped) retry();
    });
  }

  #drop(): void {
    const w = this.#watcher;
    this.#watcher = undefined;
    w?.cancel().catch(() => undefined);
  }
}

function sameState(a: ReadonlyMap<string, Uint8Array>, b: ReadonlyMap<string, Uint8Array>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (w === undefined || !Buffer.from(v).equals(w)) return false;
  }
  return true;
}
