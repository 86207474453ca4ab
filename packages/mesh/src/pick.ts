import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import { pickWhenReady, shouldWaitForReady } from '@proxyless/balancer';
import {
  type AttemptOutcome,
  type Balancer,
  type CallContext,
  type Clock,
  type DispatchFn,
  ENDPOINT_ATTRIBUTE,
  type Endpoint,
  ForwardingHandler,
  failDispatch,
  isRequestBodyError,
  KEEP_ALIVE,
  kCall,
  type MeshDispatchOptions,
  MeshError,
  type MeshHandler,
  markRequestBodyError,
  RelayController,
  RelayedHandler,
  releaseRefusedConnections,
} from '@proxyless/core';
import { cancelQueued, holdQueued, type QueuedHold } from '@proxyless/resilience';
import type { Dispatcher } from 'undici';
import { errorCode, isConnectFailure, isLocalCode, isTransport } from './transport-errors.js';

/** Where the pick stage gets a connection pool for an endpoint. */
export interface PoolSource {
  pool(endpoint: Endpoint): Dispatcher;
}

/**
 * A subset with nothing to pick is named as Envoy names its cluster: `service "web" has no
 * endpoints` sent an operator looking for a missing service when `web` has endpoints and the
 * subset's filter matched none of them.
 */
function ofTarget(error: Error, target: string): Error {
  if (!MeshError.is(error, ['MESH_NO_ENDPOINTS', 'MESH_NO_HEALTHY_ENDPOINTS'])) return error;
  return new MeshError(error.code, `${error.message} in routing target ${target} (a subset)`, {
    details: { ...error.details, target },
  });
}

/**
 * The innermost stage: pick an endpoint for this attempt (recorded on the attempt's context), send
 * through its pool, and report the attempt's outcome to the balancer when the exchange ends — the
 * body's end or its error, so in-flight counts cover streaming responses (grpc-js's
 * `onCallEnded`); the latency sample is the time to the response head, as Linkerd's and Finagle's
 * peak EWMA take it (how fast the endpoint answers, not how long the caller's body runs). Transport failures before the response head become `MESH_CONNECT_FAILED` /
 * `MESH_UPSTREAM_RESET` / `MESH_TIMEOUT` with undici's error as `cause` (so retries and the
 * caller can tell them apart); after the head, the caller gets undici's own error. Aborts, local
 * validation errors, any error without a transport code and the caller's failing body go up
 * unchanged and are not charged to the endpoint.
 */
