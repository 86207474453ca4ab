/**
 * `proxyless/otel`: start an OpenTelemetry SDK (trace provider + OTLP exporter) from the standard
 * `OTEL_*` variables, for services that have no SDK of their own. Import it first thing.
 */
export {
  type ExportResultLike,
  type OtelHandle,
  type OtelOptions,
  type SpanExporterLike,
  startOtel,
  type TracerProviderLike,
} from '@proxyless/telemetry/otel';
