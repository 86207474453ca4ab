'use strict';
/**
 * The parts of undici the mesh's data plane loads at start (see undici.ts), gathered in one
 * CommonJS module.
 *
 * Node imports a CommonJS module into an ES module by first scanning its source for the names it
 * exports (cjs-module-lexer) and resolving it with the ES module resolver; a module it `require`s
 * is loaded by the CommonJS loader alone. Imported one by one from undici.ts, undici's nine files
 * were each resolved and scanned; through this file only this file is, and a cold
 * `import('proxyless')` takes about 13 ms less (test/bench/cold-start.ts). Bundlers follow these
 * `require` calls as they followed the static imports.
 */
module.exports = {
  api: require('undici/lib/api/index.js'),
  errors: require('undici/lib/core/errors.js'),
  symbols: require('undici/lib/core/symbols.js'),
  util: require('undici/lib/core/util.js'),
  Agent: require('undici/lib/dispatcher/agent.js'),
  Dispatcher: require('undici/lib/dispatcher/dispatcher.js'),
  Pool: require('undici/lib/dispatcher/pool.js'),
  poolBase: require('undici/lib/dispatcher/pool-base.js'),
  globals: require('undici/lib/global.js'),
};
