/**
 * How the pick stage tells an endpoint's failures (connect, exchange) from errors raised in the
 * client or caused by the caller, by undici's and Node's error codes.
 */

/**
 * Connect-phase failures: nothing reached the endpoint, so any request may be sent elsewhere.
 * Besides these, any error of the `connect` system call ({@link isConnectFailure}).
 */
const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_HAS_EXPIRED',
]);

/**
 * Errors undici raises in the client before anything reaches the endpoint, or that the caller
 * caused (an invalid option, a body whose length does not match its header). They go to the caller
 * as undici raised them and are never charged to the endpoint (#9.12).
 */
const LOCAL_CODES = new Set([
  'UND_ERR_INVALID_ARG',
  'UND_ERR_NOT_SUPPORTED',
  'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_ABORTED',
  'UND_ERR_ABORT',
  'UND_ERR_DESTROYED',
  'UND_ERR_CLOSED',
  'UND_ERR_RES_EXCEEDED_MAX_SIZE',
  'UND_ERR_HEADERS_OVERFLOW',
  // This process or host out of a resource: no socket could be made (Node reports these with
  // `syscall: 'connect'`). Charged to the endpoint, they took every endpoint out in turn and the
  // caller saw MESH_NO_HEALTHY_ENDPOINTS instead of the cause; another endpoint would fail alike.
  // (EADDRNOTAVAIL stays a connect failure: Linux's local ports run out per destination.)
  'EMFILE',
  'ENFILE',
  'ENOBUFS',
  'ENOMEM',
]);

/** Failures of the exchange with the endpoint (besides connect failures): the endpoint's doing. */
const EXCHANGE_CODES = new Set([
  'UND_ERR_SOCKET',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ECONNABORTED',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_INFO',
  'HTTPParserError',
]);

/**
 * Whether an error is a failure to connect: a code only a connect raises, a TLS handshake's, or
 * any error of the `connect` system call itself — Node's socket reports those with
 * `syscall: 'connect'` (`EINVAL` for a link-local IPv6 address without a zone, `ENETDOWN`,
 * `EPERM` or `EACCES` from a firewall, `EAFNOSUPPORT` without IPv6, …), and undici passes that
 * error on as it is. Raised while connecting, so nothing was sent.
 */
export function isConnectFailure(error: unknown, code: string): boolean {
  return (
    CONNECT_CODES.has(code) ||
    code.startsWith('ERR_TLS_') ||
    code.startsWith('ERR_SSL_') ||
    (code !== '' && (error as { syscall?: unknown }).syscall === 'connect')
  );
}

/** Whether an error is the endpoint's doing: a connect failure, or a failure of the exchange. */
export function isTransport(error: unknown, code: string): boolean {
  return isConnectFailure(error, code) || EXCHANGE_CODES.has(code) || code.startsWith('HPE_');
}

/** Whether undici raised the error in the client, or the caller caused it ({@link LOCAL_CODES}). */
export function isLocalCode(code: string): boolean {
  return LOCAL_CODES.has(code);
}

/**
 * undici's code for an error; for a response its parser refused (an invalid status line or header),
 * `HTTPParserError` by name: undici 7 leaves that error's `code` unset (it looks the llhttp error
 * number up in a map keyed by name), yet it is the endpoint's doing as much as a reset is.
 */
export function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  return (error as { name?: unknown } | null)?.name === 'HTTPParserError' ? 'HTTPParserError' : '';
}
