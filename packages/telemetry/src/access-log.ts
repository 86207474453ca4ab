import {
  accessSync,
  createWriteStream,
  constants as fsConstants,
  openSync,
  type Stats,
  statSync,
  type WriteStream,
} from 'node:fs';
import path from 'node:path';
import { diagnosticsChannel, MeshError, quote } from '@proxyless/core';
import { type CallEventLike, errorCode, giveUpCause } from './events.js';

/**
 * Envoy's response flags that apply to an in-process mesh
 * (https://www.envoyproxy.io/docs/envoy/latest/configuration/observability/access_log/usage#config-access-log-format-response-flags).
 */
export type ResponseFlag = 'UH' | 'UF' | 'UT' | 'URX' | 'UO' | 'DI' | 'FI' | 'RL' | 'UC' | 'DC';

/** What {@link responseFlags} looks at: the call's final error or status, and its events. */
export interface ResponseFlagsInput {
  /** The error the call failed with, if it did (a `MeshError`, or an undici/syscall error). */
  readonly error?: unknown;
  readonly status?: number;
  /** The call's events (`retry`, `give_up`, `fault`, `timeout`, `circuit_open`, `rejected`, …). */
  readonly events?: readonly CallEventLike[];
  /** The caller stopped the call (aborted it or destroyed the body): Envoy's `DC`. */
  readonly callerAborted?: boolean;
}

/** Error codes and the flag each stands for. */
const FLAG_OF_CODE: Readonly<Record<string, ResponseFlag>> = {
  MESH_NO_ENDPOINTS: 'UH',
  // Every endpoint in TRANSIENT_FAILURE: failed fast with nothing sent (the connectivity stage).
  MESH_NO_HEALTHY_ENDPOINTS: 'UH',
  MESH_CONNECT_FAILED: 'UF',
  MESH_TIMEOUT: 'UT',
  MESH_CIRCUIT_OPEN: 'UO',
  MESH_CONCURRENCY_LIMIT: 'UO',
  MESH_RATE_LIMITED: 'RL',
  MESH_FAULT_INJECTED: 'FI',
  MESH_UPSTREAM_RESET: 'UC',
  // Raw transport errors, for stages that pass undici's error through unchanged.
  ECONNREFUSED: 'UF',
  EHOSTUNREACH: 'UF',
  ENETUNREACH: 'UF',
  ENOTFOUND: 'UF',
  UND_ERR_CONNECT_TIMEOUT: 'UF',
  UND_ERR_HEADERS_TIMEOUT: 'UT',
  UND_ERR_BODY_TIMEOUT: 'UT',
  UND_ERR_SOCKET: 'UC',
  ECONNRESET: 'UC',
  EPIPE: 'UC',
  // The caller's abort (undici's `RequestAbortedError`, an `AbortSignal`'s `AbortError`).
  UND_ERR_ABORTED: 'DC',
  ABORT_ERR: 'DC',
};

const ORDER: readonly ResponseFlag[] = ['UH', 'UF', 'UO', 'UT', 'UC', 'DC', 'URX', 'RL', 'DI', 'FI'];

/**
 * Envoy response flags for one call, derived from its final error code and its events. Pure.
 *
 * - `UH` no usable endpoint (`MESH_NO_ENDPOINTS`); `UF` connection failure; `UT` a timeout
 *   (overall or per try); `UC` the connection ended mid-exchange (`MESH_UPSTREAM_RESET`).
 * - `URX`: at least one retry was made and the retry stage gave up at `max_retries`.
 * - `UO`: circuit open or a concurrency limit, and also a retry refused by the retry budget or the
 *   concurrent-retry limit — Envoy counts both among its circuit-breaker thresholds.
 * - `RL` rate limited; `DI` a delay was injected; `FI` an abort was injected.
 * - `DC`: the caller stopped the call (aborted it, or destroyed the response body).
 *
 * An earlier attempt's failure that a retry recovered from leaves no flag, as in Envoy, except
 * the fault flags, which describe the call.
 */
export function responseFlags(input: ResponseFlagsInput): ResponseFlag[] {
  const flags = new Set<ResponseFlag>();
  if (input.error !== undefined) {
    const code = errorCode(input.error);
    let flag = code === undefined ? undefined : FLAG_OF_CODE[code];
    if (flag === undefined) {
      const cause = errorCode((input.error as { cause?: unknown }).cause);
      flag = cause === undefined ? undefined : FLAG_OF_CODE[cause];
    }
    if (input.callerAborted) flag = 'DC';
    if (flag !== undefined) flags.add(flag);
  }
  let retried = false;
  for (const e of input.events ?? []) {
    switch (e.type) {
      case 'retry':
        retried = true;
        break;
      case 'give_up': {
        const cause = giveUpCause(e.reason);
        if (cause === 'max_retries' && retried) flags.add('URX');
        else if (cause === 'budget_exhausted' || cause === 'retry_overflow' || cause === 'circuit_open')
          flags.add('UO');
        break;
      }
      case 'fault':
        flags.add(e.reason === 'delay' ? 'DI' : 'FI');
        break;
      case 'circuit_open':
        if (input.error !== undefined) flags.add('UO');
        break;
      case 'rejected':
        if (input.error !== undefined) flags.add(e.code === 'MESH_RATE_LIMITED' ? 'RL' : 'UO');
        break;
      case 'timeout':
        if (input.error !== undefined) flags.add('UT');
        break;
    }
  }
  return ORDER.filter((f) => flags.has(f));
}

