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

import { createRequire } from 'node:module';
import type { Tracer, TracerOptions, TracerProvider } from '@opentelemetry/api';
// The SDK's types are used inside this module only: none appears in an exported declaration, so
// that the types of `proxyless/otel` need no SDK package installed (they are optional peers).
import type { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import type { resourceFromAttributes } from '@opentelemetry/resources';
import type { BatchSpanProcessor, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import {
  type Env,
  envString,
  Issues,
  MeshError,
  parseBoolean,
  parseInteger,
  shownValue,
} from '@proxyless/core';

/** The SDK packages `startOtel` uses: optional peer dependencies, loaded when it starts one. */
export const OTEL_SDK_PACKAGES = [
  '@opentelemetry/sdk-trace-node',
  '@opentelemetry/sdk-trace-base',
  '@opentelemetry/resources',
  '@opentelemetry/exporter-trace-otlp-http',
  '@opentelemetry/exporter-trace-otlp-proto',
] as const;

/** What {@link startOtel} takes from the SDK packages (internal: its types are the SDK's). */
interface OtelSdk {
  NodeTracerProvider: typeof NodeTracerProvider;
  BatchSpanProcessor: typeof BatchSpanProcessor;
  resourceFromAttributes: typeof resourceFromAttributes;
  OtlpJsonExporter: typeof OTLPTraceExporter;
  OtlpProtoExporter: typeof OTLPTraceExporter;
}

/**
 * What {@link loadOtelSdk} returns: the SDK's classes and functions that {@link startOtel} uses,
 * untyped here so that this module's declarations reference no optional peer dependency.
 * @internal
 */
export type LoadedOtelSdk = Readonly<
  Record<
    | 'NodeTracerProvider'
    | 'BatchSpanProcessor'
    | 'resourceFromAttributes'
    | 'OtlpJsonExporter'
    | 'OtlpProtoExporter',
    unknown
  >
>;

/**
 * A span exporter, as {@link OtelOptions.exporter} takes it: a `SpanExporter` of
 * `@opentelemetry/sdk-trace-base` (such as its `InMemorySpanExporter`) is one. Declared here, so
 * that the types of this module need none of the SDK packages, which are optional peers.
 */
export interface SpanExporterLike {
  /** Export the finished spans (`ReadableSpan`s) and report the outcome (`ExportResult`). */
  export(spans: readonly unknown[], resultCallback: (result: ExportResultLike) => void): void;
  /** Export what is pending and stop. */
  shutdown(): Promise<void>;
  /** Export what is pending. */
  forceFlush?(): Promise<void>;
}

/** The outcome of {@link SpanExporterLike.export}: `ExportResult` of `@opentelemetry/core`. */
export interface ExportResultLike {
  /** `ExportResultCode`: 0 success, 1 failure. */
  code: number;
  error?: Error;
}

/**
 * The tracer provider {@link startOtel} started (a `NodeTracerProvider` of
 * `@opentelemetry/sdk-trace-node`), as the types of this module show it without that optional peer.
 */
export interface TracerProviderLike extends TracerProvider {
  /** A tracer of this provider, by instrumentation scope name and version. */
  getTracer(name: string, version?: string, options?: TracerOptions): Tracer;
  /** Export what is buffered. */
  forceFlush(): Promise<void>;
  /** Flush and stop. */
  shutdown(): Promise<void>;
}

function defaultLoad(name: string): unknown {
  // A bundle turned into CommonJS has no `import.meta.url`: Node's own `require` is there.
  const url = import.meta.url as string | undefined;
  const load = url ? createRequire(url) : typeof require === 'function' ? require : undefined;
  if (load === undefined) throw Object.assign(new Error(`cannot load ${name}`), { code: 'MODULE_NOT_FOUND' });
  return load(name);
}

/**
 * Load the SDK packages, when a tracer provider is to be started: missing ones are named together,
 * with the command that installs them (instead of Node's error for the first one, at import).
 * `load` is for tests.
 * @throws MeshError `MESH_CONFIG_INVALID` naming the packages not installed.
 * @internal
 */
export function loadOtelSdk(load: (name: string) => unknown = defaultLoad): LoadedOtelSdk {
  const missing: string[] = [];
  const mods = new Map<string, Record<string, unknown>>();
  for (const name of OTEL_SDK_PACKAGES) {
    try {
      mods.set(name, load(name) as Record<string, unknown>);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'MODULE_NOT_FOUND' && code !== 'ERR_MODULE_NOT_FOUND') throw error;
      missing.push(name);
    }
  }
  if (missing.length > 0) {
    throw new MeshError(
      'MESH_CONFIG_INVALID',
      `proxyless/otel starts the OpenTelemetry SDK, whose packages are optional peer dependencies; not installed: ${missing.join(', ')}. Install them with: npm install ${OTEL_SDK_PACKAGES.join(' ')}`,
      { details: { field: 'proxyless/otel', value: missing.join(', ') } },
    );
  }
  const of = (name: string, key: string): never => (mods.get(name) as Record<string, never>)[key] as never;
  const sdk: OtelSdk = {
    NodeTracerProvider: of('@opentelemetry/sdk-trace-node', 'NodeTracerProvider'),
    BatchSpanProcessor: of('@opentelemetry/sdk-trace-base', 'BatchSpanProcessor'),
    resourceFromAttributes: of('@opentelemetry/resources', 'resourceFromAttributes'),
    OtlpJsonExporter: of('@opentelemetry/exporter-trace-otlp-http', 'OTLPTraceExporter'),
    OtlpProtoExporter: of('@opentelemetry/exporter-trace-otlp-proto', 'OTLPTraceExporter'),
  };
  return sdk;
}

/** Options of {@link startOtel}. */
export interface OtelOptions {
  /** @defaultValue `process.env` */
  env?: Env;
  /** Overrides `OTEL_SERVICE_NAME`. */
  serviceName?: string;
  /** Export here instead of OTLP (tests, a custom backend). */
  exporter?: SpanExporterLike;
  /** Register as the global tracer provider, propagator and context manager. @defaultValue true */
  register?: boolean;
}

/** A started SDK. */
export interface OtelHandle {
  /** Undefined when `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. */
  readonly provider: TracerProviderLike | undefined;
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
  const sdk = loadOtelSdk() as OtelSdk;
  const serviceName =
    options.serviceName ?? envString(env, 'OTEL_SERVICE_NAME') ?? attributes['service.name'];
  const exporterOptions = { url, headers, ...(timeoutMillis !== undefined ? { timeoutMillis } : {}) };
  const exporter =
    options.exporter ??
    (protocol === 'http/json'
      ? new sdk.OtlpJsonExporter(exporterOptions)
      : new sdk.OtlpProtoExporter(exporterOptions));
  const processors: SpanProcessor[] = [new sdk.BatchSpanProcessor(exporter)];
  const provider = new sdk.NodeTracerProvider({
    resource: sdk.resourceFromAttributes({
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
  // Exporter headers hold API keys and bearer tokens: a bad item is named by its place, and the
  // value is never quoted back (its shape only).
  const shown = shownValue(name, raw);
  const items = raw.split(',');
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as string;
    if (item.trim() === '') continue;
    const eq = item.indexOf('=');
    if (eq <= 0) {
      issues.add(name, `comma-separated key=value pairs (item ${i + 1} has no key=)`, shown);
      return [];
    }
    try {
      out.push([decodeURIComponent(item.slice(0, eq).trim()), decodeURIComponent(item.slice(eq + 1).trim())]);
    } catch {
      issues.add(name, `URL-encoded key=value pairs (item ${i + 1} is not)`, shown);
      return [];
    }
  }
  return out;
}
