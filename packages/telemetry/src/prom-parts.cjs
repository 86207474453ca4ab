'use strict';
/**
 * The four files of prom-client `prom.ts` uses, required by one CommonJS file: Node resolves each
 * CommonJS module an ES module imports with its ES resolver and scans its source for export names
 * before loading it, while a module that CommonJS code `require`s takes the CommonJS loader alone.
 * Through this file a cold `import('proxyless')` takes about 8 ms less (test/bench/cold-start.ts).
 * Bundlers follow these `require` calls as they followed static imports.
 */
module.exports = {
  Counter: require('prom-client/lib/counter.js'),
  Gauge: require('prom-client/lib/gauge.js'),
  Histogram: require('prom-client/lib/histogram.js'),
  Registry: require('prom-client/lib/registry.js'),
};