export function createPickStage(
  service: string,
  balancer: () => Balancer,
  pools: PoolSource,
  clock: Clock,
  /** The routing target's ID when the destination is a subset of `service`. */
  target?: string,
): DispatchFn {
  return (opts, handler) => {
    const ctx = (opts as MeshDispatchOptions)[kCall];
    if (ctx === undefined) {
      failDispatch(handler, new MeshError('MESH_INTERNAL', 'mesh dispatch without a call context'));
      return true;
    }
    const lb = balancer();
    let endpoint: Endpoint;
    try {
      endpoint = lb.pick(ctx);
    } catch (error) {
      if (shouldWaitForReady(lb, ctx, error)) return waitThenSend(lb, ctx, opts, handler);
      failDispatch(handler, target === undefined ? (error as Error) : ofTarget(error as Error, target));
      return true;
    }
    return send(lb, endpoint, ctx, opts, handler);
  };

  /**
   * `waitForReady` (gRPC): no endpoint is usable, so wait for one within the call's deadline. The
   * caller gets a controller at once; an abort or the deadline ends the wait.
   */
  function waitThenSend(
    lb: Balancer,
    ctx: CallContext,
    opts: Dispatcher.DispatchOptions,
    handler: MeshHandler,
  ): boolean {
    const ac = new AbortController();
    let inner: Dispatcher.DispatchController | undefined;
    let sent = false;
    const relay = new RelayController((reason) => {
      if (inner !== undefined) inner.abort(reason);
      // Sent but still queued in the endpoint's pool: the pick handler takes it back.
      else if (sent) cancelQueued(ctx, reason);
      else ac.abort(reason);
    });
    handler.onRequestStart?.(relay, {});
    if (relay.aborted) return true;
    const deadline = ctx.deadline;
    const timer =
      deadline === undefined
        ? undefined
        : clock.setTimer(
            Math.max(0, deadline - clock.now()),
            () =>
              ac.abort(
                new MeshError(
                  'MESH_TIMEOUT',
                  `no endpoint of "${service}" became ready before the deadline`,
                  {
                    details: { service, limit: 'overall' },
                  },
                ),
              ),
            KEEP_ALIVE,
          );
    pickWhenReady(lb, { ...ctx, signal: ac.signal }).then(
      (endpoint) => {
        timer?.cancel();
        sent = true;
        send(
          lb,
          endpoint,
          ctx,
          opts,
          new RelayedHandler(handler, relay, (c) => {
            inner = c;
          }),
        );
      },
      (error: unknown) => {
        timer?.cancel();
        handler.onResponseError?.(relay, error instanceof Error ? error : new Error(String(error)));
      },
    );
    return true;
  }

  function send(
    lb: Balancer,
    endpoint: Endpoint,
    ctx: CallContext,
    opts: Dispatcher.DispatchOptions,
    handler: MeshHandler,
  ): boolean {
    let pool: Dispatcher;
    try {
      pool = pools.pool(endpoint);
    } catch (error) {
      failDispatch(handler, error as Error);
      return true;
    }
    ctx.endpoint = endpoint;
    ctx.attributes.set(ENDPOINT_ATTRIBUTE, endpoint);
    const token = lb.onAttemptStart(endpoint);
    const body = opts.body as { on?: unknown; once?: (e: string, f: (err: unknown) => void) => void } | null;
    if (body != null && typeof body.once === 'function' && typeof body.on === 'function') {
      // A failing upload stream is the caller's own error, not the endpoint's.
      body.once('error', markRequestBodyError);
    }
    const h = new PickHandler(handler, lb, endpoint, ctx, service, clock, token);
    // The innermost holder of this attempt: a stage above giving up on it while undici still has
    // it queued (behind busy connections) takes it back through `cancelQueued`.
    holdQueued(ctx, h);
    h.dispatching = true;
    let accepted: boolean;
    try {
      accepted = pool.dispatch(opts, h);
    } catch (error) {
      h.onResponseError(undefined as never, error as Error);
      return true;
    } finally {
      h.dispatching = false;
    }
    if (h.refused) {
      // Refused by undici's own checks: the pool took the refusal for backpressure on a
      // connection that is idle, which would then never drain (see releaseRefusedConnections).
      releaseRefusedConnections(pool);
      return true;
    }
    return accepted;
  }
}

class PickHandler extends ForwardingHandler implements QueuedHold {
  #controller: Dispatcher.DispatchController | undefined;
  /** Set when a stage above gave up on the attempt while undici still had it queued. */
  #cancelled: Error | undefined;
  #status: number | undefined;
  #latency = 0;
  #ended = false;
  readonly #started: number;
  /** True while the pool is validating the request: an error now was raised locally by undici. */
  dispatching = false;
  /** The pool refused the request as it was dispatched (undici's own checks). */
  refused = false;

  constructor(
    handler: MeshHandler,
    readonly lb: Balancer,
    readonly endpoint: Endpoint,
    readonly ctx: CallContext,
    readonly service: string,
    readonly clock: Clock,
    /** What the balancer gave at the attempt's start, for its end. */
    readonly token: unknown,
  ) {
    super(handler);
    this.#started = clock.now();
  }

  #end(outcome: AttemptOutcome): void {
    if (this.#ended) return;
    this.#ended = true;
    this.lb.onAttemptEnd(this.endpoint, outcome, this.token);
  }

