/// <reference path="./prom-client-lib.d.ts" />
/**
 * The four parts of prom-client the mesh uses, each loaded from its own file (through
 * `prom-parts.cjs`: why, see there).
 *
 * prom-client's entry also loads the Summary (with tdigest and bintrees), the Pushgateway, the
 * cluster aggregator and the default process metrics, which bring in `@opentelemetry/api`: 81
 * modules where these need 8 (measured with prom-client 15.1.3; test/bench/cold-start.ts). They
 * are the same files the entry loads, so `register` here IS `require('prom-client').register`
 * (the module cache holds one instance per file): metrics registered through them appear in the
 * application's own global registry, and `metrics.registry` accepts any prom-client `Registry`.
 * prom-client has no `exports` map, so Node and bundlers resolve these paths; prom.test.ts checks
 * they still name what the entry exports.
 */
import type * as PromClient from 'prom-client';
import parts from './prom-parts.cjs';

const {
  Counter: CounterClass,
  Gauge: GaugeClass,
  Histogram: HistogramClass,
  Registry: RegistryClass,
} = parts;

export const Registry: typeof PromClient.Registry = RegistryClass;
/** prom-client's global registry (`require('prom-client').register`). */
export const register: PromClient.Registry = RegistryClass.globalRegistry;
export const Counter: typeof PromClient.Counter = CounterClass;
export const Gauge: typeof PromClient.Gauge = GaugeClass;
export const Histogram: typeof PromClient.Histogram = HistogramClass;
