/** The types of `prom-parts.cjs`: prom-client's files, typed as in `prom-client-lib.d.ts`. */
import type Counter from 'prom-client/lib/counter.js';
import type Gauge from 'prom-client/lib/gauge.js';
import type Histogram from 'prom-client/lib/histogram.js';
import type Registry from 'prom-client/lib/registry.js';

declare const parts: {
  readonly Counter: typeof Counter;
  readonly Gauge: typeof Gauge;
  readonly Histogram: typeof Histogram;
  readonly Registry: typeof Registry;
};
export = parts;