/** One access-log record: one logical request. Field names follow Envoy's JSON access logs. */
export interface AccessLogRecord {
  /** ISO 8601 wall-clock time the request started. */
  readonly start_time: string;
  readonly method: string;
  readonly path: string;
  /** The logical destination service, or for a service subset's routing target its ID. */
  readonly upstream_cluster: string;
  /** `address:port` of the endpoint that answered last, or `-`. */
  readonly upstream_host: string;
  /** 0 when no response arrived. */
  readonly response_code: number;
  /** Comma-separated {@link ResponseFlag}s, `-` when none (Envoy's format). */
  readonly response_flags: string;
  readonly duration_ms: number;
  /** Physical attempts made (1 + retries + hedges). */
  readonly attempts: number;
  /** The W3C trace id, when the call was sampled into a trace. */
  readonly trace_id: string;
  /** The error code the call failed with, else `-`. */
  readonly error_code: string;
}

/** Where access-log lines go. */
export interface AccessLogSink {
  write(line: string): void;
  /** Flush and release the file, if one was opened. Idempotent. */
  close(): Promise<void>;
}

/** Options of {@link openAccessLog}. */
export interface AccessLogOptions {
  /** The setting an unusable target is reported under. @defaultValue `'MESH_ACCESS_LOG'` */
  field?: string;
  /**
   * Called once, with the first error writing the file (disk full, file system gone); the lines
   * after it are dropped. The error is also published on `diagnostics_channel`
   * `proxyless:telemetry:access_log_error` as `{ path, error }`.
   * @defaultValue none
   */
  onError?: (error: Error) => void;
}

/** What the access log's write failures are published on (free without subscribers). */
const writeErrors = diagnosticsChannel('telemetry', 'access_log_error');

const EXPECTED = '`stdout`, `stderr` or a file path that can be opened for append';

/** Why a path cannot be opened, in the words of the setting rather than of the syscall. */
const OPEN_FAILURE: Readonly<Record<string, string>> = {
  ENOENT: 'its directory does not exist',
  ENOTDIR: 'a parent is not a directory',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'it is a directory',
  EROFS: 'read-only file system',
};

/**
 * Open the sink `MESH_ACCESS_LOG` names: `stdout`, `stderr` (either word in any case), or a file
 * path, appended to.
 *
 * @throws MeshError `MESH_CONFIG_INVALID` naming `options.field` and the path when the file cannot
 * be opened for append (no such directory, permission denied, a directory).
 * @example
 * const sink = openAccessLog(process.env.MESH_ACCESS_LOG ?? 'stdout');
 */
export function openAccessLog(target: string, options: AccessLogOptions = {}): AccessLogSink {
  // `MESH_ACCESS_LOG=STDOUT` once made a file named ./STDOUT. A file of that name is `./stdout`.
  const keyword = target.toLowerCase();
  if (keyword === 'stdout' || keyword === 'stderr') {
    const stream = keyword === 'stdout' ? process.stdout : process.stderr;
    return { write: (line) => void stream.write(line), close: () => Promise.resolve() };
  }
  let fd: number;
  try {
    // Opened here, synchronously: the stream would open it later and a failure would only drop
    // the lines, so a path that can never work is a configuration error at start instead.
    fd = openSync(target, 'a');
  } catch (error) {
    throw openError(target, options, error);
  }
  let file: WriteStream | undefined = createWriteStream(target, { fd, flags: 'a' });
  // A failing log file must not crash the service: the first error is reported, then the lines
  // are dropped (the stream destroys itself on error).
  file.on('error', (error) => {
    if (file === undefined) return;
    file = undefined;
    options.onError?.(error);
    if (writeErrors.hasSubscribers) writeErrors.publish({ path: target, error });
  });
  let closing: Promise<void> | undefined;
  return {
    write: (line) => void file?.write(line),
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        const f = file;
        if (f === undefined || f.closed) return resolve();
        // 'close' follows both a flushed end and a failed write (the stream destroys itself).
        f.once('close', () => resolve());
        f.end();
      });
      return closing;
    },
  };
}

/** One JSON line for a record, newline-terminated. */
export function formatAccessLogLine(record: AccessLogRecord): string {
  return `${JSON.stringify(record)}\n`;
}

function openError(target: string, options: AccessLogOptions, error: unknown): MeshError {
  const field = options.field ?? 'MESH_ACCESS_LOG';
  const code = (error as NodeJS.ErrnoException).code ?? '';
  const reason = OPEN_FAILURE[code] ? `${OPEN_FAILURE[code]}, ${code}` : (error as Error).message;
  // The reason stays with the problem when it is listed among others.
  const message = `expected ${EXPECTED}, got ${quote(target)} (${reason})`;
  return new MeshError('MESH_CONFIG_INVALID', `${field}: ${message}`, {
    cause: error,
    details: { field, value: target, issues: [{ field, expected: EXPECTED, value: target, message }] },
  });
}

/**
 * What {@link openAccessLog} would refuse, found without opening or creating anything: a start that
 * fails for another reason leaves no file behind. An existing file must be writable and not a
 * directory; a new one needs a writable directory.
 *
 * @throws MeshError `MESH_CONFIG_INVALID`, as `openAccessLog` would.
 */
export function checkAccessLogTarget(target: string, options: AccessLogOptions = {}): void {
  const keyword = target.toLowerCase();
  if (keyword === 'stdout' || keyword === 'stderr') return;
  try {
    let stat: Stats | undefined;
    try {
      stat = statSync(target);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (stat?.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    if (stat !== undefined) accessSync(target, fsConstants.W_OK);
    else {
      const dir = path.dirname(path.resolve(target));
      if (!statSync(dir).isDirectory())
        throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
      accessSync(dir, fsConstants.W_OK);
    }
  } catch (error) {
    throw openError(target, options, error);
  }
}
