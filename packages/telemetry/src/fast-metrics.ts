import type { LabelValues, MetricObjectWithValues, MetricValue } from 'prom-client';
import { Counter, Histogram } from './prom.js';

/**
 * prom-client metrics with a hot path that costs an addition. prom-client validates the labels,
 * builds a hash string and looks it up on every `observe`/`inc` (≈ 1 µs each, measured with
 * prom-client 15), which alone would spend the mesh's per-request telemetry budget. These
 * subclasses hand out a {@link SeriesHandle} per label set, resolved once and cached by the
 * caller, and answer `get()` (what the registry scrapes) from their own accumulators. They are
 * real prom-client `Histogram`/`Counter` instances: registries, `getSingleMetric`, `reset` and
 * the public `observe`/`inc` work as usual.
 */

/** One histogram series. */
export interface HistogramHandle {
  observe(value: number): void;
}

/** One counter series. */
export interface CounterHandle {
  inc(by?: number): void;
}

interface HistogramSeries extends HistogramHandle {
  readonly labels: Record<string, string>;
  readonly buckets: Float64Array;
  sum: number;
  count: number;
}

interface CounterSeries extends CounterHandle {
  readonly labels: Record<string, string>;
  value: number;
}

const FAST = Symbol.for('proxyless.telemetry.fastMetric');

/** Whether a registered metric is one of these (so a second mesh reuses it). */
export function isFastMetric(metric: unknown): boolean {
  return typeof metric === 'object' && metric !== null && (metric as { [FAST]?: boolean })[FAST] === true;
}

function keyOf(names: readonly string[], labels: Readonly<Record<string, string | number>>): string {
  let key = '';
  for (const n of names) key += `${labels[n] ?? ''}\u0000`;
  return key;
}

/** A histogram whose series are handles. */
export class FastHistogram extends Histogram<string> {
  readonly [FAST] = true;
  readonly #name: string;
  readonly #help: string;
  readonly #names: readonly string[];
  readonly #bounds: readonly number[];
  // Set by `reset()`, which prom-client's constructor calls before subclass fields exist.
  declare private series: Map<string, HistogramSeries>;

  constructor(config: { name: string; help: string; labelNames: string[]; buckets: number[] }) {
    super({ ...config, registers: [] });
    this.#name = config.name;
    this.#help = config.help;
    this.#names = [...config.labelNames];
    this.#bounds = [...config.buckets].sort((a, b) => a - b);
    // prom-client's constructor assigns `observe` on the instance; put ours back.
    this.observe = FastHistogram.prototype.observe;
  }

