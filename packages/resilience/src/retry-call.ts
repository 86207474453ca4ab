import type { IncomingHttpHeaders } from 'node:http';
import {
  type CallContext,
  callOf,
  type DispatchFn,
  emitCallEvent,
  isRequestBodyError,
  KEEP_ALIVE,
  type MeshDispatchOptions,
  MeshError,
  type MeshHandler,
  RelayController,
  type Timer,
  wallClockMs,
  withCall,
} from '@proxyless/core';
import type { Dispatcher } from 'undici';
import { type BodyRecorder, isReusableBody, recordBody } from './body.js';
import type { RetryBudget } from './budget.js';
import type { RetryConfig } from './config.js';
import { cancelQueued, kQueuedHold } from './queued.js';
import {
  backoffDelay,
  nextAttemptNumber,
  type Outcome,
  parseRetryAfter,
  type RetryGate,
  refusalOf,
  retryReason,
  unsafeToReplay,
} from './retry.js';
import { DRAIN_LIMIT, RetryAttempt } from './retry-attempt.js';

/** What every call of one retry interceptor shares. */
export interface RetryPolicy {
  readonly config: RetryConfig;
  /** 1 where a status is retriable by `retryOn`, by status code (a lookup, not a scan). */
  readonly statusRetriable: Uint8Array;
  readonly checkHeaders: boolean;
  budget: RetryBudget | undefined;
  readonly gate: RetryGate | undefined;
  readonly clock: unknown;
}

/** One call through the retry interceptor: the caller sees one exchange, whatever the attempts. */
export class RetryCall {
  readonly relay: RelayController;
  readonly #dispatch: DispatchFn;
  readonly #opts: MeshDispatchOptions;
  readonly handler: MeshHandler;
  readonly #ctx: CallContext;
  readonly #p: RetryPolicy;
  readonly #recorder: BodyRecorder | undefined;
  readonly #reusable: boolean;
  /**
   * An upgrade (WebSocket) or CONNECT: its answer hands a socket over, so only an attempt that
   * never reached its endpoint (a connect failure: nothing was sent) is retried.
   */
  readonly #handsOverSocket: boolean;
  #current: RetryAttempt | undefined;
  #retries = 0;
  #excluded: Set<string> | undefined;
  #timer: Timer | undefined;
  #committed = false;
  #done = false;
  #gateHeld = false;
  /** The attempt being retried, why, and how it is described in events. */
  #previous: { attempt: RetryAttempt; reason: string; info: ReturnType<typeof describe> } | undefined;

  constructor(
    dispatch: DispatchFn,
    opts: MeshDispatchOptions,
    handler: MeshHandler,
    ctx: CallContext,
    p: RetryPolicy,
  ) {
    this.#dispatch = dispatch;
    this.#opts = opts;
    this.handler = handler;
    this.#ctx = ctx;
    this.#p = p;
    this.#reusable = isReusableBody(opts.body);
    this.#handsOverSocket = opts.upgrade != null || opts.method === 'CONNECT';
    this.#recorder = this.#reusable ? undefined : recordBody(opts.body);
    this.relay = new RelayController(this);
  }

  /** The caller aborted (through {@link relay}). */
  onRelayAbort(reason: Error): void {
    this.#abort(reason);
  }

  start(): void {
    this.handler.onRequestStart?.(this.relay, {});
    if (this.relay.aborted) return;
    this.#send(this.#ctx);
  }

  #send(ctx: CallContext): void {
    const attempt = new RetryAttempt(this, ctx);
    this.#current = attempt;
    // The first attempt runs on the call's own context and options, as they came (no stage below
    // changes options it was given: each copies what it changes); a retry gets a copy of its own.
    const opts =
      ctx === callOf(this.#opts) && this.#recorder === undefined ? this.#opts : withCall(this.#opts, ctx);
    if (this.#recorder !== undefined) opts.body = this.#recorder.attempt() as never;
    try {
      this.#dispatch(opts, attempt);
    } catch (error) {
      this.error(attempt, error as Error);
    }
  }

  attemptStarted(attempt: RetryAttempt, controller: Dispatcher.DispatchController): void {
    if (attempt !== this.#current || this.#done) {
      controller.abort(this.relay.error ?? new MeshError('MESH_ABORTED', 'attempt superseded'));
      return;
    }
    this.relay.setInner(controller);
    if (this.relay.aborted) controller.abort(this.relay.error!);
  }

  get #bodyReplayable(): boolean {
    return this.#reusable || (this.#recorder?.replayable ?? false);
  }

