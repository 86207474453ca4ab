import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Endpoint } from './endpoint.js';
import type { CallContext } from './filter.js';

/**
 * The data-plane contract. A destination is an undici `Dispatcher`; every policy is an undici
 * interceptor (`dispatch => dispatch`) over the undici 7 handler/controller API, so it sees the whole
 * exchange: request start, 1xx, head, data, trailers, end, error, pause/resume, abort.
 *
 * The mesh's per-call state travels on the dispatch options under {@link kCall}. Symbol-keyed
 * properties survive the `{ ...opts }` copies undici's own interceptors make. A retry or hedge
 * dispatches each attempt with a derived context (`{ ...ctx, attempt: n }`), so per-attempt fields
 * such as {@link CallContext.endpoint} belong to that attempt alone.
 */
export const kCall: unique symbol = Symbol.for('proxyless.call') as never;

/** Dispatch options as they flow through the mesh: undici's, plus the call's context. */
export type MeshDispatchOptions = Dispatcher.DispatchOptions & { [kCall]?: CallContext };

/** A handler in undici 7's controller style (what every mesh interceptor receives). */
export type MeshHandler = Dispatcher.DispatchHandler;

/** undici's `dispatch` signature. */
export type DispatchFn = (opts: MeshDispatchOptions, handler: MeshHandler) => boolean;

/** An undici interceptor: the shape of every mesh policy. */
export type Interceptor = (dispatch: DispatchFn) => DispatchFn;

/**
 * Call attribute holding the endpoint that sent the latest response head of the call (set by the
 * pick stage for each attempt), so the caller can tell which endpoint answered.
 */
export const ENDPOINT_ATTRIBUTE = 'proxyless.endpoint';

/**
 * Call attribute holding the routing target's ID (`v2.web.default.default.dc1`) of a call sent
 * through a service subset's destination: the access log's upstream cluster.
 */
export const TARGET_ATTRIBUTE = 'proxyless.target';

/** The call context carried by dispatch options, if the dispatch is a mesh call. */
export function callOf(opts: Dispatcher.DispatchOptions): CallContext | undefined {
  return (opts as MeshDispatchOptions)[kCall];
}

/** Dispatch options for an attempt with its own context (a copy; the caller's options are untouched). */
export function withCall(opts: Dispatcher.DispatchOptions, ctx: CallContext): MeshDispatchOptions {
  // Replacing a key the source already has is V8's fast clone; adding one is not (see copyOptions).
  if (kCall in opts) return { ...(opts as MeshDispatchOptions), [kCall]: ctx };
  const out = copyOptions(opts) as MeshDispatchOptions;
  out[kCall] = ctx;
  return out;
}

/**
 * A shallow copy of dispatch options (own string and symbol keys), for a stage to change before it
 * passes them on. Hot paths copy with this rather than a spread literal: on Node 20's V8 a spread
 * literal that adds a key its source lacks (`{ ...opts, [kCall]: ctx }`) takes a slow path, about
 * 1 µs per added key, where `Object.assign` copies in about 0.1 µs (measured; docs/benchmarks.md).
 */
export function copyOptions<T extends object>(opts: T): T {
  return Object.assign({}, opts);
}

/** What undici reads of dispatch options (its `Request`, its Agent, the request API) and the mesh's own. */
const DISPATCH_KEYS = [
  'origin',
  'path',
  'method',
  'body',
  'headers',
  'query',
  'idempotent',
  'blocking',
  'upgrade',
  'headersTimeout',
  'bodyTimeout',
  'reset',
  'expectContinue',
  'servername',
  'throwOnError',
  'maxRedirections',
  'typeOfService',
  'signal',
  'opaque',
  'responseHeaders',
  'highWaterMark',
  'onInfo',
  'hashKey',
] as const;

/**
 * Dispatch options as undici reads them: with property gets, so that a value inherited or behind
 * a getter (options made with `Object.create`, or a class instance) counts. A plain object is
 * returned as it is; any other is read once into a plain copy, which {@link copyOptions} (own keys
 * only) can then copy on without losing anything. A getter that throws throws here.
 */
export function plainDispatchOptions<T extends object>(opts: T): T {
  const proto: unknown = Object.getPrototypeOf(opts);
  if (proto === Object.prototype || proto === null) return opts;
  const out = Object.assign({}, opts) as Record<string, unknown>;
  const from = opts as Record<string, unknown>;
  for (const k of DISPATCH_KEYS) {
    if (Object.hasOwn(out, k)) continue;
    const v = from[k];
    if (v !== undefined) out[k] = v;
  }
  return out as T;
}

/**
 * Fold interceptors around a terminal dispatch, once, at build time. The first interceptor is the
 * outermost. Each result must be a two-argument function (undici's own check in `compose`).
 */
export function composeInterceptors(interceptors: readonly Interceptor[], terminal: DispatchFn): DispatchFn {
  let dispatch = terminal;
  for (let i = interceptors.length - 1; i >= 0; i--) {
    const next = interceptors[i]!(dispatch);
    if (typeof next !== 'function' || next.length !== 2) {
      throw new TypeError(`interceptor ${i} did not return a (opts, handler) dispatch function`);
    }
    dispatch = next;
  }
  return dispatch;
}

/**
 * A handler that forwards every callback to the handler it wraps — undici's `DecoratorHandler`,
 * plus fetch's `onResponseStarted` (Resource Timing's `responseStart`). Interceptors extend it and
 * override only what they act on.
 */
export class ForwardingHandler implements MeshHandler {
  protected readonly handler: MeshHandler;

  constructor(handler: MeshHandler) {
    this.handler = handler;
  }

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.handler.onRequestStart?.(controller, context);
  }

  onRequestUpgrade(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    socket: Duplex,
  ): void {
    this.handler.onRequestUpgrade?.(controller, statusCode, headers, socket);
  }

  onResponseStarted(): void {
    (this.handler as { onResponseStarted?: () => void }).onResponseStarted?.();
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    statusMessage?: string,
  ): void {
    this.handler.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.handler.onResponseData?.(controller, chunk);
  }

  onResponseEnd(controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    this.handler.onResponseEnd?.(controller, trailers);
  }

  onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    this.handler.onResponseError?.(controller, error);
  }
}

/** What the innermost stage reports when an attempt's exchange has ended (body end or error). */
export interface AttemptEnd {
  readonly endpoint: Endpoint;
  /** Response status, when a head arrived. */
  readonly status?: number;
  readonly error?: Error;
  /** Clock time of dispatch, head, and end. */
  readonly startedAt: number;
  readonly headAt?: number;
  readonly endedAt: number;
}
