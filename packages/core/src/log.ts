import { type Channel, channel } from 'node:diagnostics_channel';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];

/** Structured fields of a log line. */
export type LogFields = Readonly<Record<string, unknown>>;

/** An injected logger. The mesh never writes to the console on its own. */
export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

const noop = (): void => undefined;
/** The default: says nothing. */
export const noopLogger: Logger = Object.freeze({ debug: noop, info: noop, warn: noop, error: noop });

const ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3, silent: 4 };

/** Wrap a logger so lines below `level` are dropped before any formatting work. */
export function filterLogger(logger: Logger, level: LogLevel): Logger {
  const min = ORDER[level];
  return {
    debug: min <= 0 ? (m, f) => logger.debug(m, f) : noop,
    info: min <= 1 ? (m, f) => logger.info(m, f) : noop,
    warn: min <= 2 ? (m, f) => logger.warn(m, f) : noop,
    error: min <= 3 ? (m, f) => logger.error(m, f) : noop,
  };
}

/**
 * A logger that never throws into the mesh: a line the application's logger fails to write (a full
 * disk, a closed stream, a bug) is lost, and the first such failure is reported once as a process
 * warning. The mesh logs from inside calls and config swaps, where a throw would leave a call
 * unsettled or a new config version neither applied nor rejected.
 */
export function safeLogger(logger: Logger): Logger {
  let warned = false;
  const call =
    (level: keyof Logger) =>
    (message: string, fields?: LogFields): void => {
      try {
        logger[level](message, fields);
      } catch (error) {
        if (warned) return;
        warned = true;
        try {
          process.emitWarning(
            `proxyless: the logger threw (${error instanceof Error ? error.message : String(error)}); its lines are lost`,
            { code: 'PROXYLESS_LOGGER_FAILED' },
          );
        } catch {
          // Nothing left to report to.
        }
      }
    };
  return { debug: call('debug'), info: call('info'), warn: call('warn'), error: call('error') };
}

/**
 * A logger that writes JSON lines to a stream (stderr by default). Only used when the
 * application asks for it (`createMesh({ logger: jsonLogger() })` or `MESH_LOG_LEVEL`).
 */
export function jsonLogger(write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const out = (level: string) => (message: string, fields?: LogFields) => {
    write(
      `${JSON.stringify({ time: new Date().toISOString(), level, msg: message, ...fields }, replacer)}\n`,
    );
  };
  return { debug: out('debug'), info: out('info'), warn: out('warn'), error: out('error') };
}

function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error)
    return { name: value.name, message: value.message, code: (value as { code?: unknown }).code };
  return value;
}

/** `proxyless:<area>:<event>` diagnostics channel; publishing costs nothing without subscribers. */
export function diagnosticsChannel(area: string, event: string): Channel {
  return channel(`proxyless:${area}:${event}`);
}