  head(a: RetryAttempt, status: number, headers: IncomingHttpHeaders, text: string | undefined): void {
    if (a.settled || this.#done) return;
    if (status < 200) {
      // A 1xx (103 Early Hints, …) goes to the caller at once, and then this attempt's answer is
      // the call's: no retry follows, as Envoy's router stops retrying once it has proxied a 1xx.
      // So only the attempt whose response the caller gets ever forwards its 1xx.
      this.#committed = true;
      this.#previous = undefined;
      this.handler.onResponseStart?.(this.relay, status, headers, text);
      return;
    }
    this.#leaveGate();
    if (
      !this.#committed &&
      !this.#handsOverSocket &&
      (this.#p.statusRetriable[status] === 1 || this.#p.checkHeaders)
    ) {
      const outcome: Outcome = {
        ok: true,
        result: { status, headers, ...(a.ctx.endpoint ? { endpoint: a.ctx.endpoint } : {}) },
      };
      const delay = this.#decide(a, outcome);
      if (delay !== undefined) {
        // The backoff starts now, while the body is drained (and kept, for a retry the breaker
        // refuses); a body not over when the backoff is, or known to be past the drain limit, is
        // dropped with its connection rather than waited for.
        a.draining = true;
        a.head = { status, headers, text };
        a.kept = [];
        this.#scheduleRetry(delay, a);
        if (Number(firstValue(headers['content-length'])) > DRAIN_LIMIT) {
          a.drop('retried response dropped: its body is past the drain limit');
        }
        return;
      }
    }
    this.#committed = true;
    this.#previous = undefined; // nothing more to retry: let the kept body go
    this.handler.onResponseStart?.(this.relay, status, headers, text);
  }

  /** An upgrade or CONNECT answered: the socket is the caller's, and the call is over here. */
  upgraded(a: RetryAttempt, status: number, headers: IncomingHttpHeaders, socket: never): void {
    if (a.settled || this.#done) {
      // Answered after the call ended (the caller aborted meanwhile): nobody takes the socket.
      (socket as { destroy?: () => void }).destroy?.();
      return;
    }
    a.settled = true;
    this.#committed = true;
    this.#finish();
    this.handler.onRequestUpgrade?.(this.relay, status, headers, socket);
  }

  end(a: RetryAttempt, trailers: IncomingHttpHeaders): void {
    if (a.settled || this.#done) return;
    a.settled = true;
    if (a.draining) {
      a.trailers = trailers; // the retry goes when the backoff is over
      return;
    }
    this.#finish();
    this.handler.onResponseEnd?.(this.relay, trailers);
  }

  error(a: RetryAttempt, error: Error): void {
    if (a.settled || this.#done) return;
    a.settled = true;
    if (a.draining && !this.relay.aborted) {
      // The retried response broke while it was drained: the retry goes ahead all the same, when
      // the backoff is over, and still holds its `circuitBreaker.maxRetries` slot.
      a.kept = undefined;
      return;
    }
    this.#leaveGate();
    if (this.relay.aborted) {
      this.#finish();
      this.handler.onResponseError?.(this.relay, this.relay.error ?? error);
      return;
    }
    const refusal = this.#previous !== undefined ? refusalOf(error) : undefined;
    if (refusal !== undefined) {
      this.#refused(a.ctx, error, refusal);
      return;
    }
    if (
      !this.#committed &&
      !isRequestBodyError(error) &&
      (!this.#handsOverSocket || (MeshError.is(error) && error.details.phase === 'connect'))
    ) {
      const delay = this.#decide(a, { ok: false, error });
      if (delay !== undefined) {
        a.failure = error;
        this.#scheduleRetry(delay);
        return;
      }
    }
    this.#finish();
    this.handler.onResponseError?.(this.relay, error);
  }

  /**
   * A retry was refused before it was sent: by the circuit breaker (it opened during the call), or
   * by the pick stage (no endpoint left to send it to: the one that failed is now in
   * TRANSIENT_FAILURE). Retrying stops, and the caller gets what the previous attempt answered, as
   * Envoy returns the last upstream response when a retry would overflow a breaker. The budget
   * gets its retry back: none was sent. Only a response whose body was cut (past the drain limit,
   * broken, or not over when the backoff was) cannot be given whole: then the refusal, never a
   * truncated body presented as complete.
   */
  #refused(actx: CallContext, refusal: Error, why: string): void {
    const { attempt: prev, reason, info } = this.#previous!;
    this.#p.budget?.refund();
    emitCallEvent(actx, { type: 'give_up', reason: `${why} (${reason})`, ...info });
    this.#finish();
    this.relay.setInner(undefined);
    if (prev.failure !== undefined) {
      this.handler.onResponseError?.(this.relay, prev.failure);
      return;
    }
    if (prev.head === undefined || prev.kept === undefined) {
      this.handler.onResponseError?.(this.relay, refusal);
      return;
    }
    this.#committed = true;
    const { status, headers, text } = prev.head;
    this.handler.onResponseStart?.(this.relay, status, headers, text);
    for (const chunk of prev.kept) {
      if (this.relay.aborted) break;
      this.handler.onResponseData?.(this.relay, chunk);
    }
    // A caller that aborts while the kept body is handed over gets its reason, as from undici.
    if (this.relay.aborted) this.handler.onResponseError?.(this.relay, this.relay.error ?? refusal);
    else this.handler.onResponseEnd?.(this.relay, prev.trailers ?? {});
  }

  /** The backoff before a retry, or `undefined` when this outcome goes to the caller. */
  #decide(a: RetryAttempt, outcome: Outcome): number | undefined {
    const actx = a.ctx;
    const c = this.#p.config;
    const reason = retryReason(outcome, c);
    if (reason === undefined) return undefined;
    const info = describe(outcome);
    const giveUp = (why: string): undefined => {
      emitCallEvent(actx, { type: 'give_up', reason: `${why} (${reason})`, ...info });
      return undefined;
    };
    const unsafe = unsafeToReplay(this.#ctx, outcome, c, this.#bodyReplayable);
    if (unsafe !== undefined) return giveUp(unsafe);
    if (this.#retries >= c.maxRetries) return giveUp('max_retries');
    const random = (): number => this.#ctx.random.next();
    let delay = backoffDelay(c, this.#retries + 1, random);
    if (outcome.ok) {
      // An HTTP-date Retry-After is measured on the call's clock, so it runs on virtual time too.
      const after = parseRetryAfter(outcome.result.headers, wallClockMs(this.#ctx.clock));
      if (after !== undefined) {
        if (after > c.retryAfterMaxMs) return giveUp('retry_after_too_long');
        delay = after;
      }
    }
    const deadline = this.#ctx.deadline;
    if (deadline !== undefined && this.#ctx.clock.now() + delay >= deadline) return giveUp('deadline');
    if (!this.#p.budget!.tryWithdraw()) return giveUp('budget_exhausted');
    if (this.#p.gate !== undefined) {
      if (!this.#p.gate.tryEnter()) {
        // A retry refused here is never sent: its unit of the budget is given back.
        this.#p.budget!.refund();
        return giveUp('retry_overflow');
      }
      this.#gateHeld = true;
    }
    if (info.endpoint !== undefined) {
      this.#excluded ??= new Set(this.#ctx.excludeEndpoints ?? []);
      this.#excluded.add(info.endpoint);
    }
    this.#retries++;
    this.#previous = { attempt: a, reason, info };
    emitCallEvent(actx, { type: 'retry', reason, delayMs: delay, ...info });
    return delay;
  }

  /**
   * Send the next attempt after `delay`. `draining` is the retried attempt whose body is drained
   * meanwhile: if it has not ended when the backoff is over, it is dropped then. A backoff of 0 ms
   * still waits for the current turn to finish (a microtask, not a timer: it needs no clock tick),
   * so a body that arrived in the same read as its head ends first and its connection is reused.
   */
  #scheduleRetry(delay: number, draining?: RetryAttempt): void {
    this.relay.setInner(undefined);
    const go = (): void => {
      this.#timer = undefined;
      if (this.#done) return;
      if (draining !== undefined && !draining.settled) {
        draining.drop('retried response cut: the backoff ended before its body');
      }
      const ctx: CallContext = {
        ...this.#ctx,
        attempt: nextAttemptNumber(this.#ctx),
        excludeEndpoints: this.#excluded ?? this.#ctx.excludeEndpoints,
        endpoint: undefined,
        [kQueuedHold]: undefined,
      } as CallContext;
      this.#send(ctx);
    };
    if (delay > 0) this.#timer = this.#ctx.clock.setTimer(delay, go, KEEP_ALIVE);
    else if (draining !== undefined) queueMicrotask(go);
    else go();
  }

  #abort(reason: Error): void {
    // The attempt in flight (also one being drained during a backoff) ends with the reason.
    const current = this.#current;
    if (current !== undefined && !current.settled) {
      if (current.controller !== undefined) {
        current.controller.abort(reason);
        return;
      }
      // Dispatched but not started (queued in the endpoint's pool): the stages below release
      // their slots and in-flight counts and report the reason back through the attempt.
      if (cancelQueued(current.ctx, reason)) return;
    }
    if (this.#done) return;
    // Between attempts (a backoff): nothing in flight to abort, so the call ends here.
    this.#finish();
    this.handler.onResponseError?.(this.relay, reason);
  }

  #leaveGate(): void {
    if (this.#gateHeld) {
      this.#gateHeld = false;
      this.#p.gate?.leave();
    }
  }

  #finish(): void {
    this.#done = true;
    this.#previous = undefined;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#leaveGate();
    this.#recorder?.close();
  }
}

function firstValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function describe(outcome: Outcome): { status?: number; code?: string; endpoint?: string } {
  if (outcome.ok) {
    const ep = outcome.result.endpoint;
    return { status: outcome.result.status, ...(ep ? { endpoint: ep.id } : {}) };
  }
  const e = outcome.error;
  if (MeshError.is(e)) {
    const ep = e.details.endpoint;
    return { code: e.code, ...(typeof ep === 'string' ? { endpoint: ep } : {}) };
  }
  return { code: 'ERROR' };
}
