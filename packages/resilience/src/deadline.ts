import { AsyncLocalStorage } from 'node:async_hooks';
import type { IncomingHttpHeaders } from 'node:http';
import {
  type CallContext,
  type Clock,
  callOf,
  type DispatchFn,
  emitCallEvent,
  type Filter,
  failDispatch,
  KEEP_ALIVE,
  type MeshDispatchOptions,
  MeshError,
  type MeshHandler,
  processWide,
  RelayController,
  systemClock,
  type Timer,
  withCall,
  withHeader,
} from '@proxyless/core';
import type { Dispatcher } from 'undici';
import { checkTimeoutMs } from './factory-checks.js';
import { cancelQueued, holdQueued, type QueuedHold } from './queued.js';

/** Header carrying the remaining deadline of a call in milliseconds (like `x-envoy-expected-rq-timeout-ms`). */
export const DEADLINE_HEADER = 'x-mesh-deadline-ms';

/** Which limit a `MESH_TIMEOUT` raised by this package came from (`details.limit`). */
export type TimeoutLimit = 'overall' | 'perTry' | 'propagated';

interface IncomingDeadline {
  /** Absolute time on `clock`. */
  readonly at: number;
  readonly clock: Clock;
}

// One for the process: `runWithIncomingDeadline` from `@proxyless/resilience` and the copy
// `proxyless` bundles must see the same context.
const storage = processWide('proxyless.incomingDeadline.1', () => new AsyncLocalStorage<IncomingDeadline>());

function headerValue(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  name: string,
): string | undefined {
  let v = headers[name];
  if (v === undefined) {
    for (const k of Object.keys(headers)) {
      if (k.toLowerCase() === name) {
        v = headers[k];
        break;
      }
    }
  }
  if (Array.isArray(v)) return v[0];
  return v;
}

/**
 * The absolute deadline (on `clock`) an incoming request carries in `x-mesh-deadline-ms`, or
 * `undefined` when the header is absent or not a non-negative number (a bad header is ignored,
 * never trusted).
 */
export function deadlineFromHeaders(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  clock: Clock = systemClock,
): number | undefined {
  const raw = headerValue(headers, DEADLINE_HEADER);
  if (raw === undefined) return undefined;
  const s = raw.trim();
  if (!/^\d+(\.\d+)?$/.test(s)) return undefined;
  return clock.now() + Number(s);
}

/**
 * Run `fn` (a server handler) under the deadline of the incoming request's headers: every mesh
 * call made inside it — across `await`s — is limited to the time the caller has left, and fails
 * with `MESH_TIMEOUT` (`details.limit: 'propagated'`) when that runs out.
 *
 * @example
 * http.createServer((req, res) => runWithIncomingDeadline(req.headers, () => handle(req, res)));
 */
export function runWithIncomingDeadline<T>(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  fn: () => T,
  clock: Clock = systemClock,
): T {
  const at = deadlineFromHeaders(headers, clock);
  if (at === undefined) return fn();
  const current = storage.getStore();
  if (current !== undefined && current.at - current.clock.now() <= at - clock.now()) return fn();
  return storage.run({ at, clock }, fn);
}

/** Milliseconds left of the incoming request's deadline in this async context, or `undefined`. */
export function remainingIncomingDeadline(): number | undefined {
  const d = storage.getStore();
  return d === undefined ? undefined : d.at - d.clock.now();
}

/**
 * Runs one dispatch under a time limit: the caller gets this stage's controller at once, the timer
 * aborts the exchange in flight with the limit's `MESH_TIMEOUT` and reports it at once (whatever the
 * stage below does with the abort), and every timer is released when the exchange ends. With
 * `coverBody` the limit holds until the body ends; otherwise it stops at the response head.
 */
class TimedExchange implements MeshHandler, QueuedHold {
  readonly relay: RelayController;
  readonly #handler: MeshHandler;
  readonly #coverBody: boolean;
  /** The limit's error; `sent` is false when the attempt below had not started (still queued). */
  readonly #error: (sent: boolean) => MeshError;
  readonly #ctx: CallContext;
  #timer: Timer | undefined;
  #done = false;
  #inner: Dispatcher.DispatchController | undefined;

