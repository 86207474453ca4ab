import type { Readable } from 'node:stream';
import type { Clock } from './clock.js';
import type { Endpoint } from './endpoint.js';
import type { Random } from './random.js';

/** Request headers as undici takes them: lower-case names. */
export type RequestHeaders = Record<string, string | string[]>;
/** Response headers as undici returns them. */
export type ResponseHeaders = Record<string, string | string[] | undefined>;

/** A request body as the mesh forwards it. Only `string`/`Uint8Array`/`null` bodies are replayable. */
export type RequestBody = string | Uint8Array | Readable | AsyncIterable<Uint8Array> | null;

/** A response body: a Node readable stream (undici's body, or a synthetic one). */
export type ResponseBody = Readable;

/** The request as every filter sees it. Immutable once the call starts. */
export interface MeshRequest {
  /** Upper-case method. */
  readonly method: string;
  /** Path with query string, starting with `/`. */
  readonly path: string;
  /** The logical origin as the caller wrote it (`http://payments`). */
  readonly origin: string;
  readonly headers: RequestHeaders;
  readonly body: RequestBody;
  /** An idempotent method (RFC 9110 §9.2.2), or the caller declared the request idempotent. */
  readonly idempotent: boolean;
  /** The body is `null`, a string or bytes: it can be sent again byte for byte. */
  readonly bodyReplayable: boolean;
  /** `idempotent && bodyReplayable`: safe to send again after any failure. */
  readonly replayable: boolean;
}

/** What a call produced once the response head arrived; the body still streams. */
export interface CallResult {
  readonly status: number;
  readonly headers: ResponseHeaders;
  readonly body: ResponseBody;
  /** The endpoint that answered, when one did (synthetic answers have none). */
  readonly endpoint?: Endpoint;
}

/** One thing that happened during a call, for recorders, logs and tests. */
export interface CallEvent {
  /** `attempt_start`, `attempt_end`, `retry`, `give_up`, `hedge`, `timeout`, `fault`, … */
  readonly type: string;
  /** Clock time. */
  readonly at: number;
  readonly attempt: number;
  readonly endpoint?: string;
  readonly status?: number;
  readonly code?: string;
  readonly reason?: string;
  readonly delayMs?: number;
}

/** Receives the events of a call. Optional: absent on the hot path unless someone listens. */
export interface CallObserver {
  onEvent(event: CallEvent): void;
}

/**
 * Everything a filter needs about one call. Filters derive a new context for a new attempt
 * (`{ ...ctx, attempt: ctx.attempt + 1 }`) rather than mutating one.
 */
export interface CallContext {
  /** The logical destination service. */
  readonly service: string;
  readonly request: MeshRequest;
  /** 1 for the first attempt, 2 for the first retry or hedge, … */
  readonly attempt: number;
  /** Absolute clock time by which the whole call must finish, if any. */
  readonly deadline: number | undefined;
  /** Aborts this attempt (and everything it waits on). */
  readonly signal: AbortSignal | undefined;
  readonly clock: Clock;
  readonly random: Random;
  /** Endpoint ids a retry should avoid if others are available. */
  readonly excludeEndpoints: ReadonlySet<string> | undefined;
  /** Per-call values shared across attempts (hash keys, route decisions, subset). */
  readonly attributes: Map<string, unknown>;
  readonly observer: CallObserver | undefined;
  /**
   * The endpoint this attempt was sent to: set by the pick stage (the innermost interceptor) when
   * it picks, so stages above it (telemetry, retry) can read it once the attempt has a head or an
   * error. Each attempt has its own context, so this is never shared between attempts.
   */
  endpoint?: Endpoint | undefined;
}

export type Next = (ctx: CallContext) => Promise<CallResult>;
/**
 * A pipeline stage. Since the data-plane redesign every stage is an undici interceptor
 * (`dispatch => dispatch`, see `interceptor.ts`); this name is kept for the policy factories
 * (`createRetryFilter`, …) that return one.
 */
export type Filter = import('./interceptor.js').Interceptor;

/** Emit a call event if someone is listening; free otherwise. */
export function emitCallEvent(
  ctx: CallContext,
  event: Omit<CallEvent, 'at' | 'attempt'> & { attempt?: number },
): void {
  const o = ctx.observer;
  if (o === undefined) return;
  o.onEvent({ at: ctx.clock.now(), attempt: ctx.attempt, ...event });
}

/**
 * Release a result the caller will not read (a retried 503, a losing hedge): read and discard a
 * small body so the connection can be reused, destroy a large one.
 */
export function discardResult(result: CallResult): void {
  const body = result.body as Readable & { dump?: (opts?: { limit?: number }) => Promise<void> };
  if (typeof body.dump === 'function') {
    body.dump({ limit: 64 * 1024 }).catch(() => undefined);
  } else {
    body.on('error', () => undefined);
    body.resume();
  }
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** RFC 9110 §9.2.2 idempotent methods. */
export function isIdempotentMethod(method: string): boolean {
  return IDEMPOTENT.has(method);
}

/**
 * A request header the caller may set to declare a non-idempotent request safe to retry; the mesh
 * removes it before the request leaves. Requests carrying an `Idempotency-Key` header
 * (draft-ietf-httpapi-idempotency-key-header) are treated as idempotent too.
 */
export const IDEMPOTENT_HEADER = 'x-mesh-idempotent';

const STANDARD_METHODS = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT']);

/** The method as undici and fetch normalise it: only the six standard methods are upper-cased. */
export function normalizeMethod(method: string): string {
  if (STANDARD_METHODS.has(method)) return method;
  const upper = method.toUpperCase();
  return STANDARD_METHODS.has(upper) ? upper : method;
}

/**
 * Whether a request may be sent again (the mesh's idempotency rule, one place for the mesh and the
 * testing entry): `declared` (the `idempotent` option) when given, else the `x-mesh-idempotent`
 * header (`true`/`1`), else an RFC 9110 idempotent method or an `Idempotency-Key` header.
 * `headers`: lower-cased names, as `headerRecord` gives them.
 */
export function isIdempotentRequest(
  method: string,
  headers: Readonly<Record<string, string | readonly string[] | undefined>>,
  declared?: boolean,
): boolean {
  let d = declared;
  const flag = headers[IDEMPOTENT_HEADER];
  if (d === undefined && flag !== undefined) {
    const v = String(Array.isArray(flag) ? flag[0] : flag).toLowerCase();
    d = v === 'true' || v === '1';
  }
  return d ?? (isIdempotentMethod(method) || headers['idempotency-key'] !== undefined);
}

/** Whether a body can be sent again byte for byte. */
export function isReplayableBody(body: RequestBody): boolean {
  return body === null || typeof body === 'string' || ArrayBuffer.isView(body) || body instanceof ArrayBuffer;
}
