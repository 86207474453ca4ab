import {
  type DispatchHeaders,
  hasHeader,
  headerRecord,
  IDEMPOTENT_HEADER,
  isIdempotentRequest,
  type MeshRequest,
  normalizeMethod,
  type RequestBody,
  type RequestHeaders,
  undiciChecks,
  undiciErrors,
} from '@proxyless/core';
import type { Dispatcher } from 'undici';

export { IDEMPOTENT_HEADER, normalizeMethod };

/**
 * Refuse, before anything is sent, a dispatch undici's own `Request` would refuse, with its error
 * (`InvalidArgumentError`, `UND_ERR_INVALID_ARG`) and message, in its order — for what the mesh
 * reads before the endpoint's pool repeats undici's checks: the path and method (naming, routing,
 * idempotency), the headers' form (the mesh adds `host` to them), and whether the caller's handler
 * can take an upgrade. A handler in the old style without `onUpgrade` (undici's `request()`) would
 * otherwise never settle when the server switches protocols: the mesh's own handler always has
 * `onRequestUpgrade`, so the pool's check passes (undici's `assertRequestHandler`).
 */
export function assertDispatchable(opts: Dispatcher.DispatchOptions, handler: object): void {
  const { path, method, upgrade, headers } = opts;
  if (typeof path !== 'string') throw invalid('path must be a string');
  if (
    path[0] !== '/' &&
    !path.startsWith('http://') &&
    !path.startsWith('https://') &&
    method !== 'CONNECT'
  ) {
    throw invalid('path must be an absolute URL or start with a slash');
  }
  if (INVALID_PATH.test(path)) throw invalid('invalid request path');
  if (typeof method !== 'string') throw invalid('method must be a string');
  const { isValidHTTPToken, isValidHeaderValue, normalizedMethodRecords } = undiciChecks;
  if (normalizedMethodRecords[method] === undefined && !isValidHTTPToken(method)) {
    throw invalid('invalid request method');
  }
  if (upgrade && typeof upgrade !== 'string') throw invalid('upgrade must be a string');
  if (upgrade && !isValidHeaderValue(upgrade)) throw invalid('invalid upgrade header');
  // The options undici's `Request` checks next, in its order, so that a request with several bad
  // options is refused for the one undici names first.
  const o = opts as Dispatcher.DispatchOptions & {
    throwOnError?: unknown;
    maxRedirections?: unknown;
    typeOfService?: unknown;
  };
  const { headersTimeout, bodyTimeout, reset, expectContinue } = o;
  if (headersTimeout != null && (!Number.isFinite(headersTimeout) || headersTimeout < 0))
    throw invalid('invalid headersTimeout');
  if (bodyTimeout != null && (!Number.isFinite(bodyTimeout) || bodyTimeout < 0))
    throw invalid('invalid bodyTimeout');
  if (reset != null && typeof reset !== 'boolean') throw invalid('invalid reset');
  if (expectContinue != null && typeof expectContinue !== 'boolean') throw invalid('invalid expectContinue');
  if (o.throwOnError != null) throw invalid('invalid throwOnError');
  if (o.maxRedirections != null && o.maxRedirections !== 0)
    throw invalid('maxRedirections is not supported, use the redirect interceptor');
  const tos = o.typeOfService;
  if (tos != null && (!Number.isInteger(tos) || (tos as number) < 0 || (tos as number) > 255))
    throw invalid('typeOfService must be an integer between 0 and 255');
  const { body, query } = o;
  if (body != null && !isBodyType(body))
    throw invalid('body must be a string, a Buffer, a Readable stream, an iterable, or an async iterable');
  // undici joins `query` to the path here, with its own plain `Error`.
  if (query && undiciChecks.pathHasQueryOrFragment(path))
    throw new Error('Query params cannot be passed when url already contains "?" or "#".');
  if (headers != null && typeof headers !== 'object') throw invalid('headers must be an object or an array');
  assertHandler(handler as Record<string, unknown>, method, upgrade);
}

/** undici's `invalidPathRegex` (`lib/core/request.js`). */
const INVALID_PATH = /[^\u0021-\u00ff]/;

/** undici's `assertRequestHandler`: a handler in the controller style is taken as it is. */
function assertHandler(h: Record<string, unknown>, method: string, upgrade: unknown): void {
  if (typeof h.onRequestStart === 'function') return;
  if (typeof h.onConnect !== 'function') throw invalid('invalid onConnect method');
  if (typeof h.onError !== 'function') throw invalid('invalid onError method');
  if (typeof h.onBodySent !== 'function' && h.onBodySent !== undefined) {
    throw invalid('invalid onBodySent method');
  }
  if (upgrade || method === 'CONNECT') {
    if (typeof h.onUpgrade !== 'function') throw invalid('invalid onUpgrade method');
    return;
  }
  if (typeof h.onHeaders !== 'function') throw invalid('invalid onHeaders method');
  if (typeof h.onData !== 'function') throw invalid('invalid onData method');
  if (typeof h.onComplete !== 'function') throw invalid('invalid onComplete method');
}

function invalid(message: string): Error {
  return new undiciErrors.InvalidArgumentError(message);
}

/** A body undici's `Request` takes (`lib/core/request.js`, in its order). */
function isBodyType(body: unknown): boolean {
  const u = undiciChecks;
  return (
    u.isStream(body) ||
    u.isBuffer(body) ||
    ArrayBuffer.isView(body) ||
    body instanceof ArrayBuffer ||
    typeof body === 'string' ||
    u.isFormDataLike(body) ||
    u.isIterable(body) ||
    u.isBlobLike(body)
  );
}

function isBytes(body: unknown): boolean {
  return body == null || typeof body === 'string' || ArrayBuffer.isView(body) || body instanceof ArrayBuffer;
}

/**
 * The request as policies see it, read from the dispatch options without copying them: headers
 * are turned into a lower-cased record only if a policy reads them (hash keys, fault headers), and
 * the idempotency rules run only when asked.
 */
export class DispatchRequest implements MeshRequest {
  readonly method: string;
  readonly path: string;
  readonly origin: string;
  readonly body: RequestBody;
  readonly #raw: DispatchHeaders;
  readonly #declared: boolean | undefined;
  #headers: RequestHeaders | undefined;
  #idempotent: boolean | undefined;

  constructor(opts: Dispatcher.DispatchOptions, origin: string, declared: boolean | undefined) {
    this.method = normalizeMethod(opts.method);
    this.path = opts.path;
    this.origin = origin;
    this.body = (opts.body ?? null) as RequestBody;
    this.#raw = opts.headers;
    this.#declared = declared;
  }

  get headers(): RequestHeaders {
    this.#headers ??= headerRecord(this.#raw);
    return this.#headers;
  }

  get idempotent(): boolean {
    this.#idempotent ??= isIdempotentRequest(this.method, this.headers, this.#declared);
    return this.#idempotent;
  }

  get bodyReplayable(): boolean {
    return isBytes(this.body);
  }

  get replayable(): boolean {
    return this.idempotent && this.bodyReplayable;
  }
}

/** Whether the caller's headers carry the mesh's own idempotency flag (removed before sending). */
export function hasIdempotentFlag(headers: DispatchHeaders): boolean {
  return hasHeader(headers, IDEMPOTENT_HEADER);
}
