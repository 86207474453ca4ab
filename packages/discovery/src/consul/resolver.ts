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
 *   marked stale), the next call waits an exponential backoff with full jitter and is a
 *   non-blocking read; an error is never "no instances";
 * - an invalid payload is rejected whole (`MESH_REGISTRY_PAYLOAD_INVALID`) and also backs off.
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
import { type BackoffOptions, backoffDelay } from '../backoff.js';
import { ResolverHub, type WatchSink } from '../hub.js';
import { type ConsulConnectionOptions, ConsulHttp, consulStatusError } from './http.js';
import { parseHealthPayload, parseJsonPayload } from './payload.js';

/** Options of {@link createConsulResolver}. */
export interface ConsulResolverOptions extends ConsulConnectionOptions {
  /** Datacenter to query (`?dc=`); the agent's own when unset. */
  datacenter?: string;
  /** Use only instances whose every check passes (`?passing`). @defaultValue false: passing and warning */
  onlyPassing?: boolean;
  /** Use only instances carrying this tag (`?tag=`). */
  tag?: string;
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
  /** Backoff after a failed call. @defaultValue { baseMs: 1_000, capMs: 30_000 } */
  backoff?: BackoffOptions;
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
  if (o.backoff && (!(o.backoff.baseMs > 0) || !(o.backoff.capMs >= o.backoff.baseMs)))
    bad('backoff', 'baseMs > 0 and capMs ≥ baseMs', o.backoff);
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
  const backoff = options.backoff ?? { baseMs: 1_000, capMs: 30_000 };
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
    let index = 0;
    let failures = 0;
    let tokens = 2;
    let lastRefill = clock.now();
    let interval = minInterval;
    while (!signal.aborted) {
      // Token bucket: burst 2, then one call per `interval`; the interval doubles (up to
      // `maxInterval`) each time the bucket runs dry, and resets after a quiet call.
      if (minInterval > 0) {
        const now = clock.now();
        tokens = Math.min(2, tokens + (now - lastRefill) / interval);
        lastRefill = now;
        if (tokens < 1) {
          const ms = Math.ceil((1 - tokens) * interval);
          if (!(await pause(ms, signal))) return;
          tokens = 1;
          lastRefill = clock.now();
          interval = Math.min(maxInterval, interval * 2);
        }
        tokens -= 1;
      }
      let failed: MeshError | undefined;
      const startedAt = clock.now();
      try {
        const res = await http.request(path, {
          query: {
            ...(index > 0 ? { index: String(index), wait: `${waitMs}ms` } : {}),
            ...(options.onlyPassing ? { passing: '1' } : {}),
            ...(tag ? { tag } : {}),
          },
          signal,
          timeoutMs: waitMs + waitMs / 16 + 10_000,
          ...(options.datacenter ? { datacenter: options.datacenter } : {}),
        });
        if (signal.aborted) return;
        if (res.status !== 200) throw consulStatusError(`GET ${what}`, res);
        const next = parseIndex(res.index);
        const prev = index;
        index = next === undefined ? 1 : next < prev ? 0 : next;
        if (next !== undefined && next < prev)
          logger.info('consul index went backwards; resetting', { service, previous: prev, index: next });
        const payload = parseHealthPayload(
          parseJsonPayload(res.text(), `consul ${what}`, service),
          `consul ${what}`,
          {
            ...(options.onlyPassing !== undefined ? { onlyPassing: options.onlyPassing } : {}),
            ...(options.zoneMetaKey ? { zoneMetaKey: options.zoneMetaKey } : {}),
          },
          service,
        );
        const endpoints = payload.endpoints
          .filter((e) => !tag || (e.tags ?? []).includes(tag))
          .map((e) => createEndpoint(e));
        failures = 0;
        if (index > 0 && prev > 0 && clock.now() - startedAt >= waitMs / 2) interval = minInterval;
        sink.endpoints(endpoints);
        continue;
      } catch (error) {
        if (signal.aborted) return;
        failed = MeshError.is(error)
          ? error
          : new MeshError('MESH_INTERNAL', `consul ${what}: ${String(error)}`, { cause: error });
        // Transport and status errors: the next read is non-blocking, so recovery is immediate.
        // Payload errors keep the index, so a bad answer is not re-fetched before it changes.
        if (failed.code !== 'MESH_REGISTRY_PAYLOAD_INVALID') index = 0;
      }
      sink.error(failed);
      const delay = backoffDelay(failures, backoff, random);
      failures += 1;
      logger.warn('consul watch failed; backing off', { service, delayMs: delay, error: failed.message });
      if (!(await pause(delay, signal))) return;
    }
  }

  async function pause(ms: number, signal: AbortSignal): Promise<boolean> {
    try {
      await clock.sleep(ms, signal);
      return true;
    } catch {
      return false;
    }
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

/** `X-Consul-Index` as a positive integer, or `undefined` when missing, not numeric or ≤ 0. */
export function parseIndex(raw: string | undefined): number | undefined {
  if (raw === undefined || !/^\d+$/.test(raw.trim())) return undefined;
  const n = Number(raw.trim());
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}
