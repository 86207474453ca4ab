import { AsyncLocalStorage } from 'node:async_hooks';
import { getEventListeners, setMaxListeners } from 'node:events';
import {
  abortError,
  type CallContext,
  type CallResult,
  type Clock,
  discardResult,
  emitCallEvent,
  type Filter,
  MeshError,
  type MeshRequest,
  type Next,
  type RequestHeaders,
  systemClock,
  type Timer,
} from '@proxyless/core';

/** Header carrying the remaining deadline of a call in milliseconds (like `x-envoy-expected-rq-timeout-ms`). */
export const DEADLINE_HEADER = 'x-mesh-deadline-ms';

/** Which limit a `MESH_TIMEOUT` raised by this package came from (`details.limit`). */
export type TimeoutLimit = 'overall' | 'perTry' | 'propagated';

interface IncomingDeadline {
  /** Absolute time on `clock`. */
  readonly at: number;
  readonly clock: Clock;
}

const storage = new AsyncLocalStorage<IncomingDeadline>();

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
 * Run `next` with a signal that aborts at absolute time `at` (on `ctx.clock`) with `timeoutError()`,
 * or when the parent signal aborts. Settles at the limit even if `next` ignores its signal; a
 * result that arrives too late is discarded. With `coverBody`, the limit (and the link to the
 * parent signal) also holds while the response body streams, until it closes.
 */
export function callWithLimit(
  ctx: CallContext,
  next: Next,
  at: number,
  timeoutError: () => MeshError,
  derive: (signal: AbortSignal) => CallContext,
  coverBody = false,
): Promise<CallResult> {
  const parent = ctx.signal;
  if (parent?.aborted) return Promise.reject(abortError(parent));
  const remaining = at - ctx.clock.now();
  if (remaining <= 0) return Promise.reject(timeoutError());
  const ac = new AbortController();
  return new Promise<CallResult>((resolve, reject) => {
    /** The promise has settled. */
    let settled = false;
    /** Nothing more to watch: timer and parent link released. */
    let done = false;
    const release = (): void => {
      if (done) return;
      done = true;
      timer.cancel();
      if (onParentAbort) parent!.removeEventListener('abort', onParentAbort);
    };
    // Only the parent's signal is listened to: listeners on the child would cost more than the
    // whole filter, and every way the child aborts goes through this function.
    const onParentAbort =
      parent === undefined
        ? undefined
        : (): void => {
            release();
            ac.abort(parent.reason);
            if (settled) return;
            settled = true;
            reject(abortError(parent));
          };
    const timer = ctx.clock.setTimer(remaining, () => {
      if (done) return;
      release();
      const err = timeoutError();
      ac.abort(err);
      if (settled) return; // the response body was still streaming: it is cut
      settled = true;
      emitCallEvent(ctx, { type: 'timeout', reason: String(err.details.limit), code: err.code });
      reject(err);
    });
    if (onParentAbort) parent!.addEventListener('abort', onParentAbort, { once: true });
    let p: Promise<CallResult>;
    try {
      p = next(derive(ac.signal));
    } catch (error) {
      p = Promise.reject(error);
    }
    p.then(
      (result) => {
        if (settled) {
          discardResult(result);
          return;
        }
        settled = true;
        if (coverBody && !result.body.destroyed && !result.body.readableEnded)
          result.body.once('close', release);
        else release();
        resolve(result);
      },
      (error: unknown) => {
        release();
        if (settled) return;
        settled = true;
        reject(error);
      },
    );
  });
}

/** A group of calls whose deadlines fall in the same slot share one abort signal. */
interface DeadlineSlot {
  readonly at: number;
  readonly controller: AbortController;
  /** Calls still waiting in this slot: each rejects with its own precise error when it passes. */
  readonly waiters: Set<SlotWaiter>;
  readonly timer: Timer;
  readonly createdAt: number;
}

/** True while something (an HTTP client, a streaming body) still listens to the slot's signal. */
function listened(slot: DeadlineSlot): boolean {
  return getEventListeners(slot.controller.signal, 'abort').length > 0;
}

/** How long an idle slot is kept for reuse before its timer and signal are released. */
const IDLE_SLOT_MS = 1000;

/**
 * Deadline slots on one clock. Creating an `AbortSignal` costs more than the rest of the policy
 * stack together (several µs on Node 20), so calls without a caller signal whose deadlines fall
 * in the same slot (1 ms, or 10 ms for deadlines ≥ 1 s away) share one signal: it aborts at the
 * end of the slot, at most one slot after the exact deadline, while each call's promise still
 * rejects at its slot with its own `MESH_TIMEOUT`. A slot lives until its time comes, so
 * back-to-back calls reuse it.
 */
