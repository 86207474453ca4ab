/**
 * Consul resolver: one blocking-query loop on `GET /v1/health/service/:name` per watched
 * service, shared by every watcher through the {@link ResolverHub}.
 *
 * Loop rules (Consul "blocking queries" client rules):
 * - the first call carries no `index`; later calls send the last `X-Consul-Index` and `wait`;
 * - an index that is missing, not a number or ≤ 0 is replaced by 1 (never 0: that would spin);
 * - an index lower than the previous one (snapshot restore, restarted agent) resets to a
 *   non-blocking read;
 * - calls are rate-limited by a token bucket (burst 2, one token per `minIntervalMs`, degrading
 *   to one per `maxIntervalMs` under sustained churn);
 * - network errors, 403, 404, 429 and 5xx: the error is reported (the hub keeps the last good set,
 *   marked stale), the next call waits a floored exponential backoff (longer after 429/503,
 *   at least `Retry-After`; see `backoff.ts`) and is a non-blocking read; an error is never "no
 *   instances";
 * - an invalid or oversized payload is rejected whole (`MESH_REGISTRY_PAYLOAD_INVALID`), backs off,
 *   and keeps the index of that answer, so it is not fetched again before the service changes;
 * - blocking queries run on their own connections, one per watch up to a process-wide cap
 *   (`long-polls.ts`); service names and tags match case-insensitively, as in Consul.
 */
import {
  type Clock,
  createEndpoint,
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
} from '@proxyless/core';
import { ResolverHub, type WatchSink } from '../hub.js';
import { type ConsulBackoffOptions, DEFAULT_CONSUL_BACKOFF } from './backoff.js';
import { runConsulBlockingQuery } from './blocking.js';
import { type ConsulConnectionOptions, ConsulHttp } from './http.js';
import type { LongPollLimitEvent } from './long-polls.js';
import { parseHealthPayload, parseJsonPayload } from './payload.js';

export { parseIndex } from './blocking.js';

/** Something the resolver reports besides updates: the long-poll cap was passed. */
export type ConsulResolverEvent = LongPollLimitEvent;

/** Options of {@link createConsulResolver}. */
export interface ConsulResolverOptions extends ConsulConnectionOptions {
  /** Datacenter to query (`?dc=`); the agent's own when unset. */
  datacenter?: string;
  /** Use only instances whose every check passes (`?passing`). @defaultValue false: passing and warning */
  onlyPassing?: boolean;
  /** Use only instances carrying this tag (`?tag=`, case-insensitive as in Consul). */
  tag?: string;
  /** go-bexpr filter sent as `?filter=` (e.g. `Service.Meta.version == "2"`), to narrow a large service. */
  filter?: string;
  /** Node/service meta key holding the zone. @defaultValue 'zone' */
  zoneMetaKey?: string;
  /** Blocking-query `wait`, in ms (1 s – 10 min). @defaultValue 60_000 */
  waitMs?: number;
  /**
   * Token-bucket refill interval between calls of one watch, in ms (burst 2). 0 disables the
   * rate limit. @defaultValue 1_000
   */
  minIntervalMs?: number;
  /**
   * Under sustained churn (the bucket keeps running dry) the refill interval doubles up to this,
   * in ms; a quiet call (one that blocked for at least half of `waitMs`) resets it. @defaultValue 15_000
   */
  maxIntervalMs?: number;
  /**
   * Backoff after a failed call: uniform in `[d/2, d)`, `d = min(capMs, base·2ⁿ)`, the base being
   * `throttledBaseMs` after a 429 or 503; never shorter than a `Retry-After`.
   * @defaultValue { baseMs: 1_000, capMs: 60_000, throttledBaseMs: 5_000 }
   */
  backoff?: ConsulBackoffOptions;
  /** Called when the watches on the agent pass `maxLongPolls` (also logged as a warning). */
  onLongPollLimit?: (event: ConsulResolverEvent) => void;
  /** DNS domain for `match` (`<name>.service.<domain>`). @defaultValue 'consul' */
  domain?: string;
  /** Whether `match` accepts bare single-label host names (`payments`). @defaultValue true */
  matchBareNames?: boolean;
  clock?: Clock;
  random?: Random;
  logger?: Logger;
}

