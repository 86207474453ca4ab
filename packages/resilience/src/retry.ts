import {
  type CallContext,
  type CallResult,
  type Clock,
  callOf,
  type Filter,
  MeshError,
  type ResponseHeaders,
  wallClockMs,
} from '@proxyless/core';
import { RetryBudget } from './budget.js';
import { DEFAULT_RETRY, type RetryConfig, type RetryOn } from './config.js';
import { checkRetrySettings } from './factory-checks.js';
import { parseHttpDate } from './http-date.js';
import { RetryCall, type RetryPolicy } from './retry-call.js';

const ATTEMPT_KEY = 'proxyless.resilience.attempt';

/** The next attempt number of a call, shared by retries and hedges so numbers never repeat. */
export function nextAttemptNumber(ctx: CallContext): number {
  const last = (ctx.attributes.get(ATTEMPT_KEY) as number | undefined) ?? ctx.attempt;
  const n = Math.max(last, ctx.attempt) + 1;
  ctx.attributes.set(ATTEMPT_KEY, n);
  return n;
}

/** A concurrency gate (`circuitBreaker.maxRetries`: retries in flight to one destination). */
export interface RetryGate {
  tryEnter(): boolean;
  leave(): void;
}

/**
 * A counting gate. `setLimit` changes the limit in place (a config reload): retries in flight keep
 * their places and leave into the same count.
 */
export function createGate(
  limit: number,
): RetryGate & { readonly active: number; setLimit(limit: number): void } {
  let active = 0;
  let max = limit;
  return {
    get active() {
      return active;
    },
    setLimit(next) {
      max = next;
    },
    tryEnter() {
      if (active >= max) return false;
      active++;
      return true;
    },
    leave() {
      if (active > 0) active--;
    },
  };
}

/** Dependencies of a retry filter; a destination shares one budget between its retries and hedges. */
export interface RetryDeps {
  /** The destination's budget; a private one is created when absent. */
  budget?: RetryBudget;
  /** Limits retries in flight to the destination. */
  gate?: RetryGate;
  /** Needed only to create a private budget before the first call; defaults to the call's clock. */
  clock?: Clock;
}

/** How an attempt ended, as far as retrying is concerned: a response head, or an error. */
export type Outcome =
  | { ok: true; result: Pick<CallResult, 'status' | 'headers'> & { endpoint?: CallResult['endpoint'] } }
  | { ok: false; error: unknown };

/**
 * Why an outcome may be retried, or `undefined` when it may not. Envoy's rule
 * (`retry_state_impl.cc`, `wouldRetryFromReset`): `5xx` and `gateway-error` retry an upstream that
 * did not answer at all — a connect failure, a reset (a refused stream too), a per-try timeout —
 * as well as their statuses; `connect-failure`, `reset` and `refused-stream` retry only their own
 * failure. The reason named is the most specific entry of `retryOn` that allows the retry. Whether
 * the request may be sent again at all is {@link unsafeToReplay}'s question, not this one's.
 */
export function retryReason(outcome: Outcome, config: RetryConfig): RetryOn | 'per-try-timeout' | undefined {
  const on = config.retryOn;
  if (!outcome.ok) {
    const e = outcome.error;
    if (!MeshError.is(e)) return undefined;
    // No answer at all: `5xx`, `gateway-error` and `reset` cover it (Envoy: "or does not respond at
    // all (disconnect/reset/read timeout)"; its reset rule takes every reset reason, a connect
    // failure included).
    const noAnswer = on.includes('5xx')
      ? '5xx'
      : on.includes('gateway-error')
        ? 'gateway-error'
        : on.includes('reset')
          ? 'reset'
          : undefined;
    if (e.code === 'MESH_CONNECT_FAILED')
      return on.includes('connect-failure') ? 'connect-failure' : noAnswer;
    if (e.code === 'MESH_UPSTREAM_RESET') {
      const code = String(e.details.errorCode ?? '');
      const refused = e.details.refusedStream === true || /REFUSED_STREAM/i.test(code);
      if (refused && on.includes('refused-stream')) return 'refused-stream';
      return on.includes('reset') ? 'reset' : noAnswer;
    }
    if (e.code === 'MESH_TIMEOUT' && (e.details.limit === 'perTry' || e.details.limit === 'headers')) {
      return noAnswer !== undefined ? 'per-try-timeout' : undefined;
    }
    return undefined;
  }
  const { status, headers } = outcome.result;
  if (on.includes('5xx') && status >= 500 && status <= 599) return '5xx';
  if (on.includes('gateway-error') && (status === 502 || status === 503 || status === 504))
    return 'gateway-error';
  if (on.includes('retriable-status-codes') && config.retriableStatusCodes.includes(status)) {
    return 'retriable-status-codes';
  }
  if (on.includes('retriable-headers') && config.retriableHeaders.some((h) => headers[h] !== undefined)) {
    return 'retriable-headers';
  }
  return undefined;
}

