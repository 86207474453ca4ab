/**
 * Where config entries come from: the config file's `configEntries` array, etcd keys under
 * `/proxyless/config/<kind>/<name>`, and Consul's compiled discovery chain per service. Each
 * version is validated and compiled as a whole before it is swapped in; a bad one is reported
 * (`config_rejected`, with source and version) and the last good one stays.
 */
import { createHash } from 'node:crypto';
import {
  type Clock,
  type Disposable,
  type Issues,
  type Logger,
  MeshError,
  type Random,
  type Timer,
} from '@proxyless/core';
import {
  ConsulHttp,
  type ConsulResolverOptions,
  type EtcdEnvOptions,
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

/** What a source reports. */
export interface SourceEvents {
  applied(source: RoutingSourceName, version: number, service?: string): void;
  rejected(source: RoutingSourceName, version: number, error: MeshError): void;
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

/** Watch etcd's `/proxyless/config/` and apply each valid snapshot. */
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
  const { prefix: _servicesPrefix, ...connection } = etcd;
  return watchEtcdPrefix({
    ...connection,
    prefix: ETCD_CONFIG_PREFIX,
    clock: deps.clock,
    random: deps.random,
    logger: deps.logger,
    onSnapshot: (pairs, revision) => {
      const version = revision;
      let config: RoutingConfig;
      try {
        config = compileRoutingConfig(entriesFromEtcd(pairs), { datacenter: deps.datacenter });
      } catch (error) {
        deps.events.rejected('etcd', version, error as MeshError);
        return;
      }
      deps.stage.setConfig('etcd', config);
      deps.events.applied('etcd', version);
    },
    onError: (error) => deps.logger.warn('etcd config entries unavailable; keeping the last good', { error }),
  });
}

/**
 * One blocking query on `GET /v1/discovery-chain/<service>` per service the mesh routes to, for
 * as long as the mesh lives: Consul compiles the entries; each new index is parsed and swapped in.
 */
export class ConsulChains {
  readonly #http: ConsulHttp;
  readonly #deps: { stage: RoutingStage; events: SourceEvents; clock: Clock; logger: Logger };
  readonly #watched = new Set<string>();
  readonly #abort = new AbortController();
  readonly #timers = new Set<Timer>();
  readonly #waitS: number;
  #closed = false;

  constructor(
    options: ConsulResolverOptions,
    deps: { stage: RoutingStage; events: SourceEvents; clock: Clock; logger: Logger },
    waitSeconds = 60,
  ) {
    this.#http = new ConsulHttp(options);
    this.#deps = deps;
    this.#waitS = waitSeconds;
  }

  /** Start watching `service`'s chain (once). */
  watch(service: string): void {
    if (this.#closed || this.#watched.has(service)) return;
    this.#watched.add(service);
    void this.#loop(service);
  }

  async #loop(service: string): Promise<void> {
    let index = '0';
    let attempt = 0;
    const path = `/v1/discovery-chain/${encodeURIComponent(service)}`;
    while (!this.#closed) {
      try {
        const res = await this.#http.request(path, {
          query: { index, wait: `${this.#waitS}s` },
          longPoll: index !== '0',
          timeoutMs: (this.#waitS + 15) * 1000,
          signal: this.#abort.signal,
        });
        if (res.status !== 200) throw this.#http.statusError(`discovery chain of "${service}"`, res);
        attempt = 0;
        const next = res.index ?? '0';
        if (next === index) continue;
        // Consul's rule: an index that went backwards (a restore) restarts from 0.
        index = BigInt(next) < BigInt(index) ? '0' : next;
        try {
          this.#deps.stage.setChain('consul', service, chainFromConsul(JSON.parse(res.text())));
          this.#deps.events.applied('consul', Number(next), service);
        } catch (error) {
          const e = MeshError.is(error)
            ? error
            : new MeshError(
                'MESH_CONFIG_INVALID',
                `discovery chain of "${service}": ${(error as Error).message}`,
              );
          this.#deps.events.rejected('consul', Number(next), e);
        }
      } catch (error) {
        if (this.#closed) return;
        this.#deps.logger.warn('consul discovery chain unavailable; keeping the last good', {
          service,
          error,
        });
        const delay = Math.min(10_000, 200 * 2 ** Math.min(attempt++, 6));
        await new Promise<void>((resolve) => {
          const t = this.#deps.clock.setTimer(delay, () => {
            this.#timers.delete(t);
            resolve();
          });
          this.#timers.add(t);
        });
      }
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#abort.abort();
    for (const t of this.#timers) t.cancel();
    await this.#http.close();
  }
}