  /**
   * Give the attempt up before undici started it: its in-flight count ends now (not charged to
   * the endpoint), the reason goes up at once, and the request is aborted when undici dequeues it.
   */
  cancelQueued(reason: Error): boolean {
    if (this.#controller !== undefined || this.#ended || this.#cancelled !== undefined) return false;
    this.#cancelled = reason;
    this.#end({ failure: 'cancelled', latencyMs: this.clock.now() - this.#started });
    super.onResponseError(undefined as never, reason);
    return true;
  }

  override onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    if (this.#cancelled !== undefined) {
      controller.abort(this.#cancelled);
      return;
    }
    this.#controller = controller;
    super.onRequestStart(controller, context);
  }

  override onRequestUpgrade(
    c: Dispatcher.DispatchController,
    status: number,
    headers: IncomingHttpHeaders,
    socket: Duplex,
  ): void {
    if (this.#cancelled !== undefined) {
      socket.destroy();
      return;
    }
    this.#end({ status, latencyMs: this.clock.now() - this.#started });
    super.onRequestUpgrade(c, status, headers, socket);
  }

  override onResponseStart(
    c: Dispatcher.DispatchController,
    status: number,
    headers: IncomingHttpHeaders,
    text?: string,
  ): void {
    if (this.#cancelled !== undefined) return;
    if (status >= 200 && this.#status === undefined) {
      this.#status = status;
      this.#latency = this.clock.now() - this.#started;
    }
    // The endpoint that answered: noted again at the head, since attempts of one call share the
    // attributes and a hedge picked after this attempt was sent wrote its own endpoint there.
    this.ctx.attributes.set(ENDPOINT_ATTRIBUTE, this.endpoint);
    super.onResponseStart(c, status, headers, text);
  }

  override onResponseEnd(c: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    if (this.#cancelled !== undefined) return;
    this.#end({ status: this.#status ?? 200, latencyMs: this.#latency });
    super.onResponseEnd(c, trailers);
  }

  override onResponseError(c: Dispatcher.DispatchController, error: Error): void {
    if (this.#cancelled !== undefined) return;
    const latencyMs = this.clock.now() - this.#started;
    const aborted = this.#controller?.aborted === true;
    const code = errorCode(error);
    if (
      aborted &&
      this.#status === undefined &&
      MeshError.is(error, 'MESH_TIMEOUT') &&
      (error.details.limit === 'perTry' || error.details.limit === 'overall')
    ) {
      // The per-try or the overall timeout gave up on this endpoint while it owed the response
      // head: a slow endpoint's failure for outlier detection (Envoy's router charges a route
      // timeout to every upstream request still awaiting headers, LocalOriginTimeout).
      this.#end({ failure: 'timeout', latencyMs });
      super.onResponseError(c, error);
      return;
    }
    if (this.dispatching) this.refused = true;
    if (
      aborted ||
      this.dispatching ||
      isRequestBodyError(error) ||
      isLocalCode(code) ||
      MeshError.is(error) ||
      !isTransport(error, code)
    ) {
      // Not the endpoint's doing: the caller or a stage aborted, or the request itself was bad.
      // A response that had started counts by its status, as Envoy's outlier detection counts the
      // code when the head arrives: a 503 whose body the caller, the retry stage or a hedge then
      // dropped is still a 5xx of this endpoint (and its head latency feeds the EWMA).
      this.#end(
        this.#status !== undefined
          ? { status: this.#status, latencyMs: aborted ? this.#latency : latencyMs }
          : { failure: 'cancelled', latencyMs },
      );
      super.onResponseError(c, error);
      return;
    }
    const mapped = this.#map(error, code);
    if (this.#status !== undefined) {
      // The response had started: nothing can be retried, so the caller gets undici's own error
      // (as undici would give it); the endpoint is still charged with the broken exchange.
      this.#end({
        status: this.#status,
        latencyMs,
        failure: mapped.code === 'MESH_TIMEOUT' ? 'timeout' : 'reset',
      });
      super.onResponseError(c, error);
      return;
    }
    if (mapped.code === 'MESH_CONNECT_FAILED') {
      // undici's error goes with the outcome: the balancer's `connectivity` event names its code.
      const outcome: AttemptOutcome = { latencyMs, failure: 'connect', error };
      this.#end(outcome);
    } else {
      this.#end({ latencyMs, failure: mapped.code === 'MESH_TIMEOUT' ? 'timeout' : 'reset' });
    }
    super.onResponseError(c, mapped);
  }

  #map(error: Error, code: string): MeshError {
    const id = this.endpoint.id;
    const service = this.service;
    const bodySent = this.ctx.request.body != null;
    if (isConnectFailure(error, code)) {
      return new MeshError(
        'MESH_CONNECT_FAILED',
        `connect to ${id} for "${service}" failed: ${error.message}`,
        {
          cause: error,
          details: { service, endpoint: id, phase: 'connect', bodySent: false, errorCode: code },
        },
      );
    }
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
      return new MeshError('MESH_TIMEOUT', `${id} for "${service}": ${error.message}`, {
        cause: error,
        details: {
          service,
          endpoint: id,
          limit: code === 'UND_ERR_HEADERS_TIMEOUT' ? 'headers' : 'body',
          // As a reset: `response` once the head arrived, `request` while it was owed.
          phase: this.#status === undefined ? 'request' : 'response',
          bodySent,
          errorCode: code,
        },
      });
    }
    return new MeshError(
      'MESH_UPSTREAM_RESET',
      `request to ${id} for "${service}" failed: ${error.message}`,
      {
        cause: error,
        // How much of a body went out before the connection broke is unknown: assume some did.
        details: {
          service,
          endpoint: id,
          phase: this.#status === undefined ? 'request' : 'response',
          bodySent,
          errorCode: code,
        },
      },
    );
  }
}
