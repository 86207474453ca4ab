/**
 * Malformed config documents, each with the path its error must name and the value it must quote.
 * Test data: bad-input.config.test.ts runs them through the validator, and the JSON Schema test
 * (test/integration/mesh/config-json-schema.test.ts) through a standard JSON Schema validator.
 */

import { BALANCER_DOCUMENTS } from './bad-balancer-documents.fixture.js';
import { type DocCase, svc } from './bad-documents-shape.fixture.js';

export { type DocCase, svc } from './bad-documents-shape.fixture.js';

export const DOCUMENTS: DocCase[] = [
  // document shape
  ['document not an object', [], '$', []],
  ['unknown top-level key', { servces: {} }, 'servces', {}],
  ['services not an object', { services: [] }, 'services', []],
  ['defaults not an object', { defaults: 3 }, 'defaults', 3],
  ['bad service name', { services: { 'a b': {} } }, 'services.a b', 'a b'],
  ['service entry not an object', { services: { api: 'x' } }, 'services.api', 'x'],
  ['unknown service key', svc({ retyr: {} }), 'services.api.retyr', {}],
  ['unknown defaults key', { defaults: { timout: '1s' } }, 'defaults.timout', '1s'],
  ['endpoints in defaults', { defaults: { endpoints: 'a:1' } }, 'defaults.endpoints', 'a:1'],
  ['$schema not a string', { $schema: 1 }, '$schema', 1],
  ['service names differing only in case', { services: { Pay: {}, pay: {} } }, 'services.pay', 'pay'],
  // names a request never reaches a service under (destinationFor sends them straight through)
  ['service name localhost', { services: { localhost: {} } }, 'services.localhost', 'localhost'],
  [
    'service name under .localhost',
    { services: { 'api.LOCALHOST': {} } },
    'services.api.LOCALHOST',
    'api.LOCALHOST',
  ],
  ['service name an IPv4 address', { services: { '10.0.0.1': {} } }, 'services.10.0.0.1', '10.0.0.1'],
  ['service name all digits', { services: { '123': {} } }, 'services.123', '123'],
  ['service name ending in a hex number', { services: { 'api.0x1f': {} } }, 'services.api.0x1f', 'api.0x1f'],
  // keys named like Object.prototype members are unknown keys, not schemas
  ['unknown service key toString', svc({ toString: 1 }), 'services.api.toString', 1],
  [
    'unknown defaults key constructor',
    { defaults: { constructor: { maxRetries: 3 } } },
    'defaults.constructor',
    { maxRetries: 3 },
  ],
  [
    'unknown nested key constructor',
    { defaults: { retry: { constructor: 1 } } },
    'defaults.retry.constructor',
    1,
  ],
  [
    'unknown nested key hasOwnProperty',
    svc({ loadBalancer: { hasOwnProperty: 1 } }),
    'services.api.loadBalancer.hasOwnProperty',
    1,
  ],
  // strings JSON Schema bounds too
  [
    'endpoint address empty',
    svc({ endpoints: [{ address: '', port: 80 }] }),
    'services.api.endpoints[0].address',
    '',
  ],
  [
    'endpoint id empty',
    svc({ endpoints: [{ address: 'a', port: 80, id: '' }] }),
    'services.api.endpoints[0].id',
    '',
  ],
  [
    'endpoint zone empty',
    svc({ endpoints: [{ address: 'a', port: 80, zone: '' }] }),
    'services.api.endpoints[0].zone',
    '',
  ],
  [
    'endpoint address with a space',
    svc({ endpoints: [{ address: 'bad host', port: 80 }] }),
    'services.api.endpoints[0].address',
    'bad host',
  ],
  [
    'hashOn header not a token',
    svc({ loadBalancer: { hashOn: { header: 'x user' } } }),
    'services.api.loadBalancer.hashOn',
    { header: 'x user' },
  ],
  // endpoints
  [
    'endpoint port out of range',
    svc({ endpoints: [{ address: 'a', port: 70000 }] }),
    'services.api.endpoints[0].port',
    70000,
  ],
  ['endpoint list not a list', svc({ endpoints: 5 }), 'services.api.endpoints', 5],
  [
    'two endpoints in one list item',
    svc({ endpoints: ['10.0.0.1:80,10.0.0.2:80'] }),
    'services.api.endpoints[0]',
    '10.0.0.1:80,10.0.0.2:80',
  ],
  ['endpoint without port', svc({ endpoints: 'a' }), 'services.api.endpoints', 'a'],
  [
    'endpoint unknown key',
    svc({ endpoints: [{ address: 'a', port: 1, wieght: 2 }] }),
    'services.api.endpoints[0].wieght',
    2,
  ],
  // timeouts
  ['timeout a word', svc({ timeout: 'soon' }), 'services.api.timeout', 'soon'],
  ['timeout negative', svc({ timeout: -1 }), 'services.api.timeout', -1],
  ['timeout true', svc({ timeout: true }), 'services.api.timeout', true],
  ['timeout an object', svc({ timeout: {} }), 'services.api.timeout', {}],
  ['timeout bad unit', svc({ timeout: '5 parsecs' }), 'services.api.timeout', '5 parsecs'],
  ['perTryTimeout a word', svc({ perTryTimeout: 'later' }), 'services.api.perTryTimeout', 'later'],
  ['perTryTimeout a list', svc({ perTryTimeout: [1] }), 'services.api.perTryTimeout', [1]],
  ['perTryTimeout null', svc({ perTryTimeout: null }), 'services.api.perTryTimeout', null],
  ['connectTimeout 0 (a connect needs time)', svc({ connectTimeout: 0 }), 'services.api.connectTimeout', 0],
  [
    'connectTimeout off (cannot be off)',
    svc({ connectTimeout: 'off' }),
    'services.api.connectTimeout',
    'off',
  ],
  ['connectTimeout a word', svc({ connectTimeout: 'soon' }), 'services.api.connectTimeout', 'soon'],
  // retry
  ['retry a string', svc({ retry: 'yes' }), 'services.api.retry', 'yes'],
  ['retry a number', svc({ retry: 3 }), 'services.api.retry', 3],
  [
    'retry.maxRetries a word',
    svc({ retry: { maxRetries: 'three' } }),
    'services.api.retry.maxRetries',
    'three',
  ],
  ['retry.maxRetries negative', svc({ retry: { maxRetries: -1 } }), 'services.api.retry.maxRetries', -1],
  ['retry.maxRetries above 10', svc({ retry: { maxRetries: 11 } }), 'services.api.retry.maxRetries', 11],
  ['retry.maxRetries fractional', svc({ retry: { maxRetries: 1.5 } }), 'services.api.retry.maxRetries', 1.5],
  ['retry.maxRetires typo', svc({ retry: { maxRetires: 2 } }), 'services.api.retry.maxRetires', 2],
  [
    'retry.retryOn unknown item',
    svc({ retry: { retryOn: ['5xx', 'teapot'] } }),
    'services.api.retry.retryOn[1]',
    'teapot',
  ],
  ['retry.retryOn a number', svc({ retry: { retryOn: 5 } }), 'services.api.retry.retryOn', 5],
  [
    'retry.retryOn bad string list',
    svc({ retry: { retryOn: '5xx,teapot' } }),
    'services.api.retry.retryOn',
    '5xx,teapot',
  ],
  [
    'retry.retriableStatusCodes 600',
    svc({ retry: { retriableStatusCodes: [600] } }),
    'services.api.retry.retriableStatusCodes[0]',
    600,
  ],
  [
    'retry.retriableStatusCodes a string',
    svc({ retry: { retriableStatusCodes: '429' } }),
    'services.api.retry.retriableStatusCodes',
    '429',
  ],
  [
    'retry.retriableHeaders numbers',
    svc({ retry: { retriableHeaders: [1] } }),
    'services.api.retry.retriableHeaders[0]',
    1,
  ],
  [
    'retry.retriableHeaders a name no header can have (probe 10: was accepted)',
    svc({ retry: { retriableHeaders: ['x-ok', 'x y'] } }),
    'services.api.retry.retriableHeaders[1]',
    'x y',
  ],
  ['retry.backoff not an object', svc({ retry: { backoff: '1s' } }), 'services.api.retry.backoff', '1s'],
  [
    'retry.backoff.base a word',
    svc({ retry: { backoff: { base: 'fast' } } }),
    'services.api.retry.backoff.base',
    'fast',
  ],
  [
    'retry.backoff.max below base',
    svc({ retry: { backoff: { base: '1s', max: '10ms' } } }),
    'services.api.retry.backoff.max',
    '10ms',
  ],
  ['retry.backoff unknown key', svc({ retry: { backoff: { bse: 1 } } }), 'services.api.retry.backoff.bse', 1],
  [
    'retry.retryAfterMax a word',
    svc({ retry: { retryAfterMax: 'long' } }),
    'services.api.retry.retryAfterMax',
    'long',
  ],
  [
    'retry.allowNonIdempotent a string',
    svc({ retry: { allowNonIdempotent: 'yes' } }),
    'services.api.retry.allowNonIdempotent',
    'yes',
  ],
  [
    'retry.budget.ratio above 1',
    svc({ retry: { budget: { ratio: 2 } } }),
    'services.api.retry.budget.ratio',
    2,
  ],
  [
    'retry.budget.ratio 150%',
    svc({ retry: { budget: { ratio: '150%' } } }),
    'services.api.retry.budget.ratio',
    '150%',
  ],
  [
    'retry.budget.minPerSecond negative',
    svc({ retry: { budget: { minPerSecond: -1 } } }),
    'services.api.retry.budget.minPerSecond',
    -1,
  ],
  [
    'retry.budget.window zero',
    svc({ retry: { budget: { window: 0 } } }),
    'services.api.retry.budget.window',
    0,
  ],
  ['retry.budgett typo', svc({ retry: { budgett: {} } }), 'services.api.retry.budgett', {}],
  // hedge
  ['hedge a string', svc({ hedge: 'p95' }), 'services.api.hedge', 'p95'],
  ['hedge.delay a word', svc({ hedge: { delay: 'soon' } }), 'services.api.hedge.delay', 'soon'],
  [
    'hedge.delay.percentile 100',
    svc({ hedge: { delay: { percentile: 100 } } }),
    'services.api.hedge.delay.percentile',
    100,
  ],
  [
    'hedge.delay.percentile 0',
    svc({ hedge: { delay: { percentile: 0 } } }),
    'services.api.hedge.delay.percentile',
    0,
  ],
  ['hedge.delay unknown key', svc({ hedge: { delay: { pct: 9 } } }), 'services.api.hedge.delay.pct', 9],
  ['hedge.maxHedges 0', svc({ hedge: { maxHedges: 0 } }), 'services.api.hedge.maxHedges', 0],
  ['hedge.maxHedges 6', svc({ hedge: { maxHedges: 6 } }), 'services.api.hedge.maxHedges', 6],
  ['hedge.maxHedge typo', svc({ hedge: { maxHedge: 1 } }), 'services.api.hedge.maxHedge', 1],
  // circuit breaker
  ['circuitBreaker a string', svc({ circuitBreaker: 'yes' }), 'services.api.circuitBreaker', 'yes'],
  [
    'errorThresholdPercentage 0',
    svc({ circuitBreaker: { errorThresholdPercentage: 0 } }),
    'services.api.circuitBreaker.errorThresholdPercentage',
    0,
  ],
  [
    'errorThresholdPercentage 101',
    svc({ circuitBreaker: { errorThresholdPercentage: 101 } }),
    'services.api.circuitBreaker.errorThresholdPercentage',
    101,
  ],
  [
    'volumeThreshold 0',
    svc({ circuitBreaker: { volumeThreshold: 0 } }),
    'services.api.circuitBreaker.volumeThreshold',
    0,
  ],
  [
    'rollingWindow 5ms',
    svc({ circuitBreaker: { rollingWindow: '5ms' } }),
    'services.api.circuitBreaker.rollingWindow',
    '5ms',
  ],
  [
    'resetTimeout 0',
    svc({ circuitBreaker: { resetTimeout: 0 } }),
    'services.api.circuitBreaker.resetTimeout',
    0,
  ],
  [
    'halfOpenMaxCalls 0',
    svc({ circuitBreaker: { halfOpenMaxCalls: 0 } }),
    'services.api.circuitBreaker.halfOpenMaxCalls',
    0,
  ],
  [
    'maxConnections 0',
    svc({ circuitBreaker: { maxConnections: 0 } }),
    'services.api.circuitBreaker.maxConnections',
    0,
  ],
  [
    'maxConnections a string',
    svc({ circuitBreaker: { maxConnections: '10' } }),
    'services.api.circuitBreaker.maxConnections',
    '10',
  ],
  [
    'maxPendingRequests negative',
    svc({ circuitBreaker: { maxPendingRequests: -1 } }),
    'services.api.circuitBreaker.maxPendingRequests',
    -1,
  ],
  [
    'maxRequests 0',
    svc({ circuitBreaker: { maxRequests: 0 } }),
    'services.api.circuitBreaker.maxRequests',
    0,
  ],
  // Beyond Number.MAX_SAFE_INTEGER a number is not the integer written (2 ** 60 + 1 reads as 2 ** 60).
  [
    'maxRequests beyond the safe integers',
    svc({ circuitBreaker: { maxRequests: 2 ** 60 } }),
    'services.api.circuitBreaker.maxRequests',
    2 ** 60,
  ],
  [
    'consecutive5xx beyond the safe integers',
    svc({ outlierDetection: { consecutive5xx: Number.MAX_SAFE_INTEGER + 2 } }),
    'services.api.outlierDetection.consecutive5xx',
    Number.MAX_SAFE_INTEGER + 2,
  ],
  [
    'maxRetries -1',
    svc({ circuitBreaker: { maxRetries: -1 } }),
    'services.api.circuitBreaker.maxRetries',
    -1,
  ],
  [
    'circuitBreaker typo',
    svc({ circuitBreaker: { resetTimout: '1s' } }),
    'services.api.circuitBreaker.resetTimout',
    '1s',
  ],
  // concurrency limit
  ['concurrencyLimit a number', svc({ concurrencyLimit: 10 }), 'services.api.concurrencyLimit', 10],
  ['concurrencyLimit.max 0', svc({ concurrencyLimit: { max: 0 } }), 'services.api.concurrencyLimit.max', 0],
  [
    'concurrencyLimit.queue negative',
    svc({ concurrencyLimit: { queue: -1 } }),
    'services.api.concurrencyLimit.queue',
    -1,
  ],
  [
    'concurrencyLimit.queueTimeout a word',
    svc({ concurrencyLimit: { queueTimeout: 'x' } }),
    'services.api.concurrencyLimit.queueTimeout',
    'x',
  ],
  ['concurrencyLimit typo', svc({ concurrencyLimit: { maxx: 1 } }), 'services.api.concurrencyLimit.maxx', 1],
  // rate limit
  ['rateLimit true (no default rate)', svc({ rateLimit: true }), 'services.api.rateLimit', true],
  ['rateLimit a number', svc({ rateLimit: 100 }), 'services.api.rateLimit', 100],
  ['rateLimit.rps 0', svc({ rateLimit: { rps: 0 } }), 'services.api.rateLimit.rps', 0],
  ['rateLimit.rps a word', svc({ rateLimit: { rps: 'many' } }), 'services.api.rateLimit.rps', 'many'],
  ['rateLimit.burst 0', svc({ rateLimit: { rps: 1, burst: 0 } }), 'services.api.rateLimit.burst', 0],
  ['rateLimit.brust typo', svc({ rateLimit: { rps: 1, brust: 2 } }), 'services.api.rateLimit.brust', 2],
  // fault injection
  [
    'faultInjection true (no default fault)',
    svc({ faultInjection: true }),
    'services.api.faultInjection',
    true,
  ],
  [
    'faultInjection.abort.percent 101',
    svc({ faultInjection: { abort: { percent: 101 } } }),
    'services.api.faultInjection.abort.percent',
    101,
  ],
  [
    'faultInjection.abort.status 99',
    svc({ faultInjection: { abort: { status: 99 } } }),
    'services.api.faultInjection.abort.status',
    99,
  ],
  [
    'faultInjection.delay without duration',
    svc({ faultInjection: { delay: { percent: 5 } } }),
    'services.api.faultInjection.delay.duration',
    undefined,
  ],
  [
    'faultInjection.delay.duration a word',
    svc({ faultInjection: { delay: { duration: 'x' } } }),
    'services.api.faultInjection.delay.duration',
    'x',
  ],
  [
    'faultInjection.header with a space',
    svc({ faultInjection: { header: 'x fault' } }),
    'services.api.faultInjection.header',
    'x fault',
  ],
  ['faultInjection typo', svc({ faultInjection: { abrt: {} } }), 'services.api.faultInjection.abrt', {}],
  // load balancer, outlier detection, health check
  ...BALANCER_DOCUMENTS,
  // rules across sections (one owner per setting)
  [
    'maxPendingRequests without a queue',
    svc({ circuitBreaker: { maxPendingRequests: 10 } }),
    'services.api.circuitBreaker.maxPendingRequests',
    10,
  ],
  [
    'rateLimit without rps in any layer',
    svc({ rateLimit: { burst: 5 } }),
    'services.api.rateLimit.rps',
    undefined,
  ],
  ['defaults: a bad retry', { defaults: { retry: { maxRetries: 'x' } } }, 'defaults.retry.maxRetries', 'x'],
];
