import type { IncomingHttpHeaders } from 'node:http';
import type { Span, TextMapSetter } from '@opentelemetry/api';
import {
  type CallContext,
  callOf,
  copyOptions,
  type DispatchFn,
  ForwardingHandler,
  type Interceptor,
  type MeshDispatchOptions,
  MeshError,
  type MeshHandler,
  withCall,
} from '@proxyless/core';
import type { Dispatcher } from 'undici';
import { CallRecorder, callAttributes, SPAN_STATUS_ERROR, type TelemetryDeps } from './call-recorder.js';
import { errorCode } from './events.js';
import { withHeaders } from './headers.js';
import { callErrorCode, errorTypeLabel } from './labels.js';
import type { AttemptOutcome } from './metrics.js';
import { otelApi } from './otel-api.js';

/**
 * The outermost stage: one logical call. It records `http_client_request_duration_seconds` and
 * writes the access-log line when the response BODY ends or fails (not at the head), makes the
 * INTERNAL span when the call has more than one attempt, and observes the call's events
 * (retries, hedges, timeouts, faults, circuit-open).
 *
 * Dispatches that carry no mesh call context (`kCall`) pass through untouched.
 */
export function createCallInterceptor(deps: TelemetryDeps): Interceptor {
  if (!deps.metrics && !deps.tracing && !deps.accessLog) return (dispatch) => dispatch;
  return (dispatch: DispatchFn): DispatchFn =>
    (opts, handler) => {
      const ctx = callOf(opts);
      if (ctx === undefined) return dispatch(opts, handler);
      // The OpenTelemetry API only once an SDK registered something (otel-api.ts).
      const recorder = new CallRecorder(ctx, deps, otelApi());
      if (ctx.observer === undefined) {
        // The context the mesh made for this call, which has no observer yet: the recorder becomes
        // its observer in place (it forwards to none), with no copy of the context or the options.
        (ctx as { observer: CallContext['observer'] }).observer = recorder;
        return dispatch(opts, new CallHandler(handler, recorder));
      }
      // The recorder is the call's observer: every attempt's context (derived with `{ ...ctx }`)
      // carries it, so the attempt stage finds it there. Listed field by field: one hidden class.
      const callCtx: CallContext = {
        service: ctx.service,
        request: ctx.request,
        attempt: ctx.attempt,
        deadline: ctx.deadline,
        signal: ctx.signal,
        clock: ctx.clock,
        random: ctx.random,
        excludeEndpoints: ctx.excludeEndpoints,
        attributes: ctx.attributes,
        observer: recorder,
        endpoint: ctx.endpoint,
      };
      return dispatch(withCall(opts, callCtx), new CallHandler(handler, recorder));
    };
}

class CallHandler extends ForwardingHandler {
  readonly #recorder: CallRecorder;
  #status: number | undefined;
  #done = false;

  constructor(handler: MeshHandler, recorder: CallRecorder) {
    super(handler);
    this.#recorder = recorder;
  }

  override onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    // The controller the caller aborts (its signal, or destroying the body): see `callerAborted`.
    this.#recorder.callerController = controller;
    super.onRequestStart(controller, context);
  }

  override onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    statusMessage?: string,
  ): void {
    // Only a final response counts (1xx are informational and come before it).
    if (statusCode >= 200) this.#status = statusCode;
    super.onResponseStart(controller, statusCode, headers, statusMessage);
  }

  override onRequestUpgrade(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    socket: import('node:stream').Duplex,
  ): void {
    this.#end(statusCode, undefined);
    super.onRequestUpgrade(controller, statusCode, headers, socket);
  }

  override onResponseEnd(controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    this.#end(this.#status, undefined);
    super.onResponseEnd(controller, trailers);
  }

  override onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    this.#end(this.#status, error);
    super.onResponseError(controller, error);
  }

  #end(status: number | undefined, error: Error | undefined): void {
    if (this.#done) return;
    this.#done = true;
    try {
      this.#recorder.finish(status, error);
    } catch {
      // Telemetry must never break a call: a failing exporter or a full disk loses a record, no more.
    }
  }
}

const setter: TextMapSetter<string[]> = {
  set(carrier, key, value) {
    carrier.push(key.toLowerCase(), value);
  },
};

