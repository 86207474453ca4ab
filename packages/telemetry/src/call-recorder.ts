import type { Attributes, Context, Link, Span } from '@opentelemetry/api';
import {
  type CallContext,
  type CallEvent,
  type CallObserver,
  type Endpoint,
  TARGET_ATTRIBUTE,
  wallClockMs,
} from '@proxyless/core';
import type { Dispatcher } from 'undici';
import { type AccessLogSink, formatAccessLogLine, responseFlags } from './access-log.js';
import { errorCode } from './events.js';
import { callErrorCode, errorTypeLabel } from './labels.js';
import type { MeshMetrics } from './metrics.js';
import { type OtelApiModule, otelApi, type TracerSource } from './otel-api.js';

/** `SpanStatusCode.ERROR` (a stable value of the API's enum, usable before the API is loaded). */
export const SPAN_STATUS_ERROR = 2 as import('@opentelemetry/api').SpanStatusCode.ERROR;

/** What the interceptors share, built once per mesh. */
export interface TelemetryDeps {
  /** Where spans come from; undefined when tracing is off. */
  readonly tracing: TracerSource | undefined;
  readonly metrics: MeshMetrics | undefined;
  readonly accessLog: AccessLogSink | undefined;
  /** Recent ejections, so an attempt whose endpoint was ejected shows it on its span. */
  readonly ejections?: EjectionLog;
}

/** The latest ejection per service and endpoint, with its clock time. */
export class EjectionLog {
  readonly #by = new Map<string, Map<string, { at: number; reason: string }>>();

  record(service: string, endpoint: string, reason: string, at: number): void {
    let m = this.#by.get(service);
    if (m === undefined) {
      m = new Map();
      this.#by.set(service, m);
    }
    // Bounded like the metrics: a service with more endpoints keeps the most recent 1,024.
    if (m.size >= 1024 && !m.has(endpoint)) m.delete(m.keys().next().value!);
    m.set(endpoint, { at, reason });
  }

  /** The ejection of `endpoint` at or after `since`, if there was one. */
  since(service: string, endpoint: string, since: number): { at: number; reason: string } | undefined {
    const e = this.#by.get(service)?.get(endpoint);
    return e !== undefined && e.at >= since ? e : undefined;
  }

  forget(service: string): void {
    this.#by.delete(service);
  }
}

/**
 * The state of one logical call, shared by the call and attempt interceptors: it is the call's
 * `ctx.observer` (forwarding to the mesh's own observer), which every attempt's derived context
 * keeps, so retry, hedge, timeout, fault and circuit-open events reach metrics, spans and the
 * access log, and the attempt stage finds the call it belongs to.
 */
export class CallRecorder implements CallObserver {
  readonly ctx: CallContext;
  readonly deps: TelemetryDeps;
  /** The caller's OpenTelemetry context when the call started (undefined: the API was not loaded). */
  readonly parent: Context | undefined;
  readonly startedAt: number;
  readonly startedWall: number;
  attempts = 0;
  /** The INTERNAL span of the logical call, made at the second attempt (or at a failure with none). */
  internal: Span | undefined;
  internalContext: Context | undefined;
  firstAttemptSpan: Span | undefined;
  /** Attempt spans still open, newest last. */
  readonly open: Span[] = [];
  lastEndpoint: Endpoint | undefined;
  /** Attempts dispatched and not yet ended (hedges run side by side; retries one after another). */
  attemptsInFlight = 0;
  /** Whether the attempt that ended last ended in an error, `undefined` before any ended. */
  lastAttemptFailed: boolean | undefined;
  /** The controller the caller holds: once it is aborted, the caller stopped the call. */
  callerController: Dispatcher.DispatchController | undefined;
  /** Events in order, kept only when something reads them (the access log or a span). */
  events: CallEvent[] | undefined;
  /** How many of `events` are already on a span: the rest go on the next span to start. */
  #placed = 0;
  readonly #forward: CallObserver | undefined;

  /** `api`: the OpenTelemetry API when it is loaded (see otel-api.ts), else undefined. */
  constructor(ctx: CallContext, deps: TelemetryDeps, api: OtelApiModule | undefined) {
    this.ctx = ctx;
    this.deps = deps;
    this.parent = api?.context.active();
    this.startedAt = ctx.clock.now();
    this.startedWall = deps.accessLog ? wallClockMs() : 0;
    this.#forward = ctx.observer;
    if (deps.accessLog || (deps.tracing && api)) this.events = [];
  }

