'use strict';
/**
 * opossum, required at the first circuit breaker a mesh makes (its first call to a service with a
 * breaker), not when the package is imported. Node imports a CommonJS module into an ES module by
 * resolving it with the ES resolver and scanning its source for export names; a `require` from
 * this file takes the CommonJS loader alone, and only when it runs. Bundlers follow the literal
 * `require` as they followed the static import.
 */
let CircuitBreaker;
module.exports = () => {
  if (CircuitBreaker === undefined) CircuitBreaker = require('opossum');
  return CircuitBreaker;
};
