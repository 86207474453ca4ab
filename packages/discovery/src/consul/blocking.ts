/**
 * One blocking-query loop on a Consul read, following Consul's client rules. Shared by every
 * Consul watch of the process (the resolver's `health/service` watches, the mesh's
 * `discovery-chain` watches), so they all follow the same rules and share one long-poll cap:
 *
 * - the first call carries no `index`; later calls send the last `X-Consul-Index` and `wait`;
 * - an index that is missing, not a number or ≤ 0 is replaced by 1 (never 0: that would spin);
 * - an index lower than the previous one (snapshot restore, restarted agent) resets to a
 *   non-blocking read;
 * - calls are rate-limited by a token bucket (burst 2, one token per `minIntervalMs`, degrading
 *   to one per `maxIntervalMs` under sustained churn; a quiet call resets it);
 * - network errors, 403, 404, 429 and 5xx back off (floored exponential with jitter, the 429/503
 *   base after a 429 or 503, at least `Retry-After`; see `backoff.ts`) and the next call is a
 *   non-blocking read; an invalid payload backs off too but keeps the index of that answer, so it
 *   is not fetched again before it changes;
 * - each blocking call takes a slot of the agent's process-wide long-poll cap (`long-polls.ts`);
 *   a call without an index does not (it is answered at once) and goes through the ordinary pool.
 */
import { type Clock, type Logger, MeshError, type Random, wallClockMs } from '@proxyless/core';
import { type ConsulBackoffOptions, consulRetryDelay, parseRetryAfter } from './backoff.js';
import type { ConsulHttp, ConsulRequestOptions, ConsulResponse } from './http.js';
import type { LongPollLimitEvent } from './long-polls.js';

/** Options of {@link runConsulBlockingQuery}. */
export interface ConsulBlockingQuery {
  http: ConsulHttp;
  /** The path read (`/v1/health/service/web`). */
  path: string;
  /** What is read, for error messages (`GET health/service/web`). */
  what: string;
  /** Query parameters besides `index` and `wait`. */
  query?: ConsulRequestOptions['query'];
  datacenter?: string;
  /** Blocking-query `wait`, in ms. */
  waitMs: number;
  /** Token-bucket refill interval, in ms (0: no rate limit). */
  minIntervalMs: number;
  /** Longest refill interval under sustained churn, in ms. */
  maxIntervalMs: number;
  backoff: ConsulBackoffOptions;
  clock: Clock;
  random: Random;
  logger: Logger;
  /** Stops the loop (and aborts the call in flight). */
  signal: AbortSignal;
  /** Fields naming the watch in log lines (`{ service }`). */
  fields: Readonly<Record<string, unknown>>;
  /** Called when this watch takes the agent's watches past the long-poll cap. */
  onLongPollLimit?: (event: LongPollLimitEvent) => void;
  /**
   * A 200 answer. Throw a `MeshError` to reject it (`MESH_REGISTRY_PAYLOAD_INVALID` keeps the
   * index of the answer; any other code resets to a non-blocking read); it then backs off.
   */
  onAnswer(res: ConsulResponse): void;
  /** A failed call (after {@link mapError}), before the backoff. */
  onError(error: MeshError): void;
  /** Rewrite an error before it is reported (e.g. to add a hint). */
  mapError?: (error: MeshError) => MeshError;
}

/**
 * Run the loop until `signal` aborts. Resolves when stopped; never rejects for Consul's errors
 * (they go to `onError`).
 */