/**
 * The stage just above the pick stage: one CLIENT span per physical attempt, with the semconv
 * attributes (`network.peer.*` from `ctx.endpoint`, which the pick stage sets before it sends),
 * `traceparent`/`tracestate` injected through the global propagator into this attempt's headers,
 * and `mesh_attempts_total` per endpoint and outcome.
 *
 * With no OpenTelemetry SDK registered there is no span and nothing is injected (the API is not
 * even loaded: everything it would do is a no-op), so the caller's headers are passed on as they
 * are. An SDK registered later is picked up at the next attempt.
 */
export function createAttemptInterceptor(deps: TelemetryDeps): Interceptor {
  const tracing = deps.tracing;
  // The access log counts the attempts and names the endpoint of the last from what this stage
  // records: it is on whenever any of the three is.
  if (!deps.metrics && !tracing && !deps.accessLog) return (dispatch) => dispatch;
  return (dispatch: DispatchFn): DispatchFn =>
    (opts, handler) => {
      const ctx = callOf(opts);
      if (ctx === undefined) return dispatch(opts, handler);
      const recorder = ctx.observer instanceof CallRecorder ? ctx.observer : undefined;
      const api = tracing !== undefined ? otelApi() : undefined;
      const callParent = recorder?.attemptParent(api);
      let span: Span | undefined;
      let out: MeshDispatchOptions = opts;
      if (api !== undefined) {
        const parent = callParent ?? api.context.active();
        const attributes = callAttributes(ctx);
        if (ctx.attempt > 1) attributes['http.request.resend_count'] = ctx.attempt - 1;
        span = tracing!
          .tracer(api)
          .startSpan(ctx.request.method, { kind: api.SpanKind.CLIENT, attributes }, parent);
        if (recorder) {
          if (recorder.attempts === 1) recorder.firstAttemptSpan = span;
          recorder.open.push(span);
          recorder.placeEvents(span);
        }
        // The no-op tracer answers the shared INVALID_SPAN_CONTEXT: skip the hex checks then.
        const sc = span.spanContext();
        if (sc !== api.INVALID_SPAN_CONTEXT && api.isSpanContextValid(sc)) {
          const pairs: string[] = [];
          api.propagation.inject(api.trace.setSpan(parent, span), pairs, setter);
          if (pairs.length > 0) {
            out = copyOptions(opts);
            out.headers = withHeaders(opts.headers, pairs);
          }
        }
      }
      if (recorder) recorder.attemptsInFlight++;
      return dispatch(out, new AttemptHandler(handler, ctx, deps, span, recorder));
    };
}

class AttemptHandler extends ForwardingHandler {
  readonly #ctx: CallContext;
  readonly #startedAt: number;
  readonly #deps: TelemetryDeps;
  readonly #span: Span | undefined;
  readonly #recorder: CallRecorder | undefined;
  #status: number | undefined;
  #done = false;
  /** undici started the exchange (`onRequestStart`): the connect succeeded. */
  #started = false;

  constructor(
    handler: MeshHandler,
    ctx: CallContext,
    deps: TelemetryDeps,
    span: Span | undefined,
    recorder: CallRecorder | undefined,
  ) {
    super(handler);
    this.#ctx = ctx;
    this.#startedAt = span?.isRecording() && deps.ejections ? ctx.clock.now() : 0;
    this.#deps = deps;
    this.#span = span;
    this.#recorder = recorder;
  }

