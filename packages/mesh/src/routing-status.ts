/**
 * What an operator sees of each source of config entries in `/config_dump` (`routing`): the
 * version in force and when it was applied, whether the source can be read now, and the last
 * version it gave that was rejected, with why — Envoy's `version_info`, `last_updated` and
 * `error_state` per resource. etcd is one source; Consul's discovery chains are one per service.
 */
import type { Clock, Logger, MeshError } from '@proxyless/core';
import type { MeshEvent } from './api.js';
import type { SourceEvents } from './routing-sources.js';

/** One source of config entries (etcd), or one service's discovery chain (Consul). */
export interface RoutingSourceView {
  /** The version in force (etcd revision, Consul `X-Consul-Index`); absent until one is applied. */
  version?: number;
  /** When it was applied (ISO 8601). */
  appliedAt?: string;
  /** The source failed to answer since its last good answer: what is in force may be out of date. */
  stale: boolean;
  /** The last failure to read it since the last good answer: why, and when. */
  lastError?: { message: string; code: string; at: string };
  /** The last version rejected since the one in force was applied: its number, why, and when. */
  lastRejected?: { version: number; message: string; at: string };
}

/** The status of every source of config entries, as events of the sources arrive. */
export class RoutingStatus {
  readonly #clock: Clock;
  readonly #etcd: { current?: RoutingSourceView } = {};
  readonly #consul = new Map<string, RoutingSourceView>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  #now(): string {
    return new Date(this.#clock.wallNow?.() ?? Date.now()).toISOString();
  }

  #view(source: string, service: string | undefined): RoutingSourceView {
    if (source === 'consul' && service !== undefined) {
      let v = this.#consul.get(service);
      if (v === undefined) {
        v = { stale: false };
        this.#consul.set(service, v);
      }
      return v;
    }
    this.#etcd.current ??= { stale: false };
    return this.#etcd.current;
  }

  /** `service`'s chain watch was released with its destination: its view goes (a watch started again makes it anew). */
  forget(service: string): void {
    this.#consul.delete(service);
  }

  applied(source: string, version: number, service?: string): void {
    const v = this.#view(source, service);
    v.version = version;
    v.appliedAt = this.#now();
    v.stale = false;
    delete v.lastError;
    delete v.lastRejected;
  }

  rejected(source: string, version: number, error: MeshError, service?: string): void {
    this.#view(source, service).lastRejected = { version, message: error.message, at: this.#now() };
  }

  failed(source: string, error: MeshError, service?: string): void {
    const v = this.#view(source, service);
    v.stale = true;
    v.lastError = { message: error.message, code: error.code, at: this.#now() };
  }

  recovered(source: string, service?: string): void {
    const v = this.#view(source, service);
    v.stale = false;
    delete v.lastError;
  }

  /**
   * What the sources report, recorded here and passed on as mesh events: `config_applied`,
   * `config_rejected` (logged too) and `config_source_error`.
   */
  sourceEvents(fire: (event: MeshEvent) => void, logger: Logger): SourceEvents {
    const of = (service: string | undefined) => (service ? { service } : {});
    return {
      applied: (source, version, service) => {
        this.applied(source, version, service);
        fire({
          type: 'config_applied',
          source,
          version,
          changed: new Map(),
          rebuilt: new Map(),
          ...of(service),
        });
      },
      rejected: (source, version, error, service) => {
        logger.warn('config entries rejected; keeping the last good version', {
          source,
          version,
          ...of(service),
          error,
        });
        this.rejected(source, version, error, service);
        fire({ type: 'config_rejected', error, source, version, ...of(service) });
      },
      failed: (source, error, service) => {
        this.failed(source, error, service);
        fire({ type: 'config_source_error', source, error, ...of(service) });
      },
      recovered: (source, service) => this.recovered(source, service),
    };
  }

  /** `/config_dump`'s `routing`: `etcd` and `consul` (by service), each only once it has news. */
  view(): Record<string, unknown> {
    return {
      ...(this.#etcd.current ? { etcd: { ...this.#etcd.current } } : {}),
      ...(this.#consul.size > 0
        ? {
            consul: Object.fromEntries(
              [...this.#consul].sort(([a], [b]) => (a < b ? -1 : 1)).map(([s, v]) => [s, { ...v }]),
            ),
          }
        : {}),
    };
  }
}
