import type { Counter as CounterType, Gauge as GaugeType, Registry } from 'prom-client';
import { FastCounter, FastHistogram, isFastMetric } from './fast-metrics.js';
import { Counter, Gauge } from './prom.js';

/** The mesh's Prometheus instruments, by the name the recorder uses. */
export interface Instruments {
  readonly clientDuration: FastHistogram;
  readonly serverDuration: FastHistogram;
  readonly attempts: FastCounter;
  readonly retries: FastCounter;
  readonly budgetExhausted: CounterType<string>;
  readonly ejections: CounterType<string>;
  readonly breaker: GaugeType<string>;
  readonly endpoints: GaugeType<string>;
  readonly panic: GaugeType<string>;
  readonly stale: GaugeType<string>;
  readonly staleness: GaugeType<string>;
  readonly resolverErrors: CounterType<string>;
  readonly configVersion: GaugeType<string>;
  readonly configRejected: CounterType<string>;
  readonly configSourceErrors: CounterType<string>;
}

/**
 * Declare the mesh's instruments on `registry`, or take those a mesh sharing the registry declared
 * before (a second mesh records into the same series). `collectStaleness` runs on each scrape of
 * `mesh_resolver_staleness_seconds`.
 */
export function declareInstruments(
  registry: Registry,
  durationBuckets: readonly number[],
  collectStaleness: () => void,
): Instruments {
  const buckets = [...durationBuckets];
  const reg = [registry];
  const histogram = (name: string, help: string, labelNames: string[]): FastHistogram => {
    const found = registry.getSingleMetric(name);
    if (isFastMetric(found)) return found as FastHistogram;
    const h = new FastHistogram({ name, help, labelNames, buckets });
    registry.registerMetric(h);
    return h;
  };
  const fastCounter = (name: string, help: string, labelNames: string[]): FastCounter => {
    const found = registry.getSingleMetric(name);
    if (isFastMetric(found)) return found as FastCounter;
    const c = new FastCounter({ name, help, labelNames });
    registry.registerMetric(c);
    return c;
  };
  const counter = (name: string, help: string, labelNames: string[]): CounterType<string> =>
    (registry.getSingleMetric(name) as CounterType<string> | undefined) ??
    ownLabelsOnly(new Counter({ name, help, labelNames, registers: reg }));
  const gauge = (name: string, help: string, labelNames: string[], collect?: () => void): GaugeType<string> =>
    (registry.getSingleMetric(name) as GaugeType<string> | undefined) ??
    ownLabelsOnly(new Gauge({ name, help, labelNames, registers: reg, ...(collect ? { collect } : {}) }));

  const clientDuration = histogram(
    'http_client_request_duration_seconds',
    'Duration of logical HTTP client requests through the mesh, until the response body ended or failed.',
    ['http_request_method', 'http_response_status_code', 'server_address', 'error_type'],
  );
  const serverDuration = histogram(
    'http_server_request_duration_seconds',
    'Duration of inbound HTTP requests, until the response finished.',
    ['http_request_method', 'http_response_status_code', 'error_type'],
  );
  const attempts = fastCounter(
    'mesh_attempts_total',
    'Physical attempts (tries, retries, hedges) by endpoint and outcome.',
    ['service', 'endpoint', 'outcome'],
  );
  const retries = fastCounter('mesh_retries_total', 'Retries by the condition that caused them.', [
    'service',
    'reason',
  ]);
  const budgetExhausted = counter(
    'mesh_retry_budget_exhausted_total',
    'Retries not made because the retry budget was spent.',
    ['service'],
  );
  const ejections = counter('mesh_ejections_total', 'Outlier-detection ejections by reason.', [
    'service',
    'reason',
  ]);
  const breaker = gauge(
    'mesh_circuit_breaker_state',
    'Circuit-breaker state per destination (1 = current); target: a routing subset of the service.',
    ['service', 'target', 'state'],
  );
  const endpoints = gauge('mesh_endpoints', 'Endpoints per service by state.', ['service', 'state']);
  const panic = gauge(
    'mesh_panic_mode',
    '1 while the balancer is in panic mode (using every endpoint); target: a routing subset of the service.',
    ['service', 'target'],
  );
  const stale = gauge('mesh_resolver_stale', '1 while the endpoint set is the last known good one.', [
    'service',
  ]);
  const staleness = gauge(
    'mesh_resolver_staleness_seconds',
    'Seconds the endpoint set has been stale (last known good, registry unreachable); 0 when fresh.',
    ['service'],
    collectStaleness,
  );
  const resolverErrors = counter('mesh_resolver_errors_total', 'Failed resolver refreshes.', ['service']);
  const configVersion = gauge(
    'mesh_config_version',
    "Version of the configuration in force, per source (file: its own count; etcd: revision; consul: X-Consul-Index of each service's discovery chain).",
    ['source', 'service'],
  );
  const configRejected = counter(
    'mesh_config_rejected_total',
    'Configuration versions rejected as invalid, per source.',
    ['source'],
  );
  const configSourceErrors = counter(
    'mesh_config_source_errors_total',
    'Failed reads of a source of config entries (etcd unreachable, a failed Consul discovery-chain fetch); the last good version stays.',
    ['source'],
  );
  return {
    clientDuration,
    serverDuration,
    attempts,
    retries,
    budgetExhausted,
    ejections,
    breaker,
    endpoints,
    panic,
    stale,
    staleness,
    resolverErrors,
    configVersion,
    configRejected,
    configSourceErrors,
  };
}

/** The methods of prom-client's counters and gauges that take a labels object first. */
const LABELLED = ['inc', 'dec', 'set', 'remove', 'labels'] as const;

/**
 * A counter or gauge whose labels objects reach prom-client as null-prototype copies of their own
 * properties: prom-client checks labels with a `for…in`, so an enumerable property someone added
 * to `Object.prototype` would otherwise be an unknown label, thrown into the call that fired the
 * event. (The hot-path series, `FastHistogram` and `FastCounter`, read labels by name.)
 */
function ownLabelsOnly<T extends CounterType<string> | GaugeType<string>>(metric: T): T {
  const m = metric as unknown as Record<string, unknown>;
  for (const name of LABELLED) {
    const method = m[name];
    if (typeof method !== 'function') continue;
    m[name] = function (this: unknown, first?: unknown, ...rest: unknown[]): unknown {
      return (method as (...a: unknown[]) => unknown).call(
        metric,
        typeof first === 'object' && first !== null ? ownProperties(first) : first,
        ...rest,
      );
    };
  }
  return metric;
}

function ownProperties(labels: object): Record<string, unknown> {
  const out = Object.create(null) as Record<string, unknown>;
  for (const k of Object.keys(labels)) out[k] = (labels as Record<string, unknown>)[k];
  return out;
}
