import {
  type Clock,
  createEndpointSet,
  type Disposable,
  type Endpoint,
  type EndpointSet,
  type Logger,
  type MeshError,
  markStale,
  noopLogger,
  type ResolverListener,
  type ResolverUpdate,
  sameEndpoints,
} from '@proxyless/core';

/** Where an upstream watch reports what it learned. */
export interface WatchSink {
  /** A healthy answer: applied as is (an empty list is applied: the service really has none). */
  endpoints(endpoints: readonly Endpoint[]): void;
  /** A failed refresh: the hub keeps the last good set (marked stale) and reports the error. */
  error(error: MeshError): void;
}

/** Start one upstream watch of `service`; return a function that stops it. */
export type StartWatch = (service: string, sink: WatchSink) => () => void;

export interface ResolverHubOptions {
  /** The resolver's name, recorded as each set's `source`. */
  name: string;
  clock: Clock;
  start: StartWatch;
  logger?: Logger;
}

interface ServiceState {
  /** Each watcher with the last update it was given (so none gets the same update twice). */
  listeners: Map<ResolverListener, ResolverUpdate | undefined>;
  stop: (() => void) | undefined;
  set: EndpointSet | undefined;
  last: ResolverUpdate | undefined;
  version: number;
}

/**
 * The watch bookkeeping every resolver shares: one upstream watch per service whatever the
 * number of watchers, versioned immutable sets, last-known-good on failure (marked stale, never
 * emptied), asynchronous delivery, and replay of the current state to late watchers.
 */
export class ResolverHub {
  readonly #name: string;
  readonly #clock: Clock;
  readonly #start: StartWatch;
  readonly #logger: Logger;
  readonly #services = new Map<string, ServiceState>();
  /** Services with an update not yet given to their listeners (see {@link flush}). */
  readonly #pending = new Set<ServiceState>();
  #closed = false;

  constructor(options: ResolverHubOptions) {
    this.#name = options.name;
    this.#clock = options.clock;
    this.#start = options.start;
    this.#logger = options.logger ?? noopLogger;
  }

  /** Watch `service`; the first update arrives on a later tick. */
  watch(service: string, listener: ResolverListener): Disposable {
    if (this.#closed) return { dispose: () => undefined };
    let state = this.#services.get(service);
    if (state === undefined) {
      state = { listeners: new Map(), stop: undefined, set: undefined, last: undefined, version: 0 };
      this.#services.set(service, state);
    }
    const s = state;
    s.listeners.set(listener, undefined);
    if (s.last !== undefined) queueMicrotask(() => this.#give(s, listener, s.last));
    if (s.stop === undefined) {
      const sink = this.#sink(service, s);
      try {
        s.stop = this.#start(service, sink);
      } catch (error) {
        s.stop = () => undefined;
        this.#logger.error('registry watch failed to start', { resolver: this.#name, service, error });
      }
    }
    let disposed = false;
    return {
      dispose: () => {
        if (disposed) return;
        disposed = true;
        s.listeners.delete(listener);
        if (s.listeners.size === 0 && this.#services.get(service) === s) {
          this.#services.delete(service);
          s.stop?.();
          s.stop = undefined;
        }
      },
    };
  }

  /** The current set of a watched service, if any answer arrived. */
  current(service: string): EndpointSet | undefined {
    return this.#services.get(service)?.set;
  }

  /** Services with at least one watcher. */
  services(): string[] {
    return [...this.#services.keys()];
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      for (const s of this.#services.values()) {
        s.listeners.clear();
        s.stop?.();
        s.stop = undefined;
      }
      this.#services.clear();
    }
    return Promise.resolve();
  }

  #sink(service: string, s: ServiceState): WatchSink {
    const live = (): boolean => !this.#closed && this.#services.get(service) === s;
    return {
      endpoints: (endpoints) => {
        if (!live()) return;
        const now = this.#clock.now();
        const prev = s.set;
        if (prev !== undefined && !prev.stale && sameEndpoints(prev.endpoints, endpoints)) {
          // Nothing changed: confirm freshness without waking watchers.
          s.set = createEndpointSet({ ...prev, updatedAt: now });
          s.last = { kind: 'endpoints', set: s.set };
          return;
        }
        s.version++;
        s.set = createEndpointSet({
          service,
          version: s.version,
          endpoints,
          source: this.#name,
          updatedAt: now,
        });
        this.#deliver(s, { kind: 'endpoints', set: s.set });
      },
      error: (error) => {
        if (!live()) return;
        const lastGood = s.set === undefined ? undefined : markStale(s.set, this.#clock.now());
        s.set = lastGood;
        this.#deliver(s, { kind: 'error', error, lastGood });
      },
    };
  }

  #deliver(s: ServiceState, update: ResolverUpdate): void {
    s.last = update;
    this.#pending.add(s);
    queueMicrotask(() => {
      if (s.last !== update) return; // superseded before delivery
      this.#pending.delete(s);
      for (const l of [...s.listeners.keys()]) this.#give(s, l, update);
    });
  }

  /**
   * Give every update not yet delivered to its listeners now, not on a later tick: for an owner
   * that swaps its endpoints together with other state (a config document's endpoints and its
   * policy), so that no caller sees one without the other. A listener never gets an update twice.
   */
  flush(): void {
    const pending = [...this.#pending];
    this.#pending.clear();
    for (const s of pending) {
      const update = s.last;
      for (const l of [...s.listeners.keys()]) this.#give(s, l, update);
    }
  }

  #give(s: ServiceState, listener: ResolverListener, update: ResolverUpdate | undefined): void {
    if (update === undefined || !s.listeners.has(listener) || s.listeners.get(listener) === update) return;
    s.listeners.set(listener, update);
    try {
      listener(update);
    } catch (error) {
      this.#logger.error('resolver listener threw', { resolver: this.#name, error });
    }
  }
}