/** A Consul resolver; `current` reads the hub's current set of a watched service. */
export interface ConsulResolver extends Resolver {
  current(service: string): EndpointSet | undefined;
}

const LABEL = /^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$/i;
const MAX_WAIT_MS = 600_000;

function validateOptions(o: ConsulResolverOptions): void {
  const bad = (field: string, expected: string, value: unknown): never => {
    throw new MeshError(
      'MESH_CONFIG_INVALID',
      `consul resolver option ${field}: expected ${expected}, got ${JSON.stringify(value)}`,
      {
        details: { field, value, issues: [{ field, value, expected }] },
      },
    );
  };
  if (o.waitMs !== undefined && (!Number.isFinite(o.waitMs) || o.waitMs < 1_000 || o.waitMs > MAX_WAIT_MS))
    bad('waitMs', 'a number of ms in 1000..600000', o.waitMs);
  if (o.minIntervalMs !== undefined && (!Number.isFinite(o.minIntervalMs) || o.minIntervalMs < 0))
    bad('minIntervalMs', 'a number ≥ 0', o.minIntervalMs);
  if (
    o.maxIntervalMs !== undefined &&
    (!Number.isFinite(o.maxIntervalMs) || o.maxIntervalMs < (o.minIntervalMs ?? 1_000))
  )
    bad('maxIntervalMs', 'a number ≥ minIntervalMs', o.maxIntervalMs);
  if (
    o.backoff &&
    (!(o.backoff.baseMs > 0) ||
      !(o.backoff.capMs >= o.backoff.baseMs) ||
      (o.backoff.throttledBaseMs !== undefined && !(o.backoff.throttledBaseMs > 0)))
  )
    bad('backoff', 'baseMs > 0, capMs ≥ baseMs and throttledBaseMs > 0', o.backoff);
  if (
    o.maxLongPolls !== undefined &&
    (!Number.isInteger(o.maxLongPolls) || o.maxLongPolls < 1 || o.maxLongPolls > 199)
  )
    bad('maxLongPolls', 'an integer 1..199 (Consul accepts 200 connections per client IP)', o.maxLongPolls);
  if (o.maxBodyBytes !== undefined && !(o.maxBodyBytes > 0))
    bad('maxBodyBytes', 'a number of bytes > 0', o.maxBodyBytes);
}

/**
 * Create a resolver backed by Consul's health API.
 *
 * `match(host)`: `<name>.service.<domain>` → `<name>`; `<name>.service.<dc>.<domain>` → `<name>`
 * when `<dc>` is the configured `datacenter`; a bare single-label host (`payments`) → itself
 * (unless `matchBareNames: false`); anything else → `undefined`.
 */