  onEvent(event: CallEvent): void {
    this.deps.metrics?.recordCallEvent(this.ctx.service, event);
    if (this.events !== undefined) {
      this.events.push(event);
      const span = this.open.length > 0 ? this.open[this.open.length - 1] : this.internal;
      if (span !== undefined) {
        if (span.isRecording()) span.addEvent(`mesh.${event.type}`, eventAttributes(event));
        this.#placed = this.events.length;
      }
    }
    this.#forward?.onEvent(event);
  }

  /**
   * Count a new attempt and give the context its span hangs under; makes the INTERNAL span at
   * the second attempt. `api`: the OpenTelemetry API when tracing is on and it is loaded.
   */
  attemptParent(api: OtelApiModule | undefined): Context | undefined {
    this.attempts++;
    if (api !== undefined && this.internal === undefined && this.attempts === 2) this.#startInternal(api);
    return this.internalContext ?? this.parent;
  }

  /**
   * An attempt ended before an endpoint was chosen (no endpoints, none healthy): nothing was
   * sent, so it is no attempt. Its span is dropped unended (never exported) and it is not counted.
   */
  forgetAttempt(span: Span | undefined): void {
    this.attempts--;
    if (span === undefined) return;
    const i = this.open.indexOf(span);
    if (i !== -1) this.open.splice(i, 1);
    if (this.firstAttemptSpan === span) this.firstAttemptSpan = undefined;
  }

  /** Put the events no span has yet (a fault delay before the attempt) on a starting span. */
  placeEvents(span: Span): void {
    const events = this.events;
    if (events === undefined || this.#placed === events.length) return;
    if (span.isRecording()) this.#addEvents(span, this.#placed);
    this.#placed = events.length;
  }

  /** True once the caller aborted the controller it holds (or destroyed the body). */
  get callerAborted(): boolean {
    return this.callerController?.aborted === true;
  }

  #addEvents(span: Span, from: number): void {
    const events = this.events!;
    const nowWall = wallClockMs();
    const nowClock = this.ctx.clock.now();
    for (let i = from; i < events.length; i++) {
      const e = events[i]!;
      span.addEvent(`mesh.${e.type}`, eventAttributes(e), nowWall - (nowClock - e.at));
    }
  }

  /**
   * Semconv wants attempts under one INTERNAL span when there are several, but the first attempt
   * is sent (with its `traceparent`) before anyone can know a retry will follow, and a span's
   * parent cannot change later. So, under a caller's span, the INTERNAL span starts, back-dated
   * to the call's start, when the second attempt does: it parents attempts 2..n and links
   * attempt 1, which stays under the caller's span. A call with one attempt makes one CLIENT span
   * and nothing else. With no caller span, attempt 1 is the trace's root and the INTERNAL span
   * starts under it (and links it), so a retried call is still one trace.
   */
  #startInternal(api: OtelApiModule): void {
    const tracer = this.deps.tracing!.tracer(api);
    const first = this.firstAttemptSpan?.spanContext();
    let parent = this.parent ?? api.context.active();
    // No caller span: attempt 1 is the trace's root, and the INTERNAL span goes under it, so that
    // attempts 2..n stay in the same trace (one call, one trace) at no cost to one-attempt calls.
    if (
      !hasCallerSpan(api, parent) &&
      this.firstAttemptSpan !== undefined &&
      first &&
      api.isSpanContextValid(first)
    )
      parent = api.trace.setSpan(parent, this.firstAttemptSpan);
    const links: Link[] = first && api.isSpanContextValid(first) ? [{ context: first }] : [];
    const span = tracer.startSpan(
      this.ctx.request.method,
      {
        kind: api.SpanKind.INTERNAL,
        startTime: wallClockMs() - (this.ctx.clock.now() - this.startedAt),
        links,
        attributes: callAttributes(this.ctx),
      },
      parent,
    );
    this.internal = span;
    this.internalContext = api.trace.setSpan(parent, span);
    if (this.events !== undefined) {
      if (span.isRecording()) this.#addEvents(span, 0);
      this.#placed = this.events.length;
    }
  }

  /** The call ended: its body ended (`error` undefined) or it failed. Records everything once. */
  finish(status: number | undefined, error: Error | undefined): void {
    const { ctx, deps } = this;
    const now = ctx.clock.now();
    const failed = error !== undefined;
    const aborted = failed && this.callerAborted;
    const code = failed ? callErrorCode(errorCode(error), aborted) : undefined;
    deps.metrics?.recordClientRequest(
      ctx.service,
      ctx.request.method,
      status,
      errorTypeLabel(code, failed, status),
      (now - this.startedAt) / 1000,
    );
    // A call that ended before any attempt (breaker open, no endpoints, a limit, an injected
    // abort answered with its status) has no CLIENT span: an INTERNAL span makes it visible. So
    // does one whose only attempt's span ended before the call did what no span shows: events
    // after it (a retry the breaker refused, `give_up`), or a failure after an answered attempt
    // (the caller aborted in the retry backoff).
    const unplaced = this.events !== undefined && this.#placed < this.events.length;
    const failedAfterAnswer = failed && this.lastAttemptFailed === false;
    if (
      (this.attempts === 0 || unplaced || failedAfterAnswer) &&
      deps.tracing &&
      this.internal === undefined
    ) {
      const api = otelApi();
      if (api !== undefined) this.#startInternal(api);
    }
    const span = this.internal;
    if (span?.isRecording()) {
      if (status !== undefined) span.setAttribute('http.response.status_code', status);
      const type = errorTypeLabel(code, failed, status);
      if (type !== '') {
        span.setAttribute('error.type', type);
        span.setStatus({ code: SPAN_STATUS_ERROR, ...(error ? { message: error.message } : {}) });
      }
      span.setAttribute('mesh.attempts', this.attempts);
    }
    span?.end();
    if (deps.accessLog) this.#writeAccessLog(status, error, code, aborted, now);
  }

  #writeAccessLog(
    status: number | undefined,
    error: Error | undefined,
    code: string | undefined,
    callerAborted: boolean,
    now: number,
  ): void {
    const flags = responseFlags({ error, status, events: this.events, callerAborted });
    // Spans and a parent context exist only once the API is loaded.
    const api = otelApi();
    const sc =
      (this.internal ?? this.firstAttemptSpan)?.spanContext() ??
      (this.parent !== undefined ? api?.trace.getSpanContext(this.parent) : undefined);
    const ep = this.lastEndpoint;
    this.deps.accessLog!.write(
      formatAccessLogLine({
        start_time: new Date(this.startedWall).toISOString(),
        method: this.ctx.request.method,
        path: this.ctx.request.path,
        // A service subset's routing target is a cluster of its own, as in Envoy under Consul.
        upstream_cluster:
          (this.ctx.attributes.get(TARGET_ATTRIBUTE) as string | undefined) ?? this.ctx.service,
        upstream_host: ep
          ? ep.address.includes(':')
            ? `[${ep.address}]:${ep.port}`
            : `${ep.address}:${ep.port}`
          : '-',
        response_code: status ?? 0,
        response_flags: flags.length > 0 ? flags.join(',') : '-',
        duration_ms: Math.round((now - this.startedAt) * 1000) / 1000,
        attempts: this.attempts,
        trace_id: sc && api?.isSpanContextValid(sc) ? sc.traceId : '-',
        error_code: code ?? '-',
      }),
    );
  }
}

