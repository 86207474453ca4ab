import type { IncomingHttpHeaders } from 'node:http';
import {
  type CallContext,
  type Clock,
  callOf,
  type DispatchFn,
  emitCallEvent,
  type Filter,
  KEEP_ALIVE,
  type MeshDispatchOptions,
  MeshError,
  type MeshHandler,
  RelayController,
  type Timer,
  withCall,
} from '@proxyless/core';
import type { Dispatcher } from 'undici';
import { type BodyRecorder, isReusableBody, recordBody } from './body.js';
import { RetryBudget } from './budget.js';
import { DEFAULT_HEDGE, DEFAULT_RETRY, type HedgeConfig } from './config.js';
import { checkHedgeSettings, checkSettingKeys } from './factory-checks.js';
import { cancelQueued, kQueuedHold } from './queued.js';
import { nextAttemptNumber, refusalOf } from './retry.js';

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

/** Dependencies of a hedge filter; a destination shares one budget between its retries and hedges. */
export interface HedgeDeps {
  /** The budget hedges are paid from; a private one (the retry budget's defaults) is created when absent. */
  budget?: RetryBudget;
  /**
   * Whether this filter counts the calls it hedges as requests of the budget (what its `ratio`
   * applies to). Default: only for its private budget — a shared one is counted by the retry
   * filter in front of it. `true` for a shared budget no retry filter counts (retries off).
   */
  countRequests?: boolean;
  /** Needed only to create a private budget before the first call; defaults to the call's clock. */
  clock?: Clock;
}

/**
 * Hedged requests (gRPC A6 / Envoy `hedge_on_per_try_timeout` style, on a timer): after `delay` (or
 * the observed latency percentile), send the same request to another endpoint, up to `maxHedges`
 * more. The first attempt whose head is good (status < 500) wins and streams to the caller; the
 * others are aborted and their answers discarded. Only idempotent requests are hedged, and only
 * with a body that can be sent again: bytes or none, or a streamed body (fetch sends every body as
 * one) that the first attempt has read to its end within the 1 MiB replay buffer by the time a
 * hedge is due — while it is still being read, the hedge waits another delay; past the limit, no
 * hedge is sent. Hedges are paid from the retry budget.
 */
export function createHedgeFilter(
  config: Partial<HedgeConfig> = {},
  deps: HedgeDeps = {},
): Filter & { latency: LatencyTracker } {
  checkSettingKeys('createHedgeFilter', config, 'hedge');
  checkHedgeSettings(config);
  const c: HedgeConfig = { ...DEFAULT_HEDGE, ...config };
  const latency = new LatencyTracker();
  const counts = deps.countRequests ?? deps.budget === undefined;
  const state: HedgeState = {
    config: c,
    latency,
    budget: deps.budget,
    delayFor: () =>
      c.percentile !== undefined ? (latency.percentile(c.percentile) ?? c.delayMs) : c.delayMs,
  };
  const interceptor: Filter = (dispatch) => (opts, handler) => {
    const ctx = callOf(opts);
    if (ctx === undefined || opts.upgrade || !ctx.request.idempotent) return dispatch(opts, handler);
    // A streamed body is kept as the first attempt sends it, so a hedge can send it again.
    const reusable = isReusableBody(opts.body);
    const recorder = reusable ? undefined : recordBody(opts.body);
    if (!reusable && recorder === undefined) return dispatch(opts, handler);
    state.budget ??= new RetryBudget(DEFAULT_RETRY.budget, deps.clock ?? ctx.clock);
    if (counts) state.budget.recordRequest();
    new HedgeCall(dispatch, opts, handler, ctx, state, recorder).start();
    return true;
  };
  const f = interceptor as Filter & { latency: LatencyTracker };
  f.latency = latency;
  return f;
}

interface HedgeState {
  readonly config: HedgeConfig;
  readonly latency: LatencyTracker;
  budget: RetryBudget | undefined;
  delayFor(): number;
}

class HedgeAttempt implements MeshHandler {
  controller: Dispatcher.DispatchController | undefined;
  settled = false;
  /** undici said this attempt's response began before any attempt won: owed to the caller if it wins. */
  startedOwed = false;
  constructor(
    readonly call: HedgeCall,
    readonly startedAt: number,
    readonly ctx: CallContext,
    /** Sent by the hedge timer (paid from the budget), not the call's first attempt. */
    readonly hedge: boolean,
  ) {}
  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    this.call.started(this, controller);
  }
  onResponseStarted(): void {
    // undici says a response began before its head is parsed, so before any attempt has won:
    // held until this attempt wins (fetch's Resource Timing `responseStart`), dropped if it loses.
    if (this.call.winner === this) this.call.responseStarted();
    else if (this.call.winner === undefined) this.startedOwed = true;
  }
  onResponseStart(
    _c: Dispatcher.DispatchController,
    status: number,
    headers: IncomingHttpHeaders,
    text?: string,
  ): void {
    this.call.head(this, status, headers, text);
  }
  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.call.winner === this && !this.settled)
      this.call.handler.onResponseData?.(this.call.relay, chunk);
  }
  onResponseEnd(_c: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    this.call.end(this, trailers);
  }
  onResponseError(_c: Dispatcher.DispatchController, error: Error): void {
    this.call.error(this, error);
  }
}