  override onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    // The pick stage chose the endpoint before sending: the access log names it even when the
    // call fails (an overall timeout) before this attempt ends.
    this.#started = true;
    this.#noteEndpoint();
    super.onRequestStart(controller, context);
  }

  override onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    statusMessage?: string,
  ): void {
    if (statusCode >= 200) this.#status = statusCode;
    this.#noteEndpoint();
    super.onResponseStart(controller, statusCode, headers, statusMessage);
  }

  #noteEndpoint(): void {
    const ep = this.#ctx.endpoint;
    if (this.#recorder && ep !== undefined) this.#recorder.lastEndpoint = ep;
  }

  override onResponseEnd(controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    this.#end(undefined);
    super.onResponseEnd(controller, trailers);
  }

  override onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    this.#end(error);
    super.onResponseError(controller, error);
  }

  #end(error: Error | undefined): void {
    if (this.#done) return;
    this.#done = true;
    try {
      const ep = this.#ctx.endpoint;
      const status = this.#status;
      const failed = error !== undefined;
      const recorder = this.#recorder;
      if (ep === undefined && failed) {
        // It failed before an endpoint was chosen (no endpoints, none healthy, the wait for one
        // ended): nothing was sent, so it is no attempt for spans, metrics or the access log.
        recorder?.forgetAttempt(this.#span);
        return;
      }
      // The endpoint was noted when the attempt was sent and when it answered: a hedge that lost,
      // cancelled after the winner answered, must not become the one that answered. An attempt
      // that never reached its endpoint (the connect failed) is the last one tried when no other
      // attempt runs beside it: the access log names it, as Envoy's %UPSTREAM_HOST% does.
      if (recorder) {
        recorder.attemptsInFlight--;
        recorder.lastAttemptFailed = failed;
        if (
          ep !== undefined &&
          (recorder.lastEndpoint === undefined ||
            (failed && recorder.attemptsInFlight === 0 && !this.#started))
        )
          recorder.lastEndpoint = ep;
      }
      // An attempt the hedge stage stopped after its head came (a 5xx held back while another
      // attempt may still answer) answered: it counts by its status, as the endpoint's outlier
      // detection and breaker count it. Only one stopped before its head lost the race.
      const errored = failed && !(status !== undefined && stoppedAfterAnswer(error));
      // The caller stopping the call is not the endpoint's failure, nor is a hedge that lost the
      // race and was cancelled when another attempt answered, nor an attempt a timeout gave up
      // while it still waited in the endpoint's pool (never sent).
      const aborted =
        errored && (recorder?.callerAborted === true || hedgeStopped(error) || neverSent(error));
      // The attempt's outcome is counted as the endpoint's outlier detection counts it (pick.ts),
      // and as Envoy counts `upstream_rq_<code>`: by the status its head came with, whatever
      // happens to the body after — the caller drops it, a stage stops it, a timeout cuts it. Only
      // an exchange the endpoint itself broke after its head (a reset) is an `error`.
      const brokeAfterHead =
        failed &&
        status !== undefined &&
        !(
          recorder?.callerAborted === true ||
          hedgeStopped(error) ||
          stoppedAfterAnswer(error) ||
          MeshError.is(error)
        );
      let outcome: AttemptOutcome;
      if (status === undefined) outcome = aborted ? 'cancelled' : errored ? 'error' : 'success';
      else outcome = brokeAfterHead ? 'error' : status >= 500 ? '5xx' : 'success';
      this.#deps.metrics?.recordAttempt(this.#ctx.service, ep?.id ?? '', outcome);
      const span = this.#span;
      if (span === undefined) return;
      if (this.#recorder) {
        const i = this.#recorder.open.indexOf(span);
        if (i !== -1) this.#recorder.open.splice(i, 1);
      }
      if (span.isRecording()) {
        if (ep !== undefined) {
          span.setAttribute('network.peer.address', ep.address);
          span.setAttribute('network.peer.port', ep.port);
        }
        if (status !== undefined) span.setAttribute('http.response.status_code', status);
        // Outlier detection acts when the pick stage reports this attempt's end, below us.
        const ejected = ep && this.#deps.ejections?.since(this.#ctx.service, ep.id, this.#startedAt);
        if (ejected) span.addEvent('mesh.ejected', { 'mesh.endpoint': ep.id, 'mesh.reason': ejected.reason });
        // An attempt that answered before the hedge stopped it has its status's error type.
        const code = errored ? callErrorCode(errorCode(error), aborted) : undefined;
        const type = errorTypeLabel(code, errored, status);
        if (type !== '') {
          span.setAttribute('error.type', type);
          span.setStatus({ code: SPAN_STATUS_ERROR, ...(error ? { message: error.message } : {}) });
        }
      }
      span.end();
    } catch {
      // Never let a telemetry failure reach the caller's handler.
    }
  }
}

/** An attempt given up while it waited in the endpoint's pool: nothing reached the endpoint. */
function neverSent(error: Error): boolean {
  return (error as { details?: { sent?: unknown } }).details?.sent === false;
}

/**
 * An attempt the hedge stage stopped: a hedge that lost the race when another attempt answered
 * (`hedge_lost`), or one whose 5xx was held back while other attempts ran (`hedge_5xx`).
 */
function hedgeStopped(error: Error): boolean {
  const reason = (error as { details?: { reason?: unknown } }).details?.reason;
  return reason === 'hedge_lost' || reason === 'hedge_5xx';
}

/**
 * An attempt a stage stopped once it had answered: by the hedge stage, or by the retry stage
 * dropping a retried response whose body is past its drain limit (`retry_dropped`). It counts by
 * the status it answered with.
 */
function stoppedAfterAnswer(error: Error): boolean {
  return (
    hedgeStopped(error) || (error as { details?: { reason?: unknown } }).details?.reason === 'retry_dropped'
  );
}
