import {
  type Clock,
  configError,
  type Disposable,
  type EndpointSet,
  type Logger,
  MeshError,
  noopLogger,
  type Random,
  type Resolver,
  type ResolverListener,
  systemClock,
  systemRandom,
  type Timer,
} from '@proxyless/core';
import type { Etcd3, IWatchResponse, Watcher } from 'etcd3';
import { type BackoffOptions, backoffDelay } from '../backoff.js';
import { ResolverHub, type StartWatch, type WatchSink } from '../hub.js';
import {
  asEtcd3,
  createEtcdClient,
  type EtcdClient,
  type EtcdConnectionOptions,
  normalizePrefix,
  ownWatch,
  unavailable,
} from './client.js';
import { DEFAULT_MAX_VALUE_BYTES, EtcdServiceState } from './codec.js';

/** Options of {@link createEtcdResolver}. */
export interface EtcdResolverOptions extends EtcdConnectionOptions {
  /**
   * An existing client to use instead of creating one from the connection options. It belongs to
   * the caller: `close()` does not close it.
   */
  client?: EtcdClient;
  /**
   * Key prefix; an endpoint of service `s` with id `i` is the key `<prefix>s/i`.
   * @defaultValue `/proxyless/services/`
   */
  prefix?: string;
  /**
   * Host names `<service>.<suffix>` match the service `<service>` (for example with
   * `svc.etcd`, `payments.svc.etcd` → `payments`).
   */
  suffix?: string;
  /**
   * Whether bare single-label host names (`payments`) match the service of that name.
   * `localhost` never matches.
   * @defaultValue true
   */
  matchBareNames?: boolean;
  /** Back-off between failed list/watch attempts (full jitter). @defaultValue `{ baseMs: 200, capMs: 10000 }` */
  backoff?: BackoffOptions;
  /** Largest accepted value per key, in bytes. @defaultValue 65536 */
  maxValueBytes?: number;
  clock?: Clock;
  random?: Random;
  logger?: Logger;
}

const SERVICE_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9])?$/;
const LABEL = /^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$/;

/**
 * The etcd resolver: one key per endpoint under `<prefix><service>/<id>`, each value a JSON
 * endpoint object (`{ "address": "10.0.0.7", "port": 8080, "weight": 2, "zone": "eu-1",
 * "tags": [], "metadata": {}, "health": "passing" }`) validated as the config file does.
 *
 * For each watched service it lists the prefix, then watches from the listed revision + 1. A
 * broken watch is resumed from the last seen revision; when that revision has been compacted
 * the prefix is listed again. Failures are retried with exponential back-off and full jitter; the
 * last good set is kept (marked stale) meanwhile. A value that fails validation rejects the
 * whole update (`MESH_REGISTRY_PAYLOAD_INVALID` naming key and field) until it is fixed or deleted.
 */
export class EtcdResolver implements Resolver {
  readonly name = 'etcd';
  /** Settles once `etcd3` is loaded (it is an optional peer dependency, imported on first use). */
  readonly #client: Promise<Etcd3>;
  readonly #ownsClient: boolean;
  readonly #hub: ResolverHub;
  readonly #prefix: string;
  readonly #suffix: string | undefined;
  readonly #bare: boolean;
  #closing: Promise<void> | undefined;

  constructor(options: EtcdResolverOptions = {}) {
    const prefix = normalizePrefix(options.prefix);
    if (options.suffix !== undefined) {
      const s = options.suffix.toLowerCase().replace(/^\.+/, '');
      if (s === '' || !s.split('.').every((l) => LABEL.test(l)))
        throw configError('suffix', 'a DNS suffix such as svc.etcd', options.suffix);
      this.#suffix = s;
    }
    const backoff = options.backoff ?? { baseMs: 200, capMs: 10_000 };
    if (!(backoff.baseMs > 0) || !(backoff.capMs >= backoff.baseMs))
      throw configError('backoff', 'baseMs > 0 and capMs ≥ baseMs', backoff);
    this.#prefix = prefix;
    this.#bare = options.matchBareNames ?? true;
    this.#ownsClient = options.client === undefined;
    this.#client = (options.client ? Promise.resolve(options.client) : createEtcdClient(options)).then(
      asEtcd3,
    );
    // A failed load is reported by each watch (and by nothing when nothing is watched).
    this.#client.catch(() => undefined);
    const clock = options.clock ?? systemClock;
    const logger = options.logger ?? noopLogger;
    const ctx: WatchContext = {
      client: this.#client,
      prefix,
      clock,
      random: options.random ?? systemRandom,
      logger,
      backoff,
      maxValueBytes: options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES,
    };
    const start: StartWatch = (service, sink) => {
      const watch = new ServiceWatch(ctx, service, sink);
      watch.start();
      return () => watch.stop();
    };
    this.#hub = new ResolverHub({ name: 'etcd', clock, start, logger });
  }

  /** The key prefix in use (ends with `/`). */
  get prefix(): string {
    return this.#prefix;
  }

  match(host: string): string | undefined {
    const h = host.toLowerCase();
    if (this.#suffix !== undefined && h.endsWith(`.${this.#suffix}`)) {
      const service = h.slice(0, -(this.#suffix.length + 1));
      return LABEL.test(service) ? service : undefined;
    }
    if (this.#bare && h !== 'localhost' && LABEL.test(h) && !/^\d+$/.test(h)) return h;
    return undefined;
  }

  watch(service: string, listener: ResolverListener): Disposable {
    return this.#hub.watch(service, listener);
  }

  /** The current set of a watched service, if any answer arrived. */
  current(service: string): EndpointSet | undefined {
    return this.#hub.current(service);
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#hub.close();
      if (this.#ownsClient)
        await this.#client.then(
          (c) => c.close(),
          () => undefined,
        );
    })();
    return this.#closing;
  }
}

