/**
 * Stable error codes. Each is added in one documented line and never renamed:
 * callers branch on `code`, never on message text.
 */
export type MeshErrorCode =
  /** A config document, option or environment variable is invalid. `details` names field and value. */
  | 'MESH_CONFIG_INVALID'
  /** A known service has no usable endpoints; no network attempt was made. */
  | 'MESH_NO_ENDPOINTS'
  /** Every endpoint of the service is in TRANSIENT_FAILURE (connect failed); failed fast, nothing sent. */
  | 'MESH_NO_HEALTHY_ENDPOINTS'
  /** The host is not a mesh service and pass-through is disabled. */
  | 'MESH_UNKNOWN_SERVICE'
  /**
   * A timeout fired; `details.limit` says which: `overall`, `perTry`, `propagated` (the caller's
   * deadline), or `headers` (undici's `headersTimeout`, before the response head). A connect
   * timeout is `MESH_CONNECT_FAILED`. undici's `bodyTimeout` fires after the head, where every
   * error reaches the caller as undici raised it (`BodyTimeoutError`).
   */
  | 'MESH_TIMEOUT'
  /**
   * The mesh gave up an attempt of its own (a hedge that lost, a retried response dropped, an
   * attempt superseded); the caller does not see it. A caller's abort rejects with the signal's
   * reason, exactly as undici and fetch do.
   */
  | 'MESH_ABORTED'
  /** The circuit breaker for the destination is open. */
  | 'MESH_CIRCUIT_OPEN'
  /** A concurrency limit or its queue is full. */
  | 'MESH_CONCURRENCY_LIMIT'
  /** A rate limit rejected the request. */
  | 'MESH_RATE_LIMITED'
  /** A connection to the endpoint could not be made (refused, unreachable, connect timeout, TLS). */
  | 'MESH_CONNECT_FAILED'
  /**
   * The exchange failed after the connection was made and before the response head: a reset, a
   * connection closed, a response undici's parser refused (`HTTPParserError`: an invalid status line
   * or header). After the head, undici's own error reaches the caller.
   */
  | 'MESH_UPSTREAM_RESET'
  /**
   * Never raised; kept so the code stays in the union. When a retry is not allowed (body not
   * replayable, not idempotent, budget, …) the caller gets the last real response or error and a
   * `give_up` call event says why.
   * @deprecated Nothing raises it; branch on the `give_up` event's reason instead.
   */
  | 'MESH_RETRY_NOT_ALLOWED'
  /** A registry could not be reached or answered something unusable. */
  | 'MESH_REGISTRY_UNAVAILABLE'
  /** A registry answered a payload that failed validation. `details` names field and value. */
  | 'MESH_REGISTRY_PAYLOAD_INVALID'
  /** An injected fault aborted the request. */
  | 'MESH_FAULT_INJECTED'
  /** The mesh (or a component) is closed. */
  | 'MESH_CLOSED'
  /** An unexpected internal failure; `cause` keeps the original error. */
  | 'MESH_INTERNAL';

/** Every code, for documentation and tests. */
export const MESH_ERROR_CODES: readonly MeshErrorCode[] = Object.freeze([
  'MESH_CONFIG_INVALID',
  'MESH_NO_ENDPOINTS',
  'MESH_NO_HEALTHY_ENDPOINTS',
  'MESH_UNKNOWN_SERVICE',
  'MESH_TIMEOUT',
  'MESH_ABORTED',
  'MESH_CIRCUIT_OPEN',
  'MESH_CONCURRENCY_LIMIT',
  'MESH_RATE_LIMITED',
  'MESH_CONNECT_FAILED',
  'MESH_UPSTREAM_RESET',
  'MESH_RETRY_NOT_ALLOWED',
  'MESH_REGISTRY_UNAVAILABLE',
  'MESH_REGISTRY_PAYLOAD_INVALID',
  'MESH_FAULT_INJECTED',
  'MESH_CLOSED',
  'MESH_INTERNAL',
]);

/** One problem found while validating a document or a variable. */
export interface ConfigIssue {
  /** Dotted path (`services.payments.retry.maxRetries`) or variable name (`MESH_RETRIES`). */
  readonly field: string;
  /** The offending value, as given. */
  readonly value: unknown;
  /** What was expected, in words. */
  readonly expected: string;
  /**
   * The problem as a whole sentence, when it is not an "expected …, got …" (a config entry's rule
   * in Consul's words): messages print it instead.
   */
  readonly message?: string;
}

