import {
  type CallContext,
  type CallResult,
  type Clock,
  discardResult,
  emitCallEvent,
  type Filter,
  MeshError,
  type Next,
  type ResponseHeaders,
  wallClockMs,
} from '@proxyless/core';
import { RetryBudget } from './budget.js';
import { DEFAULT_RETRY, type RetryConfig, type RetryOn } from './config.js';

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

/** A counting gate with a fixed limit. */
export function createGate(limit: number): RetryGate & { readonly active: number } {
  let active = 0;
  return {
    get active() {
      return active;
    },
    tryEnter() {
      if (active >= limit) return false;
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

type Outcome = { ok: true; result: CallResult } | { ok: false; error: unknown };

/** Why an outcome may be retried, or `undefined` when it may not. */
export function retryReason(outcome: Outcome, config: RetryConfig): RetryOn | 'per-try-timeout' | undefined {
  const on = config.retryOn;
  if (!outcome.ok) {
    const e = outcome.error;
    if (!MeshError.is(e)) return undefined;
    if (e.code === 'MESH_CONNECT_FAILED')
      return on.includes('connect-failure') ? 'connect-failure' : undefined;
    if (e.code === 'MESH_UPSTREAM_RESET') {
      const code = String(e.details.errorCode ?? '');
      const refused = e.details.refusedStream === true || /REFUSED_STREAM/i.test(code);
      if (refused && on.includes('refused-stream')) return 'refused-stream';
      return on.includes('reset') ? 'reset' : undefined;
    }
    if (e.code === 'MESH_TIMEOUT' && (e.details.limit === 'perTry' || e.details.limit === 'headers')) {
      return on.includes('5xx') || on.includes('gateway-error') ? 'per-try-timeout' : undefined;
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
 * and its body, if any was sent, replayable.
 */
export function unsafeToReplay(ctx: CallContext, outcome: Outcome, config: RetryConfig): string | undefined {
  const details = !outcome.ok && MeshError.is(outcome.error) ? outcome.error.details : undefined;
  const nothingSent = details?.phase === 'connect' && details.bodySent === false;
  if (nothingSent) return undefined;
  if (!ctx.request.idempotent && !config.allowNonIdempotent) return 'not_idempotent';
  const bodySent = outcome.ok ? ctx.request.body !== null : details?.bodySent !== false;
  if (bodySent && !ctx.request.bodyReplayable) return 'body_not_replayable';
  return undefined;
}

/** `Retry-After` in ms (delta-seconds or an HTTP date), or `undefined` when absent or unreadable. */
export function parseRetryAfter(
  headers: ResponseHeaders,
  nowWallMs: number = wallClockMs(),
): number | undefined {
  let v = headers['retry-after'];
  if (Array.isArray(v)) v = v[0];
  if (v === undefined) return undefined;
  const s = v.trim();
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  const t = Date.parse(s);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - nowWallMs);
}

/** Full-jitter exponential backoff: uniform in [0, min(max, base·2^(retry-1))). */
export function backoffDelay(config: RetryConfig, retry: number, random: () => number): number {
  const ceiling = Math.min(config.backoff.maxMs, config.backoff.baseMs * 2 ** Math.max(0, retry - 1));
  return Math.floor(random() * ceiling);
}

function describe(outcome: Outcome): { status?: number; code?: string; endpoint?: string } {
  if (outcome.ok) {
    return {
      status: outcome.result.status,
      ...(outcome.result.endpoint ? { endpoint: outcome.result.endpoint.id } : {}),
    };
  }
  const e = outcome.error;
  if (MeshError.is(e)) {
    const ep = e.details.endpoint;
    return { code: e.code, ...(typeof ep === 'string' ? { endpoint: ep } : {}) };
  }
  return { code: 'ERROR' };
}

function endpointOf(outcome: Outcome): string | undefined {
  return describe(outcome).endpoint;
}

/**
 * Retries with Envoy semantics: retry only on the configured conditions, never replay what is
 * unsafe, full-jitter exponential backoff on the call's clock, `Retry-After` honoured up to
 * `retryAfterMaxMs`, a different endpoint preferred, and a shared budget. When retrying stops, the
 * last real response or error is returned, and a `give_up` event says why.
 */
export function createRetryFilter(config: Partial<RetryConfig> = {}, deps: RetryDeps = {}): Filter {
  const c: RetryConfig = { ...DEFAULT_RETRY, ...config };
  let budget = deps.budget;
  const gate = deps.gate;
  if (c.maxRetries <= 0) return (ctx, next) => next(ctx);
  const statusRetriable = new Uint8Array(600);
  for (let status = 100; status < 600; status++) {
    statusRetriable[status] = retryReason({ ok: true, result: { status, headers: {} } as CallResult }, c)
      ? 1
      : 0;
  }
  const checkHeaders = c.retryOn.includes('retriable-headers') && c.retriableHeaders.length > 0;
  return async (ctx, next) => {
    if (budget === undefined) budget = new RetryBudget(c.budget, deps.clock ?? ctx.clock);
    budget.recordRequest();
    // Fast path: the first answer is not retriable.
    let first: Outcome;
    try {
      const result = await next(ctx);
      if (statusRetriable[result.status] !== 1 && !checkHeaders) return result;
      first = { ok: true, result };
    } catch (error) {
      first = { ok: false, error };
    }
    return retryLoop(ctx, next, first, budget);
  };

  async function retryLoop(
    ctx: CallContext,
    next: Next,
    first: Outcome,
    budget: RetryBudget,
  ): Promise<CallResult> {
    const excluded = new Set(ctx.excludeEndpoints ?? []);
    let attemptCtx = ctx;
    let retries = 0;
    const random = (): number => ctx.random.next();
    let pending: Outcome | undefined = first;
    for (;;) {
      let outcome: Outcome;
      if (pending !== undefined) {
        outcome = pending;
        pending = undefined;
      } else {
        try {
          outcome = { ok: true, result: await next(attemptCtx) };
        } catch (error) {
          outcome = { ok: false, error };
        }
      }
      const finish = (): CallResult => {
        if (outcome.ok) return outcome.result;
        throw outcome.error;
      };
      const reason = retryReason(outcome, c);
      if (reason === undefined) return finish();
      const info = describe(outcome);
      const giveUp = (why: string): CallResult => {
        emitCallEvent(attemptCtx, { type: 'give_up', reason: `${why} (${reason})`, ...info });
        return finish();
      };
      if (ctx.signal?.aborted) return finish();
      const unsafe = unsafeToReplay(ctx, outcome, c);
      if (unsafe !== undefined) return giveUp(unsafe);
      if (retries >= c.maxRetries) return giveUp('max_retries');
      let delay = backoffDelay(c, retries + 1, random);
      if (outcome.ok) {
        const after = parseRetryAfter(outcome.result.headers);
        if (after !== undefined) {
          if (after > c.retryAfterMaxMs) return giveUp('retry_after_too_long');
          delay = after;
        }
      }
      if (ctx.deadline !== undefined && ctx.clock.now() + delay >= ctx.deadline) return giveUp('deadline');
      if (!budget.tryWithdraw()) return giveUp('budget_exhausted');
      if (gate !== undefined && !gate.tryEnter()) return giveUp('retry_overflow');
      const ep = endpointOf(outcome);
      if (ep !== undefined) excluded.add(ep);
      retries++;
      emitCallEvent(attemptCtx, { type: 'retry', reason, delayMs: delay, ...info });
      if (outcome.ok) discardResult(outcome.result);
      try {
        if (delay > 0) await ctx.clock.sleep(delay, ctx.signal);
      } catch (error) {
        gate?.leave();
        throw error;
      }
      attemptCtx = { ...ctx, attempt: nextAttemptNumber(ctx), excludeEndpoints: excluded };
      if (gate !== undefined) {
        // The gate counts retries in flight: release it when this retry attempt settles.
        try {
          outcome = { ok: true, result: await next(attemptCtx) };
        } catch (error) {
          outcome = { ok: false, error };
        } finally {
          gate.leave();
        }
        pending = outcome;
      }
    }
  }
}