export async function runConsulBlockingQuery(q: ConsulBlockingQuery): Promise<void> {
  const { http, clock, random, logger, signal, backoff } = q;
  const slots = http.longPolls.join((event) => {
    logger.warn('consul watches exceed the long-poll cap; watches take turns with a shorter wait', {
      ...q.fields,
      watches: event.watches,
      limit: event.limit,
    });
    try {
      q.onLongPollLimit?.(event);
    } catch (error) {
      logger.error('consul watch event listener threw', { error });
    }
  });
  const minInterval = q.minIntervalMs;
  const maxInterval = Math.max(minInterval, q.maxIntervalMs);
  const pause = async (ms: number): Promise<boolean> => {
    try {
      await clock.sleep(ms, signal);
      return true;
    } catch {
      return false;
    }
  };
  try {
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
          if (!(await pause(ms))) return;
          tokens = 1;
          lastRefill = clock.now();
          interval = Math.min(maxInterval, interval * 2);
        }
        tokens -= 1;
      }
      let failed: MeshError | undefined;
      // Only a blocking read holds a long-poll slot. A read without an index (the first one, the
      // one after an error or an index reset) is answered at once, so it never queues behind
      // watches holding their slots for a whole `wait`: a new watch resolves within its own
      // deadline however many watches block.
      const blocking = index > 0;
      const release = blocking ? await slots.acquire(signal) : noRelease;
      if (release === undefined) return;
      const shared = slots.waitMs(q.waitMs);
      // Beyond the cap, spread the holders' ends over [w/2, w) so queued watches get slots
      // steadily instead of all at once when watches started together.
      const wait =
        shared < q.waitMs ? Math.max(1_000, Math.floor(shared * (0.5 + random.next() / 2))) : q.waitMs;
      const startedAt = clock.now();
      try {
        const res = await http.request(q.path, {
          query: {
            ...(blocking ? { index: String(index), wait: `${wait}ms` } : {}),
            ...q.query,
          },
          signal,
          longPoll: blocking,
          timeoutMs: wait + wait / 16 + 10_000,
          ...(q.datacenter ? { datacenter: q.datacenter } : {}),
        });
        release();
        if (signal.aborted) return;
        if (res.status !== 200) throw http.statusError(q.what, res);
        const next = parseIndex(res.index);
        const prev = index;
        index = next === undefined ? 1 : next < prev ? 0 : next;
        if (next !== undefined && next < prev)
          logger.info('consul index went backwards; resetting', { ...q.fields, previous: prev, index: next });
        q.onAnswer(res);
        failures = 0;
        if (index > 0 && prev > 0 && clock.now() - startedAt >= wait / 2) interval = minInterval;
        continue;
      } catch (error) {
        release();
        if (signal.aborted) return;
        failed = MeshError.is(error)
          ? error
          : new MeshError('MESH_INTERNAL', `consul ${q.what}: ${String(error)}`, { cause: error });
        if (failed.code === 'MESH_REGISTRY_PAYLOAD_INVALID') {
          // Keep (or advance to) the index of the bad answer: the next call blocks until the
          // data changes instead of fetching the same answer after every backoff.
          const bad = parseIndex(typeof failed.details.index === 'string' ? failed.details.index : undefined);
          if (bad !== undefined) index = bad;
        } else {
          // Transport and status errors: the next read is non-blocking, so recovery is immediate.
          index = 0;
        }
        if (q.mapError) failed = q.mapError(failed);
      }
      q.onError(failed);
      const delay = consulErrorDelay(failed, failures, backoff, random, wallClockMs(clock));
      failures += 1;
      logger.warn('consul watch failed; backing off', { ...q.fields, delayMs: delay, error: failed.message });
      if (!(await pause(delay))) return;
    }
  } finally {
    slots.leave();
  }
}

const noRelease = (): void => undefined;

/**
 * The delay before the next call after `error`, the `failures + 1`-th in a row: the cap for
 * `MESH_CONFIG_INVALID`, the 429/503 base after those statuses, at least `Retry-After`.
 */
export function consulErrorDelay(
  error: MeshError,
  failures: number,
  backoff: ConsulBackoffOptions,
  random: Random,
  nowMs: number,
): number {
  const status = error.details.status;
  const throttled = status === 429 || status === 503;
  let delay =
    error.code === 'MESH_CONFIG_INVALID'
      ? Math.max(backoff.capMs, backoff.throttledBaseMs ?? 0)
      : consulRetryDelay(failures, backoff, random, throttled);
  const retryAfter = parseRetryAfter(
    typeof error.details.retryAfter === 'string' ? error.details.retryAfter : undefined,
    nowMs,
  );
  if (retryAfter !== undefined) delay = Math.max(delay, retryAfter);
  return delay;
}

/** `X-Consul-Index` as a positive integer, or `undefined` when missing, not numeric or ≤ 0. */
export function parseIndex(raw: string | undefined): number | undefined {
  if (raw === undefined || !/^\d+$/.test(raw.trim())) return undefined;
  const n = Number(raw.trim());
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}