export class DeadlineSlots {
  readonly #clock: Clock;
  readonly #slots = new Map<number, DeadlineSlot>();
  #sweep: Timer | undefined;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** The slot for absolute time `at`. */
  acquire(at: number, remaining: number): DeadlineSlot {
    const grid = remaining >= 1000 ? 10 : 1;
    const key = Math.ceil(at / grid) * grid;
    let slot = this.#slots.get(key);
    if (slot === undefined) {
      const controller = new AbortController();
      // Many calls (and their HTTP clients) listen to one slot signal: no leak warning for that.
      setMaxListeners(0, controller.signal);
      const waiters = new Set<SlotWaiter>();
      const now = this.#clock.now();
      const timer = this.#clock.setTimer(key - now, () => this.#fire(key));
      slot = { at: key, controller, waiters, timer, createdAt: now };
      this.#slots.set(key, slot);
      this.#sweep ??= this.#clock.setTimer(IDLE_SLOT_MS, () => this.#sweepIdle());
    }
    return slot;
  }

  /**
   * Release slots nobody uses any more (every call done, no body streaming) once they have been
   * idle for a while: with long deadlines (the 15 s default) a busy destination would otherwise
   * keep a timer and a signal alive for every 10 ms of the last 15 s.
   */
  #sweepIdle(): void {
    this.#sweep = undefined;
    const now = this.#clock.now();
    for (const [key, slot] of this.#slots) {
      if (slot.waiters.size > 0 || now - slot.createdAt < IDLE_SLOT_MS || listened(slot)) continue;
      slot.timer.cancel();
      this.#slots.delete(key);
    }
    if (this.#slots.size > 0) this.#sweep = this.#clock.setTimer(IDLE_SLOT_MS, () => this.#sweepIdle());
  }

