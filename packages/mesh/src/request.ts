import {
  type DispatchHeaders,
  hasHeader,
  headerRecord,
  isIdempotentMethod,
  type MeshRequest,
  type RequestBody,
  type RequestHeaders,
} from '@proxyless/core';
import type { Dispatcher } from 'undici';

/**
 * A request header the caller may set to declare a non-idempotent request safe to retry; it is
 * removed before the request leaves. Requests carrying an `Idempotency-Key` header
 * (draft-ietf-httpapi-idempotency-key-header) are treated as idempotent too.
 */
export const IDEMPOTENT_HEADER = 'x-mesh-idempotent';

const STANDARD = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT']);

/** The method as undici and fetch normalise it: only the six standard methods are upper-cased. */
export function normalizeMethod(method: string): string {
  if (STANDARD.has(method)) return method;
  const upper = method.toUpperCase();
  return STANDARD.has(upper) ? upper : method;
}

function isBytes(body: unknown): boolean {
  return (
    body == null || typeof body === 'string' || body instanceof Uint8Array || body instanceof ArrayBuffer
  );
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
    if (this.#idempotent === undefined) {
      let declared = this.#declared;
      const flag = this.headers[IDEMPOTENT_HEADER];
      if (declared === undefined && flag !== undefined) {
        const v = String(Array.isArray(flag) ? flag[0] : flag).toLowerCase();
        declared = v === 'true' || v === '1';
      }
      this.#idempotent =
        declared ?? (isIdempotentMethod(this.method) || this.headers['idempotency-key'] !== undefined);
    }
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
