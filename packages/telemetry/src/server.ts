import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Context, Span, TextMapGetter, Tracer } from '@opentelemetry/api';
import { type Clock, systemClock } from '@proxyless/core';
import { errorTypeLabel } from './labels.js';
import type { MeshMetrics } from './metrics.js';
import { loadOtelApi } from './otel-api.js';

const getter: TextMapGetter<IncomingMessage['headers']> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key.toLowerCase()],
};

/**
 * The trace context an inbound request carries (`traceparent`/`tracestate` through the global
 * propagator), as the parent for the server's work. The root context when there is none.
 */
export function extractServerContext(req: IncomingMessage): Context {
  const api = loadOtelApi();
  return api.propagation.extract(api.ROOT_CONTEXT, req.headers, getter);
}

/** Options of {@link startServerSpan}. */
export interface ServerSpanOptions {
  /** @defaultValue the global tracer provider's `@proxyless/telemetry` tracer */
  tracer?: Tracer;
  /** Records `http_server_request_duration_seconds` when the response finishes. */
  metrics?: MeshMetrics;
  /** @defaultValue the system clock */
  clock?: Clock;
}

/** A started SERVER span and the context to run the handler in. */
export interface ServerSpan {
  readonly span: Span;
  /** The extracted parent with this span set: run the handler in it (`context.with`). */
  readonly context: Context;
}

/**
 * Start a SERVER span for an inbound request, child of the context it carries, with the HTTP
 * semconv attributes. With `res`, the span (and the server duration metric) ends when the
 * response finishes or the connection closes first.
 *
 * @example
 * http.createServer((req, res) => {
 *   const { context: ctx } = startServerSpan(req, res);
 *   context.with(ctx, () => handle(req, res));
 * });
 */
export function startServerSpan(
  req: IncomingMessage,
  res?: ServerResponse,
  options: ServerSpanOptions = {},
): ServerSpan {
  const api = loadOtelApi();
  const tracer = options.tracer ?? api.trace.getTracer('@proxyless/telemetry');
  const parent = extractServerContext(req);
  const method = req.method ?? 'GET';
  const q = req.url?.indexOf('?') ?? -1;
  const span = tracer.startSpan(
    method,
    {
      kind: api.SpanKind.SERVER,
      attributes: {
        'http.request.method': method,
        'url.path': q === -1 ? (req.url ?? '/') : req.url!.slice(0, q),
        'url.scheme': (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http',
        ...(req.headers.host ? { 'server.address': hostOf(req.headers.host) } : {}),
        ...(req.socket.localPort !== undefined ? { 'server.port': req.socket.localPort } : {}),
        ...(req.socket.remoteAddress ? { 'network.peer.address': req.socket.remoteAddress } : {}),
        ...(req.socket.remotePort !== undefined ? { 'network.peer.port': req.socket.remotePort } : {}),
        ...(req.headers['user-agent'] ? { 'user_agent.original': req.headers['user-agent'] } : {}),
      },
    },
    parent,
  );
  if (res !== undefined) {
    const clock = options.clock ?? systemClock;
    const started = clock.now();
    let ended = false;
    const end = (finished: boolean): void => {
      if (ended) return;
      ended = true;
      const status = res.statusCode;
      const type = finished ? errorTypeLabel(undefined, false, status, 500) : 'aborted';
      span.setAttribute('http.response.status_code', status);
      if (type !== '') {
        span.setAttribute('error.type', type);
        span.setStatus({ code: api.SpanStatusCode.ERROR });
      }
      span.end();
      options.metrics?.recordServerRequest(
        method,
        finished ? status : undefined,
        type,
        (clock.now() - started) / 1000,
      );
    };
    res.once('finish', () => end(true));
    res.once('close', () => end(res.writableFinished));
  }
  return { span, context: api.trace.setSpan(parent, span) };
}

function hostOf(host: string): string {
  if (host.startsWith('[')) return host.slice(1, host.indexOf(']'));
  const colon = host.indexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}

/** Run `fn` with `span`'s context active (a convenience over `context.with`). */
export function withServerSpan<T>(server: ServerSpan, fn: () => T): T {
  return loadOtelApi().context.with(server.context, fn);
}
