import {
  abortError,
  type CallContext,
  type CallResult,
  type Clock,
  discardResult,
  emitCallEvent,
  type Filter,
  MeshError,
  type Timer,
} from '@proxyless/core';
import { RetryBudget } from './budget.js';
import { DEFAULT_HEDGE, DEFAULT_RETRY, type HedgeConfig } from './config.js';
import { nextAttemptNumber } from './retry.js';

const SAMPLES = 256;
const MIN_SAMPLES = 20;

/** Latencies of recent successful attempts, for percentile hedge delays. */
export class LatencyTracker {
  readonly #samples: number[] = [];
  #next = 0;
  #sorted: number[] | undefined;
  #sinceSort = 0;

  /** Add one latency, ms (the oldest of 256 is dropped). */
  record(ms: number): void {
    if (this.#samples.length < SAMPLES) this.#samples.push(ms);
    else this.#samples[this.#next] = ms;
    this.#next = (this.#next + 1) % SAMPLES;
    this.#sinceSort++;
  }

  /** The `p`th percentile (1..99.9), or `undefined` with fewer than 20 samples. */
  percentile(p: number): number | undefined {
    if (this.#samples.length < MIN_SAMPLES) return undefined;
    if (this.#sorted === undefined || this.#sinceSort >= 16) {
      this.#sorted = [...this.#samples].sort((a, b) => a - b);
      this.#sinceSort = 0;
    }
    const i = Math.min(this.#sorted.length - 1, Math.ceil((p / 100) * this.#sorted.length) - 1);
    return this.#sorted[Math.max(0, i)];
  }

  /** Samples held. */
  get count(): number {
    return this.#samples.length;
  }
}

type Outcome = { ok: true; result: CallResult } | { ok: false; error: unknown };

function isGood(o: Outcome): o is { ok: true; result: CallResult } {
  return o.ok && o.result.status < 500;
}

/**
 * Hedged requests for idempotent, replayable calls: if no answer came after the hedge delay (a
 * fixed `delayMs`, or the `percentile` latency of recent successes), send another attempt, up to
 * `maxHedges`. The first good answer (a status below 500) wins; the others are aborted and their
 * answers discarded. If every attempt fails, the last failure is returned. Each hedge is taken
 * from the retry budget (shared with the retry filter when `budget` is given).
 */
export function createHedgeFilter(
  config: Partial<HedgeConfig> = {},
  deps: { budget?: RetryBudget; clock?: Clock } = {},
): Filter & { latency: LatencyTracker } {
  const c: HedgeConfig = { ...DEFAULT_HEDGE, ...config };
  const latency = new LatencyTracker();
  const shared = deps.budget !== undefined;
  let budget = deps.budget;
  const delayFor = (): number => {
    if (c.percentile !== undefined) return latency.percentile(c.percentile) ?? c.delayMs;
    return c.delayMs;
  };

  const filter: Filter = (ctx, next) => {
    if (!ctx.request.replayable) return next(ctx);
    if (budget === undefined) budget = new RetryBudget(DEFAULT_RETRY.budget, deps.clock ?? ctx.clock);
    if (!shared) budget.recordRequest();
    const b = budget;
    const parent = ctx.signal;
    if (parent?.aborted) return Promise.reject(abortError(parent));
    return new Promise<CallResult>((resolve, reject) => {
      const running = new Set<AbortController>();
      let hedgesLeft = c.maxHedges;
      let settled = false;
      let last: Outcome | undefined;
      let timer: Timer | undefined;

      const cleanup = (): void => {
        settled = true;
        timer?.cancel();
        parent?.removeEventListener('abort', onParentAbort);
      };
      const onParentAbort = (): void => {
        timer?.cancel();
        for (const ac of running) ac.abort(parent!.reason);
      };
      const settle = (o: Outcome): void => {
        cleanup();
        if (o.ok) resolve(o.result);
        else reject(o.error);
      };
      const start = (attemptCtx: CallContext): void => {
        const ac = new AbortController();
        running.add(ac);
        const startedAt = ctx.clock.now();
        let p: Promise<CallResult>;
        try {
          p = next({ ...attemptCtx, signal: ac.signal });
        } catch (error) {
          p = Promise.reject(error);
        }
        p.then(
          (result) => onOutcome(ac, { ok: true, result }, startedAt),
          (error: unknown) => onOutcome(ac, { ok: false, error }, startedAt),
        );
      };
      const onOutcome = (ac: AbortController, o: Outcome, startedAt: number): void => {
        running.delete(ac);
        if (settled) {
          if (o.ok) discardResult(o.result);
          return;
        }
        if (isGood(o)) {
          latency.record(ctx.clock.now() - startedAt);
          const lost = new MeshError('MESH_ABORTED', 'another hedged attempt answered first', {
            details: { service: ctx.service, reason: 'hedge_lost' },
          });
          for (const other of running) other.abort(lost);
          if (last?.ok) discardResult(last.result);
          settle(o);
          return;
        }
        if (last?.ok) discardResult(last.result);
        last = o;
        if (running.size === 0) settle(o);
      };
      const schedule = (): void => {
        if (hedgesLeft <= 0) return;
        const delay = delayFor();
        timer = ctx.clock.setTimer(delay, () => {
          if (settled || parent?.aborted) return;
          if (!b.tryWithdraw()) {
            emitCallEvent(ctx, { type: 'hedge_skipped', reason: 'budget_exhausted' });
            return;
          }
          hedgesLeft--;
          const attempt = nextAttemptNumber(ctx);
          emitCallEvent(ctx, { type: 'hedge', attempt, reason: 'delay', delayMs: delay });
          start({ ...ctx, attempt });
          schedule();
        });
      };
      parent?.addEventListener('abort', onParentAbort, { once: true });
      start(ctx);
      schedule();
    });
  };
  const f = filter as Filter & { latency: LatencyTracker };
  f.latency = latency;
  return f;
}