/**
 * Why sending the request again is unsafe, or `undefined` when it is safe. A connect failure with
 * nothing sent is always safe; otherwise the request must be idempotent (or `allowNonIdempotent`)
 * and its body, if any was sent, one the mesh can send again (`bodyReplayable`, by default the
 * request's own flag).
 */
export function unsafeToReplay(
  ctx: CallContext,
  outcome: Outcome,
  config: RetryConfig,
  bodyReplayable: boolean = ctx.request.bodyReplayable,
): string | undefined {
  const details = !outcome.ok && MeshError.is(outcome.error) ? outcome.error.details : undefined;
  const nothingSent = details?.phase === 'connect' && details.bodySent === false;
  if (nothingSent && bodyReplayable) return undefined;
  if (!ctx.request.idempotent && !config.allowNonIdempotent && !nothingSent) return 'not_idempotent';
  if (!bodyReplayable) return 'body_not_replayable';
  return undefined;
}

/**
 * `Retry-After` in ms, or `undefined` when absent or invalid (RFC 9110 §10.2.3: delay-seconds, a
 * non-negative integer, or an HTTP-date; `1.5`, `-1` or any other text is ignored, so the normal
 * backoff applies). An HTTP date is measured from `nowWallMs`: pass `wallClockMs(ctx.clock)` so it
 * follows the call's clock (a `VirtualClock`'s date in tests); the default is the real date. A date
 * in the past is 0.
 */
export function parseRetryAfter(
  headers: ResponseHeaders,
  nowWallMs: number = wallClockMs(),
): number | undefined {
  let v = headers['retry-after'];
  if (Array.isArray(v)) v = v[0];
  if (v === undefined) return undefined;
  const s = v.trim();
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  const t = parseHttpDate(s, nowWallMs);
  if (t === undefined) return undefined;
  return Math.max(0, t - nowWallMs);
}

/** Full-jitter exponential backoff: uniform in [0, min(max, base·2^(retry-1))). */
export function backoffDelay(config: RetryConfig, retry: number, random: () => number): number {
  const ceiling = Math.min(config.backoff.maxMs, config.backoff.baseMs * 2 ** Math.max(0, retry - 1));
  return Math.floor(random() * ceiling);
}

/**
 * Retries with Envoy semantics, as an undici interceptor that sees the whole exchange: retry only on
 * the configured conditions, never replay what is unsafe (undici's `RetryHandler` rule: a body is
 * sent again only when it is bytes, a Blob/FormData undici re-reads, or a stream the mesh kept or
 * never touched), full-jitter exponential backoff on the call's clock, `Retry-After` honoured up to
 * `retryAfterMaxMs`, a different endpoint preferred, and a shared budget. The backoff starts at a
 * retried response's head; its body is drained meanwhile (kept up to 64 KiB), and dropped with its
 * connection if larger or not over when the backoff is. A 1xx passed on to the caller ends retrying
 * (Envoy). When retrying stops, the last real response or error goes to the caller, and a `give_up`
 * event says why.
 */
export function createRetryFilter(config: Partial<RetryConfig> = {}, deps: RetryDeps = {}): Filter {
  checkRetrySettings(config);
  const c: RetryConfig = { ...DEFAULT_RETRY, ...config };
  if (c.maxRetries <= 0) return (dispatch) => dispatch;
  const statusRetriable = new Uint8Array(600);
  for (let status = 100; status < 600; status++) {
    statusRetriable[status] = retryReason({ ok: true, result: { status, headers: {} } }, c) ? 1 : 0;
  }
  const policy: RetryPolicy = {
    config: c,
    statusRetriable,
    checkHeaders: c.retryOn.includes('retriable-headers') && c.retriableHeaders.length > 0,
    budget: deps.budget,
    gate: deps.gate,
    clock: deps.clock,
  };
  return (dispatch) => (opts, handler) => {
    const ctx = callOf(opts);
    // Upgrades and CONNECT hand over a socket: retried only after a connect failure (RetryCall).
    if (ctx === undefined) return dispatch(opts, handler);
    policy.budget ??= new RetryBudget(c.budget, deps.clock ?? ctx.clock);
    policy.budget.recordRequest();
    new RetryCall(dispatch, opts, handler, ctx, policy).start();
    return true;
  };
}

/**
 * Why an attempt was refused before anything was sent, as a `give_up` / `hedge_skipped` reason:
 * the circuit breaker is open, or the pick stage found no endpoint to send it to. `undefined` for
 * any other error.
 */
export function refusalOf(error: Error): string | undefined {
  if (!MeshError.is(error)) return undefined;
  switch (error.code) {
    case 'MESH_CIRCUIT_OPEN':
      return 'circuit_open';
    case 'MESH_NO_HEALTHY_ENDPOINTS':
      return 'no_healthy_endpoints';
    case 'MESH_NO_ENDPOINTS':
      return 'no_endpoints';
    default:
      return undefined;
  }
}
