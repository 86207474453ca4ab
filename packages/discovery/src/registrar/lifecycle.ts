/**
 * Graceful shutdown for a self-registered instance: on SIGTERM/SIGINT, take it out of rotation
 * (mark unhealthy, deregister), keep serving in-flight and late requests for a drain period,
 * then run `onDrained` and exit.
 */
import {
  type Clock,
  type Disposable,
  type Logger,
  noopLogger,
  type RegisteredInstance,
  systemClock,
} from '@proxyless/core';

/** The part of `process` this module uses (inject a fake in tests). */
export interface SignalSource {
  on(event: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
  removeListener(event: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
}

/** Options of {@link manageSignals}. */
export interface ManageSignalsOptions {
  /** How long to keep serving after deregistering, in ms (clients' watches need time to notice). */
  drainMs: number;
  /** @defaultValue ['SIGTERM', 'SIGINT'] */
  signals?: NodeJS.Signals[];
  /** Runs after the drain period (close servers, flush telemetry); a promise it returns is awaited. A throw exits with code 1. */
  onDrained?: () => unknown;
  /** @defaultValue `process.exit` */
  exit?: (code: number) => void;
  /** @defaultValue the global `process` */
  process?: SignalSource;
  clock?: Clock;
  logger?: Logger;
}

/**
 * Install signal handlers that drain `instance` before exiting:
 * `markUnhealthy` → `deregister` → wait `drainMs` → `onDrained` → `exit(0)`.
 * Registry failures are logged and do not stop the shutdown. A second signal during the drain
 * exits at once with code 1. Dispose the result to remove the handlers.
 */
export function manageSignals(instance: RegisteredInstance, options: ManageSignalsOptions): Disposable {
  if (!Number.isFinite(options.drainMs) || options.drainMs < 0) {
    throw new RangeError(`manageSignals: drainMs must be a number ≥ 0, got ${String(options.drainMs)}`);
  }
  const source: SignalSource = options.process ?? process;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? noopLogger;
  const signals = options.signals ?? ['SIGTERM', 'SIGINT'];
  let draining = false;
  let disposed = false;

  const step = async (what: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (error) {
      logger.warn(`shutdown: ${what} failed`, { id: instance.id, error });
    }
  };

  const handler = (signal: NodeJS.Signals): void => {
    if (disposed) return;
    if (draining) {
      logger.warn('shutdown: second signal, exiting now', { signal });
      exit(1);
      return;
    }
    draining = true;
    logger.info('shutdown: draining', { signal, id: instance.id, drainMs: options.drainMs });
    void (async () => {
      await step('markUnhealthy', () => instance.markUnhealthy(`shutting down (${signal})`));
      await step('deregister', () => instance.deregister());
      await clock.sleep(options.drainMs);
      try {
        await options.onDrained?.();
      } catch (error) {
        logger.error('shutdown: onDrained failed', { error });
        exit(1);
        return;
      }
      exit(0);
    })();
  };

  for (const s of signals) source.on(s, handler);
  return {
    dispose(): void {
      if (disposed) return;
      disposed = true;
      for (const s of signals) source.removeListener(s, handler);
    },
  };
}