class HedgeCall {
  readonly relay: RelayController;
  readonly handler: MeshHandler;
  winner: HedgeAttempt | undefined;
  readonly #dispatch: DispatchFn;
  readonly #opts: MeshDispatchOptions;
  readonly #ctx: CallContext;
  readonly #s: HedgeState;
  readonly #running = new Set<HedgeAttempt>();
  /** The streamed request body, kept as it is sent (`undefined`: bytes or none, sent as they are). */
  readonly #body: BodyRecorder | undefined;
  /** A hedge was due while the body was still being sent (reported once). */
  #waitedForBody = false;
  #hedgesLeft: number;
  #timer: Timer | undefined;
  #done = false;

  constructor(
    dispatch: DispatchFn,
    opts: MeshDispatchOptions,
    handler: MeshHandler,
    ctx: CallContext,
    s: HedgeState,
    body: BodyRecorder | undefined,
  ) {
    this.#body = body;
    this.#dispatch = dispatch;
    this.#opts = opts;
    this.handler = handler;
    this.#ctx = ctx;
    this.#s = s;
    this.#hedgesLeft = s.config.maxHedges;
    this.relay = new RelayController((reason) => this.#abortAll(reason));
  }

  start(): void {
    this.handler.onRequestStart?.(this.relay, {});
    if (this.relay.aborted) return;
    this.#send(this.#ctx);
    this.#schedule();
  }

  #send(ctx: CallContext, hedge = false): void {
    const a = new HedgeAttempt(this, this.#ctx.clock.now(), ctx, hedge);
    this.#running.add(a);
    try {
      const opts = withCall(this.#opts, ctx);
      if (this.#body !== undefined) opts.body = this.#body.attempt() as never;
      this.#dispatch(opts, a);
    } catch (error) {
      this.error(a, error as Error);
    }
  }

  #schedule(recheckMs?: number): void {
    // A call that already ended (its attempt failed at once: no endpoint to send to) arms nothing.
    if (this.#done || this.#hedgesLeft <= 0) return;
    const delay = recheckMs ?? this.#s.delayFor();
    this.#timer = this.#ctx.clock.setTimer(
      delay,
      () => {
        this.#timer = undefined;
        if (this.#done || this.winner !== undefined) return;
        const body = this.#body;
        if (body !== undefined && !body.complete) {
          // The first attempt is still sending the body (or sent more than is kept): a hedge would
          // have to read it too. Past the limit it never can; otherwise look again later — after
          // twice as long each time (10 ms to 1 s), so a slow upload is not a timer per
          // millisecond, and reported once per call.
          if (body.exceeded || !this.#waitedForBody) {
            emitCallEvent(this.#ctx, {
              type: 'hedge_skipped',
              reason: body.exceeded ? 'body_too_large' : 'body_streaming',
            });
          }
          this.#waitedForBody = true;
          if (!body.exceeded) this.#schedule(Math.min(1000, Math.max(10, delay * 2)));
          return;
        }
        if (!this.#s.budget!.tryWithdraw()) {
          emitCallEvent(this.#ctx, { type: 'hedge_skipped', reason: 'budget_exhausted' });
          return;
        }
        this.#hedgesLeft--;
        const attempt = nextAttemptNumber(this.#ctx);
        emitCallEvent(this.#ctx, { type: 'hedge', attempt, reason: 'delay', delayMs: delay });
        // A hedge goes to an endpoint no attempt of this call is waiting on, when there is one.
        const exclude = new Set(this.#ctx.excludeEndpoints ?? []);
        for (const r of this.#running) if (r.ctx.endpoint !== undefined) exclude.add(r.ctx.endpoint.id);
        const ctx = {
          ...this.#ctx,
          attempt,
          endpoint: undefined,
          excludeEndpoints: exclude,
          [kQueuedHold]: undefined,
        } as CallContext;
        this.#send(ctx, true);
        this.#schedule();
      },
      KEEP_ALIVE,
    );
  }

  started(a: HedgeAttempt, controller: Dispatcher.DispatchController): void {
    if (this.#done || (this.winner !== undefined && this.winner !== a)) {
      controller.abort(lostError(this.#ctx));
      return;
    }
    if (this.relay.aborted) controller.abort(this.relay.error!);
  }

  head(a: HedgeAttempt, status: number, headers: IncomingHttpHeaders, text: string | undefined): void {
    if (a.settled || this.#done || (this.winner !== undefined && this.winner !== a)) return;
    if (status < 200) {
      // A 1xx (103 Early Hints, …) goes to the caller at once, and the attempt that sent it is the
      // call's: the others are cancelled, as Envoy's router resets the other upstream requests
      // once it has proxied a 1xx. (Its latency is not a head's: not sampled for the percentile.)
      if (this.winner === undefined) this.#win(a, false);
      this.handler.onResponseStart?.(this.relay, status, headers, text);
      return;
    }
    if (status >= 500 && this.winner === undefined) {
      // A bad answer: held back while another attempt may still do better. As Envoy's router does
      // with a 5xx it will not return while other upstream requests are in flight, the attempt is
      // reset and its answer discarded; it answered (its endpoint counts the 5xx at this head), so
      // it is not a hedge that lost the race. The last attempt's 5xx is the call's.
      a.settled = true;
      this.#running.delete(a);
      if (this.#running.size > 0) {
        a.controller?.abort(heldError(this.#ctx, status));
        return;
      }
      a.settled = false;
      this.#running.add(a);
    }
    this.#win(a);
    this.handler.onResponseStart?.(this.relay, status, headers, text);
  }

  /** The winner's `onResponseStarted` (undici's old-style hook fetch times the response with). */
  responseStarted(): void {
    (this.handler as { onResponseStarted?: () => void }).onResponseStarted?.();
  }

  #win(a: HedgeAttempt, sample = true): void {
    this.winner = a;
    if (sample) this.#s.latency.record(this.#ctx.clock.now() - a.startedAt);
    this.#timer?.cancel();
    this.#timer = undefined;
    if (a.controller !== undefined) this.relay.setInner(a.controller);
    const lost = lostError(this.#ctx);
    for (const other of this.#running) {
      if (other === a) continue;
      other.settled = true;
      // A loser still queued in its endpoint's pool is taken back by the stages below it.
      if (other.controller !== undefined) other.controller.abort(lost);
      else cancelQueued(other.ctx, lost);
    }
    this.#running.clear();
    this.#running.add(a);
    if (a.startedOwed) {
      a.startedOwed = false;
      this.responseStarted();
    }
  }

  end(a: HedgeAttempt, trailers: IncomingHttpHeaders): void {
    if (a.settled || this.#done || this.winner !== a) return;
    a.settled = true;
    this.#finish();
    this.handler.onResponseEnd?.(this.relay, trailers);
  }

  error(a: HedgeAttempt, error: Error): void {
    if (a.settled || this.#done) return;
    a.settled = true;
    this.#running.delete(a);
    const refusal = a.hedge && this.#running.size > 0 ? refusalOf(error) : undefined;
    if (refusal !== undefined) {
      // The breaker opened during the call, or no endpoint is left to hedge on: no more hedges;
      // the attempts sent go on, and the budget gets back the hedge that was never sent. A refusal
      // that came after the next hedge was armed (a pick that answers asynchronously) disarms it.
      this.#hedgesLeft = 0;
      this.#timer?.cancel();
      this.#timer = undefined;
      this.#s.budget?.refund();
      emitCallEvent(this.#ctx, { type: 'hedge_skipped', reason: refusal });
      return;
    }
    if (this.winner === a || this.relay.aborted) {
      this.#finish();
      this.handler.onResponseError?.(this.relay, this.relay.aborted ? (this.relay.error ?? error) : error);
      return;
    }
    if (this.#running.size > 0) return;
    this.#finish();
    this.handler.onResponseError?.(this.relay, error);
  }

  #abortAll(reason: Error): void {
    if (this.#done) return;
    this.#timer?.cancel();
    this.#timer = undefined;
    let live = false;
    for (const a of [...this.#running]) {
      if (a.settled) continue;
      if (a.controller !== undefined) {
        a.controller.abort(reason);
        live = true;
      } else if (cancelQueued(a.ctx, reason)) {
        // Queued in its endpoint's pool: the stages below released it and reported the reason.
        live = true;
      }
    }
    if (live || this.#done) return;
    this.#finish();
    this.handler.onResponseError?.(this.relay, reason);
  }

  #finish(): void {
    this.#done = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#body?.close();
  }
}

/** The abort of a hedge that lost the race: another attempt answered before its head came. */
function lostError(ctx: CallContext): MeshError {
  return new MeshError('MESH_ABORTED', 'another hedged attempt answered first', {
    details: { service: ctx.service, reason: 'hedge_lost' },
  });
}

/**
 * The abort of an attempt that answered a 5xx while other attempts of the call were still running:
 * its answer is discarded in case one of them does better (`reason: hedge_5xx`, with the status).
 */
function heldError(ctx: CallContext, status: number): MeshError {
  return new MeshError(
    'MESH_ABORTED',
    `the hedged attempt answered ${status}: discarded while another attempt may still answer`,
    { details: { service: ctx.service, reason: 'hedge_5xx', status } },
  );
}
