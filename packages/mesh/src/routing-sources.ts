/**
 * Where config entries come from: the config file's `configEntries` array, etcd keys under
 * `/proxyless/config/<kind>/<name>`, and Consul's compiled discovery chain per service. Each
 * version is validated and compiled as a whole before it is swapped in; a bad one is reported
 * (`config_rejected`, with source and version) and the last good one stays.
 */
import { createHash } from 'node:crypto';
import {
  type Clock,
  type ConfigIssue,
  type Disposable,
  type Issues,
  type Logger,
  MeshError,
  type Random,
  systemRandom,
} from '@proxyless/core';
import {
  ConsulHttp,
  type ConsulResolverOptions,
  DEFAULT_CONSUL_BACKOFF,
  type EtcdEnvOptions,
  parseConsulIndex,
  runConsulBlockingQuery,
  watchEtcdPrefix,
} from '@proxyless/discovery';
import {
  chainFromConsul,
  compileRoutingConfig,
  ETCD_CONFIG_PREFIX,
  entriesFromEtcd,
  type RoutingConfig,
} from './routing/index.js';
import type { RoutingSourceName, RoutingStage } from './routing-stage.js';

/** What a source reports (`service`: the Consul discovery chain's service). */
export interface SourceEvents {
  applied(source: RoutingSourceName, version: number, service?: string): void;
  rejected(source: RoutingSourceName, version: number, error: MeshError, service?: string): void;
  /** The source could not be read (unreachable, an error answer); the last good version stays. */
  failed(source: RoutingSourceName, error: MeshError, service?: string): void;
  /** The source answered again after {@link failed} (whether or not with a new version). */
  recovered(source: RoutingSourceName, service?: string): void;
}

/** A short content hash: the version of a file's `configEntries`. */
export function entriesVersion(entries: unknown): string {
  return createHash('sha256')
    .update(JSON.stringify(entries ?? []))
    .digest('hex')
    .slice(0, 12);
}

/**
 * Compile the `configEntries` of a config document; `undefined` when it has none.
 * @throws MeshError `MESH_CONFIG_INVALID` naming the entry (`Kind/Name`) and field path.
 */
export function compileFileEntries(
  doc: Record<string, unknown>,
  datacenter: string,
): RoutingConfig | undefined {
  const entries = doc.configEntries;
  if (entries === undefined) return undefined;
  if (!Array.isArray(entries))
    throw new MeshError('MESH_CONFIG_INVALID', 'configEntries: expected an array of config entries', {
      details: { field: 'configEntries', value: entries },
    });
  return compileRoutingConfig(entries, { datacenter });
}

/** The `configEntries` of a config document as written (`undefined` when none). */
export function entriesOf(doc: unknown): unknown {
  return typeof doc === 'object' && doc !== null && !Array.isArray(doc)
    ? (doc as Record<string, unknown>).configEntries
    : undefined;
}

/** {@link compileFileEntries}, with a config error returned rather than thrown. */
export function tryCompileFileEntries(
  doc: unknown,
  datacenter: string,
): RoutingConfig | undefined | MeshError {
  try {
    return compileFileEntries({ configEntries: entriesOf(doc) }, datacenter);
  } catch (error) {
    if (MeshError.is(error, 'MESH_CONFIG_INVALID')) return error;
    throw error;
  }
}

/**
 * The problems an error lists; one that lists none (`configEntries` not an array) is one. For one
 * error that lists every problem of a version: its document's and its config entries'.
 */
export function errorIssues(error: MeshError): readonly ConfigIssue[] {
  if (error.details.issues) return error.details.issues;
  const field = error.details.field ?? '$';
  const message = error.message.startsWith(`${field}: `)
    ? error.message.slice(field.length + 2)
    : error.message;
  return [{ field, expected: message, value: error.details.value, message }];
}

/** Record a compile error of the file's `configEntries` as issues of the document. */
export function fileEntryIssues(doc: Record<string, unknown>, datacenter: string, issues: Issues): void {
  try {
    compileFileEntries(doc, datacenter);
  } catch (error) {
    if (!MeshError.is(error, 'MESH_CONFIG_INVALID')) throw error;
    const list = error.details.issues ?? [
      { field: 'configEntries', expected: error.message, value: undefined },
    ];
    for (const i of list) issues.list.push({ ...i, field: `configEntries: ${i.field}` });
  }
}

/** Watch etcd's config entries (`/proxyless/config/`, or `MESH_ETCD_CONFIG_PREFIX`) and apply each valid snapshot. */
export function startEtcdEntries(
  etcd: EtcdEnvOptions,
  deps: {
    stage: RoutingStage;
    events: SourceEvents;
    datacenter: string;
    clock: Clock;
    random: Random;
    logger: Logger;
  },
): Disposable {
  const { prefix: _servicesPrefix, configPrefix, ...connection } = etcd;
  const prefix = configPrefix || ETCD_CONFIG_PREFIX;
  return watchEtcdPrefix({
    ...connection,
    prefix,
    clock: deps.clock,
    random: deps.random,
    logger: deps.logger,
    onSnapshot: (pairs, revision) => {
      const version = revision;
      let config: RoutingConfig;
      try {
        config = compileRoutingConfig(entriesFromEtcd(pairs, prefix), { datacenter: deps.datacenter });
      } catch (error) {
        deps.events.rejected('etcd', version, error as MeshError);
        return;
      }
      deps.stage.setConfig('etcd', config);
      deps.events.applied('etcd', version);
    },
    // The watch logs each failure; the last good config entries stay in force.
    onError: (error) => deps.events.failed('etcd', error),
    onRecover: () => deps.events.recovered('etcd'),
  });
}