/** Create an {@link EtcdResolver}. Throws `MESH_CONFIG_INVALID` for bad options. */
export function createEtcdResolver(options: EtcdResolverOptions = {}): EtcdResolver {
  return new EtcdResolver(options);
}

interface WatchContext {
  client: Promise<Etcd3>;
  prefix: string;
  clock: Clock;
  random: Random;
  logger: Logger;
  backoff: BackoffOptions;
  maxValueBytes: number;
}

/** One upstream list + watch loop for one service. */
class ServiceWatch {
  readonly #ctx: WatchContext;
  readonly #service: string;
  readonly #sink: WatchSink;
  readonly #keyPrefix: string;
  readonly #state: EtcdServiceState;
  #stopped = false;
  #attempt = 0;
  #timer: Timer | undefined;
  #watcher: Watcher | undefined;
  /** The loaded client (set by the first listing). */
  #client: Etcd3 | undefined;
  /** The cluster id of the last listing (a wiped or rebuilt etcd has another). */
  #cluster: string | undefined;
  /** Last revision reflected in `#state`; undefined until a list succeeded. */
  #revision: number | undefined;
  /** Whether the current watcher is a resume after a break (the state is resynced once it connects). */
  #resuming = false;
  /**
   * A resumed watch is catching up: the changes missed during the break come as events, but
   * nothing says when the last one has come, so nothing is delivered until a listing shows the
   * current state ({@link #resync}).
   */
  #resyncing = false;
  /** Events up to this revision are already in the state (it was reset to a listing at it). */
  #listedThrough = 0;

  constructor(ctx: WatchContext, service: string, sink: WatchSink) {
    this.#ctx = ctx;
    this.#service = service;
    this.#sink = sink;
    this.#keyPrefix = `${ctx.prefix}${service}/`;
    this.#state = new EtcdServiceState(service, this.#keyPrefix, ctx.maxValueBytes);
  }