export function createConsulResolver(options: ConsulResolverOptions = {}): ConsulResolver {
  validateOptions(options);
  const clock = options.clock ?? systemClock;
  const random = options.random ?? systemRandom;
  const logger = options.logger ?? noopLogger;
  const http = new ConsulHttp(options);
  const waitMs = options.waitMs ?? 60_000;
  const minInterval = options.minIntervalMs ?? 1_000;
  const maxInterval = Math.max(minInterval, options.maxIntervalMs ?? 15_000);
  const backoff = options.backoff ?? DEFAULT_CONSUL_BACKOFF;
  const domain = (options.domain ?? 'consul').toLowerCase();
  const dc = options.datacenter?.toLowerCase();

  const start = (service: string, sink: WatchSink): (() => void) => {
    const ac = new AbortController();
    void watchLoop(service, sink, ac.signal).catch((error: unknown) => {
      if (!ac.signal.aborted) logger.error('consul watch loop failed', { service, error });
    });
    return () => ac.abort(new MeshError('MESH_CLOSED', 'consul watch stopped'));
  };

  async function watchLoop(service: string, sink: WatchSink, signal: AbortSignal): Promise<void> {
    // `v2.payments` (from the host `v2.payments.service.consul`) is service `payments` with tag `v2`.
    const dot = service.indexOf('.');
    const name = dot < 0 ? service : service.slice(dot + 1);
    const hostTag = dot < 0 ? undefined : service.slice(0, dot);
    const tag = hostTag ?? options.tag;
    const path = `/v1/health/service/${encodeURIComponent(name)}`;
    const what = `health/service/${name}${tag ? `?tag=${tag}` : ''}`;
    const lowerTag = tag?.toLowerCase();
    await runConsulBlockingQuery({
      http,
      path,
      what: `GET ${what}`,
      query: {
        ...(options.onlyPassing ? { passing: '1' } : {}),
        ...(tag ? { tag } : {}),
        ...(options.filter ? { filter: options.filter } : {}),
      },
      ...(options.datacenter ? { datacenter: options.datacenter } : {}),
      waitMs,
      minIntervalMs: minInterval,
      maxIntervalMs: maxInterval,
      backoff,
      clock,
      random,
      logger,
      signal,
      fields: { service },
      onLongPollLimit: (event) => options.onLongPollLimit?.(event),
      onAnswer: (res) => {
        const payload = parseHealthPayload(
          parseJsonPayload(res.text(), `consul ${what}`, service),
          `consul ${what}`,
          {
            ...(options.onlyPassing !== undefined ? { onlyPassing: options.onlyPassing } : {}),
            ...(options.zoneMetaKey ? { zoneMetaKey: options.zoneMetaKey } : {}),
          },
          service,
        );
        // Consul compares tags with strings.EqualFold; so does this post-filter.
        const endpoints = payload.endpoints
          .filter((e) => !lowerTag || (e.tags ?? []).some((t) => t.toLowerCase() === lowerTag))
          .map((e) => createEndpoint(e));
        sink.endpoints(endpoints);
      },
      onError: (error) => sink.error(error),
      mapError: (error) =>
        error.code === 'MESH_REGISTRY_PAYLOAD_INVALID' &&
        error.details.field === 'body' &&
        error.details.index !== undefined
          ? oversized(error, name)
          : error,
    });
  }

  function oversized(error: MeshError, name: string): MeshError {
    return new MeshError(
      'MESH_REGISTRY_PAYLOAD_INVALID',
      `${error.message}; narrow the watch with a tag (MESH_CONSUL_TAG, or the host <tag>.${name}.service.consul) or a filter (the filter option, e.g. Service.Meta.version == "2"), or raise maxBodyBytes`,
      { cause: error, details: error.details },
    );
  }

  const hub = new ResolverHub({ name: 'consul', clock, start, logger });
  let closing: Promise<void> | undefined;

  return {
    name: 'consul',
    match(host: string): string | undefined {
      const h = host.toLowerCase().replace(/\.$/, '');
      const labels = h.split('.');
      if (labels.length === 1) return options.matchBareNames === false || !LABEL.test(h) ? undefined : h;
      const suffix = domain.split('.');
      if (labels.length < 2 + suffix.length) return undefined;
      if (labels.slice(labels.length - suffix.length).join('.') !== domain) return undefined;
      const rest = labels.slice(0, labels.length - suffix.length);
      const [name] = rest;
      if (name === undefined || !LABEL.test(name)) return undefined;
      if (rest.length === 2 && rest[1] === 'service') return name;
      if (rest.length === 3 && rest[1] === 'service' && dc !== undefined && rest[2] === dc) return name;
      // Consul's DNS form `<tag>.<name>.service[.<dc>].consul`: the instances of `<name>` with `<tag>`.
      const [, tagged] = rest;
      const inDc = rest.length === 3 || (rest.length === 4 && dc !== undefined && rest[3] === dc);
      if (inDc && rest[2] === 'service' && tagged !== undefined && LABEL.test(tagged))
        return `${name}.${tagged}`;
      return undefined;
    },
    watch(service: string, listener: ResolverListener): Disposable {
      return hub.watch(service, listener);
    },
    current(service: string): EndpointSet | undefined {
      return hub.current(service);
    },
    close(): Promise<void> {
      closing ??= hub.close().then(() => http.close());
      return closing;
    },
  };
}