/** True when `parent` holds a valid span (the caller's, or one extracted from its headers). */
function hasCallerSpan(api: OtelApiModule, parent: Context): boolean {
  const sc = api.trace.getSpanContext(parent);
  return sc !== undefined && api.isSpanContextValid(sc);
}

/** Attributes of the logical call, shared by INTERNAL and CLIENT spans. */
export function callAttributes(ctx: CallContext): Attributes {
  const { origin, path, method } = ctx.request;
  const attributes: Attributes = {
    'http.request.method': method,
    'url.full': origin + path,
    'server.address': ctx.service,
    'server.port': originPort(origin),
  };
  // A service subset's routing target: the cluster that served it, as Envoy's `upstream_cluster`.
  const target = ctx.attributes.get(TARGET_ATTRIBUTE);
  if (typeof target === 'string') attributes['mesh.target'] = target;
  return attributes;
}

const ports = new Map<string, number>();

/** The port of a logical origin (`http://payments:8080` → 8080, `http://payments` → 80), cached. */
function originPort(origin: string): number {
  let port = ports.get(origin);
  if (port === undefined) {
    port = parsePort(origin);
    if (ports.size < 10_000) ports.set(origin, port);
  }
  return port;
}

function parsePort(origin: string): number {
  const colon = origin.lastIndexOf(':');
  if (colon > origin.indexOf('//') && origin[colon + 1] !== '/') {
    const port = Number(origin.slice(colon + 1));
    if (Number.isInteger(port)) return port;
  }
  return origin.startsWith('https:') ? 443 : 80;
}

function eventAttributes(e: CallEvent): Attributes {
  const a: Attributes = { 'mesh.attempt': e.attempt };
  if (e.reason !== undefined) a['mesh.reason'] = e.reason;
  if (e.endpoint !== undefined) a['mesh.endpoint'] = e.endpoint;
  if (e.status !== undefined) a['http.response.status_code'] = e.status;
  if (e.code !== undefined) a['error.type'] = e.code;
  if (e.delayMs !== undefined) a['mesh.delay_ms'] = e.delayMs;
  return a;
}