  #fire(key: number): void {
    const slot = this.#slots.get(key);
    if (slot === undefined) return;
    this.#slots.delete(key);
    if (this.#slots.size === 0) {
      this.#sweep?.cancel();
      this.#sweep = undefined;
    }
    for (const w of slot.waiters) w.timeout();
    const abort = slot.waiters.size > 0 || listened(slot);
    slot.waiters.clear();
    // Nobody left to tell: skip building an error (and its stack trace).
    if (abort)
      slot.controller.abort(
        new MeshError('MESH_TIMEOUT', 'the call deadline passed', { details: { limit: 'overall' } }),
      );
  }

  /** Slots alive (for tests). */
  get size(): number {
    return this.#slots.size;
  }

  /**
   * Release the timers of slots no call is waiting in. Slots with calls in flight keep their
   * timer until their time comes, so those calls keep their deadline.
   */
  close(): void {
    for (const [key, slot] of [...this.#slots]) {
      if (slot.waiters.size > 0) continue;
      slot.timer.cancel();
      this.#slots.delete(key);
    }
    if (this.#slots.size === 0) {
      this.#sweep?.cancel();
      this.#sweep = undefined;
    }
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

/** One call waiting in a slot. A class rather than closures: this runs on every request. */
class SlotWaiter {
  settled = false;
  constructor(
    readonly ctx: CallContext,
    readonly info: DeadlineInfo,
    readonly slot: DeadlineSlot,
    readonly resolve: (r: CallResult) => void,
    readonly reject: (e: unknown) => void,
  ) {}

  timeout(): void {
    if (this.settled) return;
    this.settled = true;
    const err = deadlineError(this.info);
    emitCallEvent(this.ctx, { type: 'timeout', reason: this.info.limit, code: err.code });
    this.reject(err);
  }

  ok(result: CallResult): void {
    if (this.settled) {
      discardResult(result);
      return;
    }
    this.settled = true;
    this.slot.waiters.delete(this);
    this.resolve(result);
  }

  fail(error: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.slot.waiters.delete(this);
    this.reject(error);
  }
}

function callInSlot(
  ctx: CallContext,
  next: Next,
  at: number,
  slots: DeadlineSlots,
  info: DeadlineInfo,
): Promise<CallResult> {
  const remaining = at - ctx.clock.now();
  if (remaining <= 0) return Promise.reject(deadlineError(info));
  const slot = slots.acquire(at, remaining);
  return new Promise<CallResult>((resolve, reject) => {
    const waiter = new SlotWaiter(ctx, info, slot, resolve, reject);
    slot.waiters.add(waiter);
    let p: Promise<CallResult>;
    try {
      p = next({ ...ctx, deadline: at, signal: slot.controller.signal });
    } catch (error) {
      p = Promise.reject(error);
    }
    p.then(
      (result) => waiter.ok(result),
      (error: unknown) => waiter.fail(error),
    );
  });
}

/**
 * The overall deadline: the earliest of `timeoutMs` from now, the context's deadline and the
 * propagated incoming deadline. Sets `ctx.deadline` for inner filters and aborts the call with
 * `MESH_TIMEOUT` (`details.limit` `overall` or `propagated`) when it passes. Like Envoy's route
 * timeout, the deadline covers the whole response: a body still streaming when it passes is
 * aborted. `close()` releases the filter's idle timers.
 */
export function createDeadlineFilter(options: { timeoutMs: number; service?: string }): Filter & {
  close(): void;
} {
  const timeoutMs = options.timeoutMs;
  const byClock = new Map<Clock, DeadlineSlots>();
  const filter: Filter = (ctx, next) => {
    const now = ctx.clock.now();
    let at = ctx.deadline ?? Number.POSITIVE_INFINITY;
    let limit: TimeoutLimit = 'overall';
    if (timeoutMs > 0 && now + timeoutMs < at) at = now + timeoutMs;
    const incoming = remainingIncomingDeadline();
    if (incoming !== undefined && now + incoming < at) {
      at = now + Math.max(0, incoming);
      limit = 'propagated';
    }
    if (at === Number.POSITIVE_INFINITY) return next(ctx);
    const info: DeadlineInfo = {
      service: options.service ?? ctx.service,
      limit,
      limitMs: Math.max(0, Math.round(at - now)),
    };
    if (ctx.signal === undefined) {
      let slots = byClock.get(ctx.clock);
      if (slots === undefined) {
        if (byClock.size >= 8) {
          // Calls on many clocks (tests): keep only the latest few.
          const [oldClock, oldSlots] = byClock.entries().next().value as [Clock, DeadlineSlots];
          oldSlots.close();
          byClock.delete(oldClock);
        }
        slots = new DeadlineSlots(ctx.clock);
        byClock.set(ctx.clock, slots);
      }
      return callInSlot(ctx, next, at, slots, info);
    }
    return callWithLimit(
      ctx,
      next,
      at,
      () => deadlineError(info),
      (signal) => ({ ...ctx, deadline: at, signal }),
      true,
    );
  };
  return Object.assign(filter, {
    close(): void {
      for (const s of byClock.values()) s.close();
      byClock.clear();
    },
  });
}

/** The context with `x-mesh-deadline-ms` set to the time left until `at`. */
function withDeadlineHeader(c: CallContext, at: number): CallContext {
  // A plain copy loop: spreading the header record with a computed key costs several µs per call.
  const src = c.request.headers;
  const headers: RequestHeaders = {};
  for (const k in src) headers[k] = src[k] as string | string[];
  headers[DEADLINE_HEADER] = String(Math.max(0, Math.floor(at - c.clock.now())));
  const r = c.request;
  const request: MeshRequest = {
    method: r.method,
    path: r.path,
    origin: r.origin,
    headers,
    body: r.body,
    idempotent: r.idempotent,
    bodyReplayable: r.bodyReplayable,
    replayable: r.replayable,
  };
  return { ...c, request };
}

/**
 * The per-try timeout and deadline propagation, innermost: each attempt gets its own signal that
 * aborts with `MESH_TIMEOUT` (`details.limit: 'perTry'`) after `perTryTimeoutMs`, and the time the
 * attempt has left is sent downstream in `x-mesh-deadline-ms`.
 */
export function createPerTryTimeoutFilter(options: {
  perTryTimeoutMs: number;
  service?: string;
  propagate?: boolean;
}): Filter {
  const perTry = options.perTryTimeoutMs;
  const propagate = options.propagate ?? true;
  return (ctx, next) => {
    const now = ctx.clock.now();
    const overall = ctx.deadline ?? Number.POSITIVE_INFINITY;
    const tryAt = perTry > 0 ? now + perTry : Number.POSITIVE_INFINITY;
    const at = Math.min(overall, tryAt);
    if (at === Number.POSITIVE_INFINITY) return next(ctx);
    if (tryAt >= overall) return next(propagate ? withDeadlineHeader(ctx, at) : ctx);
    const service = options.service ?? ctx.service;
    const timeoutError = (): MeshError =>
      new MeshError(
        'MESH_TIMEOUT',
        `attempt ${ctx.attempt} to "${service}" timed out after ${perTry}ms (per-try timeout)`,
        {
          details: {
            service,
            limit: 'perTry',
            timeoutMs: perTry,
            phase: 'response',
            bodySent: ctx.request.body !== null,
          },
        },
      );
    return callWithLimit(ctx, next, at, timeoutError, (signal) =>
      propagate ? withDeadlineHeader({ ...ctx, signal }, at) : { ...ctx, signal },
    );
  };
}