  /** The series for a label set (every label name given), created on first use. */
  handle(labels: Readonly<Record<string, string>>): HistogramHandle {
    const key = keyOf(this.#names, labels);
    let s = this.series.get(key);
    if (s === undefined) {
      const bounds = this.#bounds;
      const buckets = new Float64Array(bounds.length);
      const series: HistogramSeries = {
        labels: { ...labels },
        buckets,
        sum: 0,
        count: 0,
        observe(value: number) {
          if (!Number.isFinite(value)) return;
          series.sum += value;
          series.count++;
          // Non-cumulative here; cumulated when scraped.
          for (let i = 0; i < bounds.length; i++) {
            if (value <= bounds[i]!) {
              buckets[i]!++;
              return;
            }
          }
        },
      };
      s = series;
      this.series.set(key, s);
    }
    return s;
  }

  override observe(...args: unknown[]): void {
    const [a, b] = args as [
      LabelValues<string> | number | { labels?: LabelValues<string>; value: number },
      number?,
    ];
    if (typeof a === 'number') this.handle({}).observe(a);
    else if (b !== undefined) this.handle(stringLabels(a as LabelValues<string>)).observe(b);
    else {
      const d = a as { labels?: LabelValues<string>; value: number };
      this.handle(stringLabels(d.labels ?? {})).observe(d.value);
    }
  }

  override reset(): void {
    this.series = new Map();
  }

  override remove(...args: Array<string | number | LabelValues<string>>): void {
    const first = args[0];
    const labels =
      typeof first === 'object'
        ? stringLabels(first)
        : Object.fromEntries(this.#names.map((n, i) => [n, String(args[i])]));
    this.series.delete(keyOf(this.#names, labels));
  }

  /** Remove every series whose label `name` is `value` (a service's, when it is removed). */
  removeWhere(name: string, value: string): void {
    for (const [key, s] of this.series) if (s.labels[name] === value) this.series.delete(key);
  }

  /** prom-client's registry formats histograms from this, when present. */
  getForPromString(): Promise<MetricObjectWithValues<MetricValue<string>>> {
    return this.get();
  }

  override async get(): Promise<MetricObjectWithValues<MetricValue<string>>> {
    const values: Array<MetricValue<string> & { metricName: string }> = [];
    for (const s of this.series.values()) {
      let acc = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        acc += s.buckets[i]!;
        values.push({
          labels: { le: this.#bounds[i]!, ...s.labels },
          value: acc,
          metricName: `${this.#name}_bucket`,
        });
      }
      values.push({
        labels: { le: '+Inf', ...s.labels },
        value: s.count,
        metricName: `${this.#name}_bucket`,
      });
      values.push({ labels: s.labels, value: s.sum, metricName: `${this.#name}_sum` });
      values.push({ labels: s.labels, value: s.count, metricName: `${this.#name}_count` });
    }
    return metricObject(this.#name, this.#help, 'histogram', values);
  }
}

/** A counter whose series are handles. */
export class FastCounter extends Counter<string> {
  readonly [FAST] = true;
  readonly #name: string;
  readonly #help: string;
  readonly #names: readonly string[];
  declare private series: Map<string, CounterSeries>;

  constructor(config: { name: string; help: string; labelNames: string[] }) {
    super({ ...config, registers: [] });
    this.#name = config.name;
    this.#help = config.help;
    this.#names = [...config.labelNames];
    // prom-client's constructor assigns `inc` on the instance; put ours back.
    this.inc = FastCounter.prototype.inc;
  }

  handle(labels: Readonly<Record<string, string>>): CounterHandle {
    const key = keyOf(this.#names, labels);
    let s = this.series.get(key);
    if (s === undefined) {
      const series: CounterSeries = {
        labels: { ...labels },
        value: 0,
        inc(by = 1) {
          if (by >= 0) series.value += by;
        },
      };
      s = series;
      this.series.set(key, s);
    }
    return s;
  }

  override inc(...args: unknown[]): void {
    const [a, b] = args as [LabelValues<string> | number | undefined, number?];
    if (a === undefined || typeof a === 'number') this.handle({}).inc(a ?? 1);
    else this.handle(stringLabels(a)).inc(b ?? 1);
  }

  override reset(): void {
    this.series = new Map();
  }

  override remove(...args: Array<string | number | LabelValues<string>>): void {
    const first = args[0];
    const labels =
      typeof first === 'object'
        ? stringLabels(first)
        : Object.fromEntries(this.#names.map((n, i) => [n, String(args[i])]));
    this.series.delete(keyOf(this.#names, labels));
  }

  /** Remove every series whose label `name` is `value` (a service's, when it is removed). */
  removeWhere(name: string, value: string): void {
    for (const [key, s] of this.series) if (s.labels[name] === value) this.series.delete(key);
  }

  override async get(): Promise<MetricObjectWithValues<MetricValue<string>>> {
    const values: Array<MetricValue<string>> = [];
    for (const s of this.series.values()) values.push({ labels: s.labels, value: s.value });
    return metricObject(this.#name, this.#help, 'counter', values);
  }
}

function stringLabels(labels: LabelValues<string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) if (v !== undefined) out[k] = String(v);
  return out;
}

function metricObject(
  name: string,
  help: string,
  type: 'histogram' | 'counter',
  values: Array<MetricValue<string>>,
): MetricObjectWithValues<MetricValue<string>> {
  // prom-client's own `get()` answers these five fields (its type declares `collect` too).
  return { name, help, type, values, aggregator: 'sum' } as unknown as MetricObjectWithValues<
    MetricValue<string>
  >;
}