  constructor(
    handler: MeshHandler,
    ctx: CallContext,
    coverBody: boolean,
    error: (sent: boolean) => MeshError,
  ) {
    this.#handler = handler;
    this.#ctx = ctx;
    this.#coverBody = coverBody;
    this.#error = error;
    this.relay = new RelayController((reason) => {
      if (this.#inner !== undefined) {
        this.#inner.abort(reason);
        return;
      }
      // Not started (queued in the endpoint's pool): a holder below releases and reports the
      // reason back up through this exchange; with none, the exchange ends here.
      if (!cancelQueued(this.#ctx, reason, this)) this.#fail(reason);
    });
  }

  run(dispatch: DispatchFn, opts: MeshDispatchOptions, remaining: number): boolean {
    this.#handler.onRequestStart?.(this.relay, {});
    if (this.relay.aborted) return true;
    this.#timer = this.#ctx.clock.setTimer(remaining, () => this.#expire(), KEEP_ALIVE);
    try {
      dispatch(opts, this);
    } catch (error) {
      this.onResponseError(undefined as never, error as Error);
    }
    return true;
  }

  #expire(): void {
    this.#timer = undefined;
    if (this.#done) return;
    const inner = this.#inner;
    const err = this.#error(inner !== undefined);
    emitCallEvent(this.#ctx, { type: 'timeout', reason: String(err.details.limit), code: err.code });
    if (inner === undefined && cancelQueued(this.#ctx, err, this)) return;
    this.#fail(err);
    inner?.abort(err);
  }

  /** The stage above gives up on the attempt while it is queued in the pool: end it here. */
  cancelQueued(reason: Error): boolean {
    if (this.#done || this.#inner !== undefined) return false;
    this.#fail(reason);
    return true;
  }

  #fail(error: Error): void {
    if (this.#done) return;
    this.#release();
    this.#handler.onResponseError?.(this.relay, error);
  }

  #release(): void {
    this.#done = true;
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    if (this.#done) {
      controller.abort(this.relay.error ?? new MeshError('MESH_ABORTED', 'the exchange is over'));
      return;
    }
    this.#inner = controller;
    this.relay.setInner(controller);
    if (this.relay.aborted) controller.abort(this.relay.error!);
  }

  onRequestUpgrade(
    _c: Dispatcher.DispatchController,
    status: number,
    headers: IncomingHttpHeaders,
    socket: never,
  ): void {
    if (this.#done) return;
    this.#release();
    this.#handler.onRequestUpgrade?.(this.relay, status, headers, socket);
  }

  onResponseStarted(): void {
    if (!this.#done) (this.#handler as { onResponseStarted?: () => void }).onResponseStarted?.();
  }

  onResponseStart(
    _c: Dispatcher.DispatchController,
    status: number,
    headers: IncomingHttpHeaders,
    text?: string,
  ): void {
    if (this.#done) return;
    if (status >= 200 && !this.#coverBody) {
      this.#timer?.cancel();
      this.#timer = undefined;
    }
    this.#handler.onResponseStart?.(this.relay, status, headers, text);
  }

  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.#done) this.#handler.onResponseData?.(this.relay, chunk);
  }

  onResponseEnd(_c: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    if (this.#done) return;
    this.#release();
    this.#handler.onResponseEnd?.(this.relay, trailers);
  }

  onResponseError(_c: Dispatcher.DispatchController, error: Error): void {
    if (this.#done) return;
    this.#fail(this.relay.aborted ? (this.relay.error ?? error) : error);
  }
}

/** What a timed-out call reports. */
interface DeadlineInfo {
  readonly service: string;
  readonly limit: TimeoutLimit;
  readonly limitMs: number;
}

function deadlineError(info: DeadlineInfo): MeshError {
  return new MeshError(
    'MESH_TIMEOUT',
    info.limit === 'propagated'
      ? `call to "${info.service}" ran out of the caller's propagated deadline (${info.limitMs}ms)`
      : `call to "${info.service}" timed out after ${info.limitMs}ms (overall timeout)`,
    { details: { service: info.service, limit: info.limit, timeoutMs: info.limitMs } },
  );
}

/**
 * The overall deadline: the earliest of `timeoutMs` from now, the context's deadline and the
 * propagated incoming deadline. Sets `ctx.deadline` for the stages inside and aborts the exchange
 * with `MESH_TIMEOUT` (`details.limit` `overall` or `propagated`) when it passes. Like Envoy's route
 * timeout and a gRPC deadline, it covers the whole exchange, body included. `timeoutMs: 0` means
 * no overall timeout (the default: a default must never cut a streaming response).
 */
export function createDeadlineFilter(options: { timeoutMs: number; service?: string }): Filter & {
  close(): void;
} {
  checkTimeoutMs('createDeadlineFilter', 'timeoutMs', options.timeoutMs);
  const timeoutMs = options.timeoutMs;
  const interceptor: Filter = (dispatch) => (opts, handler) => {
    const ctx = callOf(opts);
    if (ctx === undefined) return dispatch(opts, handler);
    const incoming = remainingIncomingDeadline();
    if (timeoutMs <= 0 && incoming === undefined && ctx.deadline === undefined)
      return dispatch(opts, handler);
    const now = ctx.clock.now();
    let at = ctx.deadline ?? Number.POSITIVE_INFINITY;
    let limit: TimeoutLimit = 'overall';
    if (timeoutMs > 0 && now + timeoutMs < at) at = now + timeoutMs;
    if (incoming !== undefined && now + incoming < at) {
      at = now + Math.max(0, incoming);
      limit = 'propagated';
    }
    if (at === Number.POSITIVE_INFINITY) return dispatch(opts, handler);
    const info: DeadlineInfo = {
      service: options.service ?? ctx.service,
      limit,
      limitMs: Math.max(0, Math.round(at - now)),
    };
    if (at <= now) {
      // Out of time before anything is sent (an expired propagated deadline): fail at once.
      failDispatch(handler, deadlineError(info));
      return true;
    }
    const inner: CallContext = { ...ctx, deadline: at };
    const exchange = new TimedExchange(handler, inner, true, () => deadlineError(info));
    return exchange.run(dispatch, withCall(opts, inner), Math.max(0, at - now));
  };
  return Object.assign(interceptor, { close(): void {} });
}

/**
 * The per-try timeout and deadline propagation, innermost: each attempt is aborted with
 * `MESH_TIMEOUT` (`details.limit: 'perTry'`) when its response head has not arrived after
 * `perTryTimeoutMs` (retries happen only before a head is accepted; after it, the overall timeout
 * governs), and the time the attempt has left is sent downstream in `x-mesh-deadline-ms`.
 */
export function createPerTryTimeoutFilter(options: {
  perTryTimeoutMs: number;
  service?: string;
  propagate?: boolean;
}): Filter {
  checkTimeoutMs('createPerTryTimeoutFilter', 'perTryTimeoutMs', options.perTryTimeoutMs);
  const perTry = options.perTryTimeoutMs;
  const propagate = options.propagate ?? true;
  return (dispatch) => (opts, handler) => {
    const ctx = callOf(opts);
    if (ctx === undefined || (perTry <= 0 && ctx.deadline === undefined)) return dispatch(opts, handler);
    const now = ctx.clock.now();
    const overall = ctx.deadline ?? Number.POSITIVE_INFINITY;
    const tryAt = perTry > 0 ? now + perTry : Number.POSITIVE_INFINITY;
    const at = Math.min(overall, tryAt);
    const sent: MeshDispatchOptions = propagate
      ? {
          ...opts,
          headers: withHeader(opts.headers, DEADLINE_HEADER, String(Math.max(0, Math.floor(at - now)))),
        }
      : opts;
    if (tryAt >= overall) return dispatch(sent, handler);
    const service = options.service ?? ctx.service;
    const exchange = new TimedExchange(
      handler,
      ctx,
      false,
      (started) =>
        new MeshError(
          'MESH_TIMEOUT',
          started
            ? `attempt ${ctx.attempt} to "${service}" timed out after ${perTry}ms (per-try timeout)`
            : `attempt ${ctx.attempt} to "${service}" timed out after ${perTry}ms (per-try timeout) before it was sent: it waited in the endpoint's connection pool`,
          {
            details: {
              service,
              limit: 'perTry',
              timeoutMs: perTry,
              // Before the response head (a per-try timeout never cuts a response that started).
              phase: 'request',
              // An attempt still queued in the endpoint's pool never left the process: nothing was
              // sent, and the endpoint is not charged with it (the breaker skips `sent: false`).
              bodySent: started && opts.body != null,
              ...(started ? {} : { sent: false }),
              ...(ctx.endpoint ? { endpoint: ctx.endpoint.id } : {}),
            },
          },
        ),
    );
    holdQueued(ctx, exchange);
    return exchange.run(dispatch, sent, perTry);
  };
}
