'use strict';
/**
 * The parts of undici the mesh's data plane uses (see undici.ts), gathered in one CommonJS module.
 *
 * Node imports a CommonJS module into an ES module by first scanning its source for the names it
 * exports (cjs-module-lexer) and resolving it with the ES module resolver; a module it `require`s
 * is loaded by the CommonJS loader alone. Imported one by one from undici.ts, undici's nine files
 * were each resolved and scanned; through this file only this file is, and a cold
 * `import('proxyless')` takes about 13 ms less (test/bench/cold-start.ts). Bundlers follow these
 * `require` calls as they followed the static imports.
 *
 * What `createMesh` needs (the `Dispatcher` base class its dispatcher extends, and undici's
 * errors) is loaded with this file; everything else at first use: undici's request checks and
 * request API (`util`, `api`: they load Node's `http`) at the first call, and the connection
 * classes (`Client`, `Pool`, `Agent`, and the global dispatcher, which load Node's `tls` and
 * `http2` and undici's HTTP/1 and HTTP/2 clients, a third of undici's start-up) at the first pool
 * a mesh opens, or the first pass-through call.
 */
/** `load`, called once, at the first call; its value every time after. */
function once(load) {
  let value;
  return () => {
    if (value === undefined) value = load();
    return value;
  };
}

module.exports = {
  errors: require('undici/lib/core/errors.js'),
  symbols: require('undici/lib/core/symbols.js'),
  Dispatcher: require('undici/lib/dispatcher/dispatcher.js'),
  api: once(() => require('undici/lib/api/index.js')),
  util: once(() => require('undici/lib/core/util.js')),
  agent: once(() => require('undici/lib/dispatcher/agent.js')),
  pool: once(() => require('undici/lib/dispatcher/pool.js')),
  poolBase: once(() => require('undici/lib/dispatcher/pool-base.js')),
  globals: once(() => require('undici/lib/global.js')),
};