  start(): void {
    if (!SERVICE_NAME.test(this.#service)) {
      const error = configError(
        'service',
        'a service name of letters, digits, ".", "-" and "_" that starts and ends with a letter or digit',
        this.#service,
      );
      queueMicrotask(() => this.#sink.error(error));
      return;
    }
    void this.#list();
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#dropWatcher();
  }

  async #list(): Promise<void> {
    if (this.#stopped) return;
    this.#dropWatcher();
    let res: Awaited<ReturnType<ReturnType<Etcd3['getAll']>['exec']>>;
    try {
      this.#client ??= await this.#ctx.client;
      res = await this.#client.getAll().prefix(this.#keyPrefix).exec();
    } catch (error) {
      if (this.#stopped) return;
      if (MeshError.is(error, 'MESH_CONFIG_INVALID')) {
        this.#fail(error); // etcd3 is not installed: retrying cannot help
        return;
      }
      this.#fail(unavailable(`listing ${this.#keyPrefix}`, error, { service: this.#service }));
      this.#retry(() => this.#list());
      return;
    }
    if (this.#stopped) return;
    const revision = Number(res.header.revision);
    this.#cluster = String(res.header.cluster_id);
    this.#state.reset(res.kvs);
    this.#revision = revision;
    this.#listedThrough = revision;
    this.#attempt = 0;
    this.#deliver();
    this.#watch(revision + 1, false);
  }

  #watch(fromRevision: number, resuming: boolean): void {
    if (this.#stopped) return;
    this.#dropWatcher();
    this.#resuming = resuming;
    this.#resyncing = false;
    const client = this.#client;
    if (client === undefined) {
      void this.#list();
      return;
    }
    const watcher = ownWatch(client).prefix(this.#keyPrefix).startRevision(String(fromRevision)).watcher();
    this.#watcher = watcher;
    const current = () => this.#watcher === watcher && !this.#stopped;
    watcher.on('connected', () => {
      if (!current()) return;
      this.#attempt = 0;
      if (this.#resuming) {
        this.#resuming = false;
        // Resumed: the changes missed during the break follow as events (or, when the revision to
        // resume from was compacted, the cancellation below triggers a new listing). The state of
        // the last seen revision is not offered as fresh meanwhile: a listing says when it is.
        void this.#resync(watcher);
      }
    });
    watcher.on('data', (res: IWatchResponse) => {
      if (!current() || res.events.length === 0) return;
      for (const ev of res.events) {
        // Already in the listing the state was reset to while the watch caught up.
        if (Number(ev.kv.mod_revision) <= this.#listedThrough) continue;
        const key = ev.kv.key.toString();
        if (ev.type === 'Put') this.#state.put(key, ev.kv.value, ev.kv.mod_revision);
        else this.#state.delete(key);
        this.#revision = Math.max(this.#revision ?? 0, Number(ev.kv.mod_revision));
      }
      if (!this.#resyncing) this.#deliver();
    });
    watcher.on('disconnected', (error: unknown) => {
      if (!current()) return;
      this.#dropWatcher();
      this.#fail(unavailable(`watch of ${this.#keyPrefix} broke`, error, { service: this.#service }));
      this.#retry(() => this.#resume());
    });
    watcher.on('error', (error: unknown) => {
      if (!current()) return;
      this.#dropWatcher();
      const message = error instanceof Error ? error.message : String(error);
      // etcd cancels a watch whose start revision was compacted with an empty cancel reason
      // (the compact revision is not surfaced by the client); other cancellations carry a reason.
      if (/compacted/i.test(message) || /^Watcher canceled:\s*$/.test(message)) {
        this.#ctx.logger.info('etcd watch revision compacted; listing again', {
          service: this.#service,
          fromRevision,
        });
        void this.#list();
        return;
      }
      this.#fail(unavailable(`watch of ${this.#keyPrefix} was cancelled`, error, { service: this.#service }));
      this.#retry(() => this.#list());
    });
  }

  /**
   * A resumed watch is connected: list the prefix once to learn the current state. A watch that
   * has already caught up past the listing keeps its own state (every event up to its revision
   * came, in order); otherwise the state becomes the listing, and the watch's events up to it are
   * skipped. Then the set is delivered, fresh. Should the listing fail, the watch's state is
   * delivered as it is (its events keep it current from then on).
   */
  async #resync(watcher: Watcher): Promise<void> {
    const client = this.#client;
    if (client === undefined) return;
    this.#resyncing = true;
    let res: Awaited<ReturnType<ReturnType<Etcd3['getAll']>['exec']>> | undefined;
    try {
      res = await client.getAll().prefix(this.#keyPrefix).exec();
    } catch (error) {
      this.#ctx.logger.debug('etcd listing after a resumed watch failed', { service: this.#service, error });
    }
    if (this.#watcher !== watcher || this.#stopped || !this.#resyncing) return;
    this.#resyncing = false;
    if (res !== undefined) {
      const listed = Number(res.header.revision);
      const cluster = String(res.header.cluster_id);
      if (listed < (this.#revision ?? 0) || cluster !== this.#cluster) {
        // Not the history the watch followed: etcd was wiped, rebuilt or restored from an older
        // snapshot. The watch resumed past its revision would see nothing until the new cluster got
        // there (and the old set would be offered as fresh meanwhile): start over from this listing.
        this.#ctx.logger.warn('etcd revision went back or the cluster changed; listing again', {
          service: this.#service,
          revision: this.#revision,
          listed,
        });
        this.#cluster = cluster;
        this.#state.reset(res.kvs);
        this.#revision = listed;
        this.#listedThrough = listed;
        this.#deliver();
        this.#watch(listed + 1, false);
        return;
      }
      if (listed > (this.#revision ?? 0)) {
        this.#state.reset(res.kvs);
        this.#revision = listed;
        this.#listedThrough = listed;
      }
    }
    this.#deliver();
  }

  /** Resume the watch from the revision after the last one seen. */
  #resume(): void {
    if (this.#revision === undefined) {
      void this.#list();
      return;
    }
    this.#watch(this.#revision + 1, true);
  }

  #deliver(): void {
    const r = this.#state.result();
    if (r.error) this.#sink.error(r.error);
    else this.#sink.endpoints(r.endpoints);
  }

  #fail(error: MeshError): void {
    this.#ctx.logger.warn('etcd watch failed', { service: this.#service, error, attempt: this.#attempt });
    this.#sink.error(error);
  }

  #retry(fn: () => void): void {
    if (this.#stopped) return;
    this.#timer?.cancel();
    const delay = backoffDelay(this.#attempt, this.#ctx.backoff, this.#ctx.random);
    this.#attempt++;
    this.#timer = this.#ctx.clock.setTimer(delay, () => {
      this.#timer = undefined;
      fn();
    });
  }

  #dropWatcher(): void {
    const w = this.#watcher;
    this.#watcher = undefined;
    if (w === undefined) return;
    w.cancel().catch((error: unknown) => {
      this.#ctx.logger.debug('etcd watch cancel failed', { service: this.#service, error });
    });
  }
}
