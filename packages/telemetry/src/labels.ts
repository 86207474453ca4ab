/**
 * Label values with a bounded set of values: every label telemetry writes goes through one of
 * these, so the number of series cannot grow with traffic (a scanner sending random methods, a
 * registry with thousands of instances). Values past the limit are folded into {@link OTHER}.
 */

/** The value that stands for every value past a limit (OpenTelemetry's word for methods). */
export const OTHER = '_OTHER';

/** The HTTP methods semconv names; any other method is recorded as `_OTHER`. */
const KNOWN_METHODS = new Set([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
  'PATCH',
  'QUERY',
]);

/** `http.request.method` as semconv bounds it: a known method (case-sensitive) or `_OTHER`. */
export function methodLabel(method: string): string {
  return KNOWN_METHODS.has(method) ? method : OTHER;
}

/** `http.response.status_code` as a label: the status when it is a valid HTTP status, else empty. */
export function statusLabel(status: number | undefined): string {
  return status !== undefined && Number.isInteger(status) && status >= 100 && status <= 599
    ? String(status)
    : '';
}

/**
 * The code of a call the caller stopped (aborted its signal or destroyed the response body) when
 * the abort reason has no code of its own: undici's own code for a caller's abort.
 */
export const CALLER_ABORTED = 'UND_ERR_ABORTED';

/**
 * The stable code of a call's error: the error's own code, else {@link CALLER_ABORTED} when the
 * caller stopped the call (its reason is often a bare `Error('aborted')`), else undefined.
 */
export function callErrorCode(code: string | undefined, callerAborted: boolean): string | undefined {
  return code ?? (callerAborted ? CALLER_ABORTED : undefined);
}

const CODE_SHAPE = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;

/**
 * `error.type` per the HTTP semconv: the error's stable code (a `MeshError` code, undici's
 * `UND_ERR_*`, a syscall code) when the exchange failed, else the status code when it is an
 * error status (semconv: ≥ 400 for a client, ≥ 500 for a server), else empty. Codes of an
 * unexpected shape are `_OTHER`.
 */
export function errorTypeLabel(
  code: string | undefined,
  failed: boolean,
  status: number | undefined,
  errorFrom = 400,
): string {
  if (failed) return code !== undefined && CODE_SHAPE.test(code) ? code : OTHER;
  if (status !== undefined && status >= errorFrom && status <= 599) return String(status);
  return '';
}

/** A set of at most `limit` distinct values; `bound(v)` returns `v` or {@link OTHER}. */
export class BoundedValues {
  readonly #seen = new Set<string>();
  readonly #limit: number;

  constructor(limit: number) {
    this.#limit = limit;
  }

  bound(value: string): string {
    if (this.#seen.has(value)) return value;
    if (this.#seen.size >= this.#limit) return OTHER;
    this.#seen.add(value);
    return value;
  }

  get size(): number {
    return this.#seen.size;
  }

  has(value: string): boolean {
    return this.#seen.has(value);
  }

  /** The values kept so far. */
  values(): IterableIterator<string> {
    return this.#seen.values();
  }

  delete(value: string): void {
    this.#seen.delete(value);
  }
}