/**
 * One blocking query on `GET /v1/discovery-chain/<service>` per service the mesh has a destination
 * for, for as long as that destination lives (an idle one is released with its watch, and the next
 * call starts both again): Consul compiles the entries; each new chain is parsed and swapped in.
 * A released service's chain stays in force, as the last good one, until a new watch answers.
 * The loop is the Consul resolver's ({@link runConsulBlockingQuery}): the same index rules,
 * token bucket and backoff (429/503 base, `Retry-After`), and the same process-wide cap on
 * blocking queries per agent, shared with the resolver's `health/service` watches.
 */
export class ConsulChains {
  readonly #http: ConsulHttp;
  readonly #options: ConsulResolverOptions;
  readonly #deps: ChainDeps;
  readonly #random: Random;
  /** Service → its watch's abort: one per watch (a shared signal would collect a listener each). */
  readonly #watched = new Map<string, AbortController>();
  readonly #loops = new Set<Promise<void>>();
  readonly #waitMs: number;
  #closed = false;

  constructor(options: ConsulResolverOptions, deps: ChainDeps, waitSeconds?: number) {
    this.#http = new ConsulHttp(options);
    this.#options = options;
    this.#deps = deps;
    this.#random = deps.random ?? options.random ?? systemRandom;
    this.#waitMs = waitSeconds !== undefined ? waitSeconds * 1000 : (options.waitMs ?? 60_000);
  }

  /** Start watching `service`'s chain (once). */
  watch(service: string): void {
    if (this.#closed || this.#watched.has(service)) return;
    const { stage, events, clock, logger } = this.#deps;
    const o = this.#options;
    const minIntervalMs = o.minIntervalMs ?? 1_000;
    /** Hash of the last chain body handled: a return with the same chain is not a change. */
    let last: string | undefined;
    /** The last call failed: the next answer, changed or not, ends the failure. */
    let failing = false;
    const abort = new AbortController();
    this.#watched.set(service, abort);
    const loop = runConsulBlockingQuery({
      http: this.#http,
      path: `/v1/discovery-chain/${encodeURIComponent(service)}`,
      what: `discovery chain of "${service}"`,
      ...(o.datacenter ? { datacenter: o.datacenter } : {}),
      waitMs: this.#waitMs,
      minIntervalMs,
      maxIntervalMs: Math.max(minIntervalMs, o.maxIntervalMs ?? 15_000),
      backoff: o.backoff ?? DEFAULT_CONSUL_BACKOFF,
      clock,
      random: this.#random,
      logger,
      signal: abort.signal,
      fields: { service, watch: 'discovery-chain' },
      ...(o.onLongPollLimit ? { onLongPollLimit: o.onLongPollLimit } : {}),
      onAnswer: (res) => {
        if (failing) {
          failing = false;
          events.recovered('consul', service);
        }
        const text = res.text();
        // Consul returns on unrelated writes, and a reset after an error or a restore reads the
        // same chain again: only a different chain is applied.
        const hash = createHash('sha256').update(text).digest('hex');
        if (hash === last) return;
        last = hash;
        const version = parseConsulIndex(res.index) ?? 1;
        try {
          stage.setChain('consul', service, chainFromConsul(JSON.parse(text)));
          events.applied('consul', version, service);
        } catch (error) {
          const e = MeshError.is(error)
            ? error
            : new MeshError(
                'MESH_CONFIG_INVALID',
                `discovery chain of "${service}": ${(error as Error).message}`,
              );
          events.rejected('consul', version, e, service);
        }
      },
      // The loop logs each failure; the last good chain stays in force.
      onError: (error) => {
        failing = true;
        events.failed('consul', error, service);
      },
    }).catch((error: unknown) => {
      if (!this.#closed && !abort.signal.aborted)
        logger.error('consul discovery chain watch failed', { service, error });
    });
    this.#loops.add(loop);
    void loop.finally(() => this.#loops.delete(loop));
  }

  /**
   * Stop watching `service`'s chain: its blocking query is aborted at once, which frees its place
   * under the agent's cap on blocking queries (a released destination of a mistyped host must not
   * hold one for ever). Its chain, if any, stays in force until a new watch answers.
   */
  unwatch(service: string): void {
    const abort = this.#watched.get(service);
    if (abort === undefined) return;
    this.#watched.delete(service);
    abort.abort(new MeshError('MESH_CLOSED', `discovery chain watch of "${service}" released`));
  }

  async close(): Promise<void> {
    this.#closed = true;
    const reason = new MeshError('MESH_CLOSED', 'consul discovery chain watch stopped');
    for (const a of this.#watched.values()) a.abort(reason);
    await Promise.all(this.#loops);
    await this.#http.close();
  }
}

/** What {@link ConsulChains} reports to and runs on. */
interface ChainDeps {
  stage: RoutingStage;
  events: SourceEvents;
  clock: Clock;
  logger: Logger;
  /** Jitter of the backoff. @defaultValue the options' `random`, else the system's */
  random?: Random;
}