/** Structured data on a {@link MeshError}. */
export interface MeshErrorDetails {
  /**
   * For an endpoint's failures (`MESH_CONNECT_FAILED`, `MESH_UPSTREAM_RESET`, `MESH_TIMEOUT` with
   * `limit` `perTry` or `headers`): where the attempt was when it failed — `connect` (nothing sent),
   * `request` (sent or being sent, the response head still owed) — and whether any of the request
   * body may have reached the endpoint. Retry policies read these, never the message.
   */
  readonly phase?: 'connect' | 'request' | 'response';
  readonly bodySent?: boolean;
  /**
   * For `MESH_TIMEOUT`: which limit fired — `overall` (the `timeout`), `perTry`, `propagated` (the
   * caller's incoming deadline), `headers` / `body` (undici's `headersTimeout` / `bodyTimeout`),
   * `idle` (a route's `IdleTimeout`).
   */
  readonly limit?: 'overall' | 'perTry' | 'propagated' | 'headers' | 'body' | 'idle';
  /** For `MESH_TIMEOUT`: the limit that fired, in ms. */
  readonly timeoutMs?: number;
  /**
   * For `MESH_CIRCUIT_OPEN` while open: ms until the breaker half-opens; while half-open with its
   * trials out (`half_open_busy`): ms until another trial may go; for `MESH_RATE_LIMITED`: ms
   * until a token is due.
   */
  readonly retryAfterMs?: number;
  /** For `MESH_CIRCUIT_OPEN` while open: when it opened (mesh clock, ms). */
  readonly openedAt?: number;
  /** For `MESH_CIRCUIT_OPEN`: the breaker's state. */
  readonly state?: 'closed' | 'open' | 'half-open';
  /**
   * Why a call was refused: for `MESH_CIRCUIT_OPEN` `open`, `half_open_busy`, `maxRequests`,
   * `maxRetries`…; for the limits, their reason (`queue_full`…); for `MESH_REGISTRY_UNAVAILABLE`,
   * `access_denied` when the registry refused the credentials or what they may read (Consul's 401
   * and 403, etcd's failed authentication and denied permission).
   */
  readonly reason?: string;
  /** The threshold that was reached (`maxRequests`, a limit's size). */
  readonly max?: number;
  readonly field?: string;
  readonly value?: unknown;
  readonly service?: string;
  /**
   * For `MESH_NO_ENDPOINTS` / `MESH_NO_HEALTHY_ENDPOINTS` of a routing target that is a subset of
   * `service`: the target's ID (`v2.web.default.default.dc1`).
   */
  readonly target?: string;
  readonly endpoint?: string;
  readonly issues?: readonly ConfigIssue[];
  readonly [key: string]: unknown;
}

export interface MeshErrorOptions {
  cause?: unknown;
  details?: MeshErrorDetails;
}

const MARKER = Symbol.for('proxyless.error');

/**
 * The one error class of the mesh. `code` is stable; `cause` keeps the underlying error
 * (an undici `UND_ERR_*` error, a syscall error); `details` carries field/value/service.
 */
export class MeshError extends Error {
  readonly code: MeshErrorCode;
  readonly details: MeshErrorDetails;
  declare readonly [MARKER]: true;

  constructor(code: MeshErrorCode, message: string, options: MeshErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MeshError';
    this.code = code;
    this.details = options.details ?? {};
    Object.defineProperty(this, MARKER, { value: true });
  }

  /** True for any `MeshError` (from any copy of this package), optionally of the given code(s). */
  static is(error: unknown, code?: MeshErrorCode | readonly MeshErrorCode[]): error is MeshError {
    if (typeof error !== 'object' || error === null || (error as { [MARKER]?: unknown })[MARKER] !== true) {
      return false;
    }
    if (code === undefined) return true;
    const c = (error as MeshError).code;
    return typeof code === 'string' ? c === code : code.includes(c);
  }
}

/**
 * `error instanceof MeshError` holds for a `MeshError` of any copy of this class in the process:
 * `proxyless` carries its own (its entries bundle this package), and an application that also
 * imports `@proxyless/core` (a policy of its own) gets errors of both. A subclass keeps the
 * ordinary prototype test. Defined here, not in the class body: a class that names itself inside
 * its body is renamed by bundlers (`class _MeshError`), and its name is what `console.error` and
 * stack traces print.
 */
Object.defineProperty(MeshError, Symbol.hasInstance, {
  value: function hasInstance(this: unknown, value: unknown): boolean {
    if (this !== MeshError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return typeof value === 'object' && value !== null && (value as { [MARKER]?: unknown })[MARKER] === true;
  },
  configurable: true,
  writable: true,
});

/** Quote a value for an error message: strings in double quotes, others as JSON. */
export function quote(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === undefined) return 'undefined';
  if (typeof value === 'bigint') return `${value}n`;
  // JSON would print NaN and ±Infinity as null.
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  try {
    const s = JSON.stringify(value);
    return s.length > 120 ? `${s.slice(0, 117)}...` : s;
  } catch {
    return String(value);
  }
}

/** Build a `MESH_CONFIG_INVALID` error for a single field. */
export function configError(field: string, expected: string, value: unknown): MeshError {
  return new MeshError('MESH_CONFIG_INVALID', `${field}: expected ${expected}, got ${quote(value)}`, {
    details: { field, value, issues: [{ field, value, expected }] },
  });
}
