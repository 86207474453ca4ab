import {
  type DispatchHeaders,
  hasHeader,
  headerRecord,
  IDEMPOTENT_HEADER,
  isHeaderIterable,
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
  const { isValidHTTPToken, isValidHeaderValue, normalizedMethodRecords } = undiciChecks();
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
  if (query && undiciChecks().pathHasQueryOrFragment(path))
    throw new Error('Query params cannot be passed when url already contains "?" or "#".');
  if (headers != null && typeof headers !== 'object') throw invalid('headers must be an object or an array');
  try {
    assertHandler(handler as Record<string, unknown>, method, upgrade);
  } catch (error) {
    // undici's `Request` reads the headers before it checks the handler: a bad header is named first.
    assertUndiciHeaders(headers);
    throw error;
  }
}

/**
 * undici's checks of request headers, as its `Request` makes them (`lib/core/request.js`: the
 * headers' form, then `processHeader` for each, in order), throwing what it throws, with its
 * message: a flat array must be even, an iterable must yield `[name, value]` pairs, a record is
 * read by `Object.keys`; an object value, a name that is no token, a value with CR, LF or NUL, a
 * second `host` or `content-length`, a `content-length` that is not digits, a `transfer-encoding`,
 * `keep-alive` or `upgrade` header, a `connection` header that is not a list of tokens
 * (`InvalidArgumentError`), and an `expect` header (`NotSupportedError`).
 *
 * Not on the hot path: the endpoint's pool makes these checks itself as it takes the request. The
 * mesh makes them only where it would otherwise answer a call itself before any pool saw it (an
 * open breaker, no healthy endpoint, a limit, an injected fault…), so that such a call is refused
 * for a bad header as undici refuses it (see `CallHandler`). An iterable is read here: give it as
 * the flat array the mesh reads it into. A name that is not a string (undici looks it up in its
 * table of well-known names, then fails on `toLowerCase`) ends the checks: undici decides it.
 */
export function assertUndiciHeaders(headers: unknown): void {
  const seen: SeenHeaders = { host: false, contentLength: false };
  if (Array.isArray(headers)) {
    if (headers.length % 2 !== 0) throw invalid('headers array must be even');
    for (let i = 0; i < headers.length; i += 2) if (!checkHeader(seen, headers[i], headers[i + 1])) return;
  } else if (headers && typeof headers === 'object') {
    if (isHeaderIterable(headers as DispatchHeaders)) {
      for (const header of headers as Iterable<unknown>) {
        if (!Array.isArray(header) || header.length !== 2) {
          throw invalid('headers must be in key-value pair format');
        }
        if (!checkHeader(seen, header[0], header[1])) return;
      }
    } else {
      const rec = headers as Record<string, unknown>;
      const keys = Object.keys(rec);
      for (let i = 0; i < keys.length; ++i) if (!checkHeader(seen, keys[i], rec[keys[i] as string])) return;
    }
  } else if (headers != null) {
    throw invalid('headers must be an object or an array');
  }
}

/** The error undici's `Request` would refuse these headers with ({@link assertUndiciHeaders}), if any. */
export function undiciHeaderError(headers: unknown): Error | undefined {
  try {
    assertUndiciHeaders(headers);
    return undefined;
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

/** The headers undici's `Request` allows once: a second is refused. */
interface SeenHeaders {
  host: boolean;
  contentLength: boolean;
}

/**
 * undici's `processHeader` for one header, without building anything. Returns `false` for a name
 * that is not a string (the checks stop there: see {@link assertUndiciHeaders}).
 */
function checkHeader(seen: SeenHeaders, key: unknown, val: unknown): boolean {
  if (val && typeof val === 'object' && !Array.isArray(val)) throw invalid(`invalid ${key as string} header`);
  if (val === undefined) return true;
  if (typeof key !== 'string') return false;
  const { isValidHTTPToken, isValidHeaderValue } = undiciChecks();
  // undici looks the name up in its table of well-known names first: those are tokens already.
  const name = key.toLowerCase();
  if (!isValidHTTPToken(name)) throw invalid('invalid header key');
  let value: string | undefined;
  if (Array.isArray(val)) {
    for (let i = 0; i < val.length; i++) {
      const v: unknown = val[i];
      if (typeof v === 'string') {
        if (!isValidHeaderValue(v)) throw invalid(`invalid ${key} header`);
      } else if (v === null) {
        // sent empty
      } else if (typeof v === 'object') {
        throw invalid(`invalid ${key} header`);
      } else if (!isValidHeaderValue(`${v as string}`)) {
        throw invalid(`invalid ${key} header`);
      }
    }
  } else if (typeof val === 'string') {
    if (!isValidHeaderValue(val)) throw invalid(`invalid ${key} header`);
    value = val;
  } else if (val === null) {
    value = '';
  } else {
    value = `${val as string}`;
    if (!isValidHeaderValue(value)) throw invalid(`invalid ${key} header`);
  }
  if (name === 'host') {
    if (seen.host) throw invalid('duplicate host header');
    if (value === undefined) throw invalid('invalid host header');
    seen.host = true;
  } else if (name === 'content-length') {
    if (seen.contentLength) throw invalid('duplicate content-length header');
    if (value === undefined || !/^[0-9]+$/.test(value)) throw invalid('invalid content-length header');
    seen.contentLength = true;
  } else if (name === 'transfer-encoding' || name === 'keep-alive' || name === 'upgrade') {
    throw invalid(`invalid ${name} header`);
  } else if (name === 'connection') {
    if (value === undefined) throw invalid('invalid connection header');
    for (const token of value.toLowerCase().split(',')) {
      if (!isValidHTTPToken(token.trim())) throw invalid('invalid connection header');
    }
  } else if (name === 'expect') {
    throw new undiciErrors.NotSupportedError('expect header not supported');
  }
  return true;
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
  const u = undiciChecks();
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
