/**
 * `proxyless/otel`: start an OpenTelemetry SDK (trace provider + OTLP exporter) from the standard
 * `OTEL_*` variables, for services that have no SDK of their own. Import it first thing.
 */
export { type OtelHandle, type OtelOptions, startOtel } from '@proxyless/telemetry/otel';
