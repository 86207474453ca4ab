import { diag, propagation } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { afterEach, describe, expect, it } from 'vitest';
import { otelApi } from './otel-api.js';

afterEach(() => {
  propagation.disable();
  diag.disable();
});

describe('otelApi: the OpenTelemetry API only once it can matter', () => {
  it('is undefined while nothing is registered, even with a diag logger set', () => {
    expect(otelApi()).toBeUndefined();
    diag.setLogger({ error() {}, warn() {}, info() {}, debug() {}, verbose() {} });
    expect(otelApi()).toBeUndefined();
  });

  it('loads once a propagator (or tracer provider, or context manager) is registered', () => {
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    const api = otelApi();
    expect(api?.propagation.fields()).toEqual(['traceparent', 'tracestate']);
    // Loaded stays loaded: the per-call check is then one variable read.
    propagation.disable();
    expect(otelApi()).toBe(api);
  });
});
