import type { TracerProvider } from '@opentelemetry/api';
import {
  type Clock,
  type Env,
  type Interceptor,
  type Logger,
  noopLogger,
  systemClock,
} from '@proxyless/core';
import type { Registry } from 'prom-client';
import { type AccessLogSink, checkAccessLogTarget, openAccessLog } from './access-log.js';
import { type AdminServer, type AdminServerOptions, createAdminServer } from './admin.js';
import { EjectionLog, type TelemetryDeps } from './call-recorder.js';
import { resolveTelemetryConfig, settingName, type TelemetryConfig } from './config.js';
import type { TelemetryEvent } from './events.js';
import { createAttemptInterceptor, createCallInterceptor } from './interceptors.js';
import { createMeshMetrics, type MeshMetrics } from './metrics.js';
import { TracerSource } from './otel-api.js';
import { register } from './prom.js';
import { createEventRing, type EventRing } from './views.js';

/** The package name and version spans are attributed to. */
export const INSTRUMENTATION_SCOPE = '@proxyless/telemetry';

/** Options of {@link createTelemetry}. */
export interface TelemetryOptions {
  /** The telemetry settings document (see `telemetrySection`); validated with `env` under it. @defaultValue `{}` */
  settings?: unknown;
  /** @defaultValue `{}` (the mesh passes its own `env`, usually `process.env`) */
  env?: Env;
  /** Where metrics go. @defaultValue prom-client's global `register` */
  registry?: Registry;
  /**
   * @defaultValue the global tracer provider, looked up once an SDK registers (until then every
   * span would be a no-op, and `@opentelemetry/api` is not even loaded)
   */
  tracerProvider?: TracerProvider;
  /** @defaultValue the system clock */
  clock?: Clock;
  /** Where access-log lines go, overriding `MESH_ACCESS_LOG` (tests, custom shipping). */
  accessLog?: AccessLogSink;
  /** Told of what telemetry cannot do at run time (the access-log file failing). @defaultValue no-op */
  logger?: Logger;
}

/** The data providers the mesh gives the admin server. */
export type AdminProviders = Pick<AdminServerOptions, 'services' | 'configDump' | 'ready'> &
  Partial<Pick<AdminServerOptions, 'events'>>;

/** Everything telemetry gives a mesh: two interceptors, an event sink and an admin server. */
export interface Telemetry extends AsyncDisposable {
  readonly config: TelemetryConfig;
  readonly registry: Registry;
  /** Undefined when `metrics.enabled` is false. */
  readonly metrics: MeshMetrics | undefined;
  /** The outermost stage of every destination. */
  readonly callInterceptor: Interceptor;
  /** The stage just above the pick stage. */
  readonly attemptInterceptor: Interceptor;
  /** Feed every mesh event here (metrics and the event history). */
  onMeshEvent(event: TelemetryEvent): void;
  /** The recent-event history (`/events`). */
  readonly events: EventRing;
  /**
   * Start the admin server when `admin.port` (`MESH_ADMIN_PORT`) is set; resolves `undefined`
   * otherwise. A second call returns the same server.
   *
   * @throws MeshError `MESH_CONFIG_INVALID` when the port cannot be bound.
   */
  startAdmin(providers: AdminProviders): Promise<AdminServer | undefined>;
  /** Close the admin server and the access-log file. Idempotent. */
  close(): Promise<void>;
}

/**
 * Build the mesh's telemetry from its settings (options over `MESH_*` variables).
 *
 * @throws MeshError `MESH_CONFIG_INVALID` listing every invalid setting by name and value, or
 * naming `MESH_ACCESS_LOG` when its file cannot be opened for append.
 * @example
 * const telemetry = createTelemetry({ env: process.env });
 * const stack = [telemetry.callInterceptor, retry, breaker, telemetry.attemptInterceptor, pick];
 * mesh.onEvent((e) => telemetry.onMeshEvent(e));
 */
export function createTelemetry(options: TelemetryOptions = {}): Telemetry {
  const config = resolveTelemetryConfig(options.settings ?? {}, options.env ?? {});
  const registry = options.registry ?? register;
  const clock = options.clock ?? systemClock;
  const metrics = config.metrics.enabled
    ? createMeshMetrics({ registry, clock, durationBuckets: config.metrics.durationBuckets })
    : undefined;
  const accessLog =
    options.accessLog ?? (config.accessLog ? openConfiguredLog(config.accessLog, options) : undefined);
  const tracing = config.tracing.enabled
    ? new TracerSource(INSTRUMENTATION_SCOPE, options.tracerProvider)
    : undefined;
  const ejections = tracing ? new EjectionLog() : undefined;
  const deps: TelemetryDeps = { tracing, metrics, accessLog, ...(ejections ? { ejections } : {}) };
  const events = createEventRing(config.admin.eventHistory, clock);
  let admin: Promise<AdminServer | undefined> | undefined;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      const a = await admin?.catch(() => undefined);
      await a?.close();
      await accessLog?.close();
    })();
    return closing;
  };
  return {
    config,
    registry,
    metrics,
    callInterceptor: createCallInterceptor(deps),
    attemptInterceptor: createAttemptInterceptor(deps),
    events,
    onMeshEvent(event) {
      metrics?.onMeshEvent(event);
      events.push(event);
      if (event.type === 'balancer' && event.event.type === 'eject' && event.event.endpoint !== undefined) {
        ejections?.record(event.service, event.event.endpoint, event.event.reason ?? '', clock.now());
      } else if (event.type === 'service_removed') ejections?.forget(event.service);
    },
    startAdmin(providers) {
      admin ??=
        config.admin.port === undefined
          ? Promise.resolve(undefined)
          : createAdminServer({
              registry,
              host: config.admin.host,
              port: config.admin.port,
              // The variables, or `telemetry.admin.*` when the options set them.
              fields: {
                host: settingName(options.settings ?? {}, 'telemetry.admin.host'),
                port: settingName(options.settings ?? {}, 'telemetry.admin.port'),
              },
              events: () => events.list(),
              ...providers,
            });
      return admin;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** The access-log file of the settings; its first write failure is logged, not dropped unseen. */
/**
 * Check the telemetry settings as {@link createTelemetry} does, starting and creating nothing (no
 * access-log file, no metrics): for a start that fails for another reason.
 *
 * @throws MeshError `MESH_CONFIG_INVALID`, as `createTelemetry` would.
 */
export function checkTelemetry(options: TelemetryOptions = {}): void {
  const config = resolveTelemetryConfig(options.settings ?? {}, options.env ?? {});
  if (options.accessLog === undefined && config.accessLog)
    checkAccessLogTarget(config.accessLog, {
      field: settingName(options.settings ?? {}, 'telemetry.accessLog'),
    });
}

function openConfiguredLog(path: string, options: TelemetryOptions): AccessLogSink {
  const logger = options.logger ?? noopLogger;
  return openAccessLog(path, {
    field: settingName(options.settings ?? {}, 'telemetry.accessLog'),
    onError: (error) =>
      logger.error('access log cannot be written; dropping access-log lines', { path, error }),
  });
}
