/**
 * `@proxyless/telemetry/otel`: an OpenTelemetry tracing SDK configured from the standard `OTEL_*`
 * variables, for services that have no SDK of their own. Import it first thing:
 *
 * ```ts
 * import { startOtel } from '@proxyless/telemetry/otel';
 * const otel = startOtel(); // OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT, …
 * process.on('SIGTERM', () => otel.shutdown());
 * ```
 */

import { OTLPTraceExporter as OtlpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OtlpProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { type Env, envString, Issues, parseBoolean, parseInteger } from '@proxyless/core';

/** Options of {@link startOtel}. */
export interface OtelOptions {
  /** @defaultValue `process.env` */
  env?: Env;
  /** Overrides `OTEL_SERVICE_NAME`. */
  serviceName?: string;
  /** Export here instead of OTLP (tests, a custom backend). */
  exporter?: SpanExporter;
  /** Register as the global tracer provider, propagator and context manager. @defaultValue true */
  register?: boolean;
}

/** A started SDK. */
export interface OtelHandle {
  /** Undefined when `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. */
  readonly provider: NodeTracerProvider | undefined;
  /** Export what is buffered. */
  forceFlush(): Promise<void>;
  /** Flush and stop. Idempotent: every call gets the same promise. */
  shutdown(): Promise<void>;
}

/**
 * Start `@opentelemetry/sdk-trace-node` with a batch span processor and an OTLP/HTTP exporter,
 * configured from `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_EXPORTER`
 * (`otlp` | `none`), `OTEL_EXPORTER_OTLP[_TRACES]_ENDPOINT`, `…_PROTOCOL` (`http/protobuf` |
 * `http/json`), `…_HEADERS`, `…_TIMEOUT` and `OTEL_SDK_DISABLED`. The SDK itself reads
 * `OTEL_TRACES_SAMPLER[_ARG]` and `OTEL_BSP_*` from `process.env`.
 *
 * @throws MeshError `MESH_CONFIG_INVALID` naming each invalid variable and its value.
 */
export function startOtel(options: OtelOptions = {}): OtelHandle {
  const env = options.env ?? process.env;
  const issues = new Issues();
  const disabledRaw = envString(env, 'OTEL_SDK_DISABLED');
  const disabled =
    disabledRaw !== undefined && issues.try(() => parseBoolean(disabledRaw, 'OTEL_SDK_DISABLED')) === true;
  const exporterKind = envString(env, 'OTEL_TRACES_EXPORTER') ?? 'otlp';
  if (exporterKind !== 'otlp' && exporterKind !== 'none')
    issues.add('OTEL_TRACES_EXPORTER', '"otlp" or "none"', exporterKind);
  const protocol =
    envString(env, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ??
    envString(env, 'OTEL_EXPORTER_OTLP_PROTOCOL') ??
    'http/protobuf';
  if (protocol !== 'http/protobuf' && protocol !== 'http/json') {
    issues.add(
      'OTEL_EXPORTER_OTLP_PROTOCOL',
      '"http/protobuf" or "http/json" (grpc is not bundled)',
      protocol,
    );
  }
  const url = tracesUrl(env, issues);
  const headers = otlpHeaders(env, issues);
  const timeoutRaw =
    envString(env, 'OTEL_EXPORTER_OTLP_TRACES_TIMEOUT') ?? envString(env, 'OTEL_EXPORTER_OTLP_TIMEOUT');
  const timeoutMillis =
    timeoutRaw === undefined
      ? undefined
      : issues.try(() => parseInteger(timeoutRaw, 'OTEL_EXPORTER_OTLP_TIMEOUT', { min: 1 }));
  const attributes = resourceAttributes(env, issues);
  issues.throwIfAny('OpenTelemetry environment');

  if (disabled || (exporterKind === 'none' && options.exporter === undefined)) {
    return { provider: undefined, forceFlush: () => Promise.resolve(), shutdown: () => Promise.resolve() };
  }
  const serviceName =
    options.serviceName ?? envString(env, 'OTEL_SERVICE_NAME') ?? attributes['service.name'];
  const exporterOptions = { url, headers, ...(timeoutMillis !== undefined ? { timeoutMillis } : {}) };
  const exporter =
    options.exporter ??
    (protocol === 'http/json'
      ? new OtlpJsonExporter(exporterOptions)
      : new OtlpProtoExporter(exporterOptions));
  const processors: SpanProcessor[] = [new BatchSpanProcessor(exporter)];
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({
      ...attributes,
      'service.name': serviceName ?? 'unknown_service:node',
    }),
    spanProcessors: processors,
  });
  if (options.register !== false) provider.register();
  let stopping: Promise<void> | undefined;
  return {
    provider,
    forceFlush: () => provider.forceFlush(),
    shutdown: () => {
      stopping ??= provider.shutdown();
      return stopping;
    },
  };
}

function tracesUrl(env: Env, issues: Issues): string {
  const signal = envString(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  const base = envString(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  const name = signal !== undefined ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' : 'OTEL_EXPORTER_OTLP_ENDPOINT';
  // The spec: a signal-specific endpoint is used as is; the base endpoint gets `/v1/traces`.
  const url =
    signal ??
    (base !== undefined ? `${base.replace(/\/+$/, '')}/v1/traces` : 'http://localhost:4318/v1/traces');
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') issues.add(name, 'an http(s) URL', signal ?? base);
  } catch {
    issues.add(name, 'an http(s) URL', signal ?? base);
  }
  return url;
}

/** `key1=value1,key2=value2`, values URL-encoded (the OTLP exporter spec). */
function otlpHeaders(env: Env, issues: Issues): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ['OTEL_EXPORTER_OTLP_HEADERS', 'OTEL_EXPORTER_OTLP_TRACES_HEADERS']) {
    for (const [k, v] of pairs(envString(env, name), name, issues)) out[k.toLowerCase()] = v;
  }
  return out;
}

function resourceAttributes(env: Env, issues: Issues): Record<string, string> {
  return Object.fromEntries(
    pairs(envString(env, 'OTEL_RESOURCE_ATTRIBUTES'), 'OTEL_RESOURCE_ATTRIBUTES', issues),
  );
}

function pairs(raw: string | undefined, name: string, issues: Issues): Array<[string, string]> {
  if (raw === undefined) return [];
  const out: Array<[string, string]> = [];
  for (const item of raw.split(',')) {
    if (item.trim() === '') continue;
    const eq = item.indexOf('=');
    if (eq <= 0) {
      issues.add(name, 'comma-separated key=value pairs', raw);
      return [];
    }
    try {
      out.push([decodeURIComponent(item.slice(0, eq).trim()), decodeURIComponent(item.slice(eq + 1).trim())]);
    } catch {
      issues.add(name, 'URL-encoded key=value pairs', raw);
      return [];
    }
  }
  return out;
}
