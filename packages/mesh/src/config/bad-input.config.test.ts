import { type ConfigIssue, Issues, MeshError } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import { createMesh } from '../mesh.js';
import { optionsConfigSource } from './source.js';
import { ConfigStore } from './store.js';

/** [what, document, path named, value quoted] */
type DocCase = [string, unknown, string, unknown];

const svc = (policy: Record<string, unknown>): unknown => ({ services: { api: policy } });

const DOCUMENTS: DocCase[] = [
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
  // endpoints
  [
    'endpoint port out of range',
    svc({ endpoints: [{ address: 'a', port: 70000 }] }),
    'services.api.endpoints[0].port',
    70000,
  ],
  ['endpoint list not a list', svc({ endpoints: 5 }), 'services.api.endpoints', 5],
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
  // load balancer
  ['loadBalancer false (cannot be off)', svc({ loadBalancer: false }), 'services.api.loadBalancer', false],
  ['loadBalancer a string', svc({ loadBalancer: 'random' }), 'services.api.loadBalancer', 'random'],
  [
    'loadBalancer.policy unknown',
    svc({ loadBalancer: { policy: 'round_robbin' } }),
    'services.api.loadBalancer.policy',
    'round_robbin',
  ],
  [
    'loadBalancer.polcy typo',
    svc({ loadBalancer: { polcy: 'random' } }),
    'services.api.loadBalancer.polcy',
    'random',
  ],
  [
    'loadBalancer.choiceCount 1',
    svc({ loadBalancer: { choiceCount: 1 } }),
    'services.api.loadBalancer.choiceCount',
    1,
  ],
  [
    'loadBalancer.decayTime 0',
    svc({ loadBalancer: { decayTime: 0 } }),
    'services.api.loadBalancer.decayTime',
    0,
  ],
  [
    'loadBalancer.minRingSize 0',
    svc({ loadBalancer: { minRingSize: 0 } }),
    'services.api.loadBalancer.minRingSize',
    0,
  ],
  [
    'ring min above max',
    svc({ loadBalancer: { minRingSize: 100, maxRingSize: 10 } }),
    'services.api.loadBalancer.minRingSize',
    100,
  ],
  [
    'loadBalancer.tableSize not prime',
    svc({ loadBalancer: { tableSize: 1000 } }),
    'services.api.loadBalancer.tableSize',
    1000,
  ],
  [
    'loadBalancer.hashOn unknown',
    svc({ loadBalancer: { hashOn: { query: 'x' } } }),
    'services.api.loadBalancer.hashOn',
    { query: 'x' },
  ],
  [
    'loadBalancer.hashOn a word',
    svc({ loadBalancer: { hashOn: 'ip' } }),
    'services.api.loadBalancer.hashOn',
    'ip',
  ],
  ['loadBalancer.zone empty', svc({ loadBalancer: { zone: '' } }), 'services.api.loadBalancer.zone', ''],
  [
    'loadBalancer.panicThreshold 150',
    svc({ loadBalancer: { panicThreshold: 150 } }),
    'services.api.loadBalancer.panicThreshold',
    150,
  ],
  [
    'loadBalancer.localityMinHealthyPercent -1',
    svc({ loadBalancer: { localityMinHealthyPercent: -1 } }),
    'services.api.loadBalancer.localityMinHealthyPercent',
    -1,
  ],
  [
    'slowStart.window 0',
    svc({ loadBalancer: { slowStart: { window: 0 } } }),
    'services.api.loadBalancer.slowStart.window',
    0,
  ],
  [
    'slowStart.aggression 0',
    svc({ loadBalancer: { slowStart: { aggression: 0 } } }),
    'services.api.loadBalancer.slowStart.aggression',
    0,
  ],
  [
    'slowStart typo',
    svc({ loadBalancer: { slowStart: { windw: 1 } } }),
    'services.api.loadBalancer.slowStart.windw',
    1,
  ],
  // outlier detection
  ['outlierDetection a string', svc({ outlierDetection: 'on' }), 'services.api.outlierDetection', 'on'],
  [
    'outlierDetection.enabled a string',
    svc({ outlierDetection: { enabled: 'yes' } }),
    'services.api.outlierDetection.enabled',
    'yes',
  ],
  [
    'outlierDetection.maxEjectionPercent -1',
    svc({ outlierDetection: { maxEjectionPercent: -1 } }),
    'services.api.outlierDetection.maxEjectionPercent',
    -1,
  ],
  [
    'outlierDetection.consecutive5xx 2.5',
    svc({ outlierDetection: { consecutive5xx: 2.5 } }),
    'services.api.outlierDetection.consecutive5xx',
    2.5,
  ],
  [
    'outlierDetection.interval 0',
    svc({ outlierDetection: { interval: 0 } }),
    'services.api.outlierDetection.interval',
    0,
  ],
  [
    'successRate typo',
    svc({ outlierDetection: { successRate: { stdevFactr: 1 } } }),
    'services.api.outlierDetection.successRate.stdevFactr',
    1,
  ],
  [
    'failurePercentage.threshold 101',
    svc({ outlierDetection: { failurePercentage: { threshold: 101 } } }),
    'services.api.outlierDetection.failurePercentage.threshold',
    101,
  ],
  [
    'maxEjectionTime below base',
    svc({ outlierDetection: { baseEjectionTime: '10s', maxEjectionTime: '1s' } }),
    'outlierDetection.maxEjectionTime',
    1000,
  ],
  // health check
  ['healthCheck true (needs a path)', svc({ healthCheck: true }), 'services.api.healthCheck', true],
  [
    'healthCheck.path relative',
    svc({ healthCheck: { path: 'healthz' } }),
    'services.api.healthCheck.path',
    'healthz',
  ],
  [
    'healthCheck.healthyThreshold 0',
    svc({ healthCheck: { path: '/h', healthyThreshold: 0 } }),
    'services.api.healthCheck.healthyThreshold',
    0,
  ],
  [
    'healthCheck.interval a word',
    svc({ healthCheck: { path: '/h', interval: 'often' } }),
    'services.api.healthCheck.interval',
    'often',
  ],
  [
    'healthCheck without path anywhere',
    svc({ healthCheck: { interval: '1s' } }),
    'healthCheck.path',
    undefined,
  ],
  [
    'healthCheck.timeout above interval',
    svc({ healthCheck: { path: '/h', interval: '1s', timeout: '2s' } }),
    'healthCheck.timeout',
    2000,
  ],
  ['healthCheck typo', svc({ healthCheck: { pth: '/h' } }), 'services.api.healthCheck.pth', '/h'],
  // rules across sections (one owner per setting)
  [
    'maxPendingRequests without a queue',
    svc({ circuitBreaker: { maxPendingRequests: 10 } }),
    'circuitBreaker.maxPendingRequests',
    10,
  ],
  ['rateLimit without rps in any layer', svc({ rateLimit: { burst: 5 } }), 'rateLimit.rps', undefined],
  ['defaults: a bad retry', { defaults: { retry: { maxRetries: 'x' } } }, 'defaults.retry.maxRetries', 'x'],
];

/** [variable, value, message fragment] */
const ENV: Array<[string, string]> = [
  ['MESH_TIMEOUT', 'soon'],
  ['MESH_TIMEOUT', '-5ms'],
  ['MESH_PER_TRY_TIMEOUT', 'later'],
  ['MESH_RETRIES', 'three'],
  ['MESH_RETRIES', '11'],
  ['MESH_RETRIES', '-1'],
  ['MESH_RETRY_ON', '5xx,teapot'],
  ['MESH_RETRY_STATUS_CODES', '429,abc'],
  ['MESH_RETRY_STATUS_CODES', '700'],
  ['MESH_RETRY_BUDGET', '2'],
  ['MESH_RETRY_BUDGET', '150%'],
  ['MESH_RETRY_BUDGET_MIN_PER_SECOND', '-1'],
  ['MESH_RETRY_BACKOFF_BASE', 'fast'],
  ['MESH_RETRY_BACKOFF_MAX', 'slow'],
  ['MESH_HEDGE_DELAY', 'p0'],
  ['MESH_HEDGE_DELAY', 'soon'],
  ['MESH_CIRCUIT_BREAKER', 'maybe'],
  ['MESH_CIRCUIT_ERROR_THRESHOLD', '0'],
  ['MESH_CIRCUIT_RESET_TIMEOUT', 'x'],
  ['MESH_MAX_REQUESTS', '0'],
  ['MESH_CONCURRENCY_LIMIT', '0'],
  ['MESH_CONCURRENCY_LIMIT', 'lots'],
  ['MESH_RATE_LIMIT', '0'],
  ['MESH_RATE_LIMIT_BURST', '0'],
  ['MESH_LB_POLICY', 'round_robbin'],
  ['MESH_LB_CHOICE_COUNT', '1'],
  ['MESH_LB_DECAY_TIME', 'x'],
  ['MESH_LB_PANIC_THRESHOLD', '101'],
  ['MESH_LB_LOCALITY_MIN_HEALTHY_PERCENT', 'most'],
  ['MESH_LB_SLOW_START_WINDOW', '0'],
  ['MESH_OUTLIER_ENABLED', 'maybe'],
  ['MESH_OUTLIER_CONSECUTIVE_5XX', '-1'],
  ['MESH_OUTLIER_INTERVAL', 'x'],
  ['MESH_OUTLIER_BASE_EJECTION_TIME', '0'],
  ['MESH_OUTLIER_MAX_EJECTION_TIME', 'x'],
  ['MESH_OUTLIER_MAX_EJECTION_PERCENT', '200'],
  ['MESH_RETRYS', '2'],
];

function store(): ConfigStore {
  const issues = new Issues();
  const s = new ConfigStore(optionsConfigSource({}).current(), {}, issues);
  expect(issues.list).toEqual([]);
  return s;
}

function matches(i: ConfigIssue, path: string): boolean {
  return i.field === path || i.field.endsWith(`: ${path}`);
}

describe('bad input (#10)', () => {
  it('has at least 100 malformed documents and env values', () => {
    expect(DOCUMENTS.length + ENV.length).toBeGreaterThanOrEqual(100);
  });

  it.each(DOCUMENTS)(
    'rejects %s, naming the path and the value, applying nothing',
    (_what, doc, path, value) => {
      const s = store();
      const before = s.effective('api');
      const result = s.validate({ source: 'file', version: 2, document: doc }, 'config file test.json');
      expect(result).toBeInstanceOf(MeshError);
      const error = result as MeshError;
      expect(error.code).toBe('MESH_CONFIG_INVALID');
      const issue = error.details.issues?.find((i) => matches(i, path));
      expect(issue, `${path} in ${error.message}`).toBeDefined();
      expect(issue?.value).toEqual(value);
      if (value !== undefined) expect(error.message).toContain(JSON.stringify(value));
      // Nothing half-applied: the store still serves what it served before.
      expect(s.document).toBeUndefined();
      expect(s.effective('api')).toEqual(before);
    },
  );

  it.each(ENV)('rejects %s=%s at createMesh, naming the variable and the value', (name, value) => {
    let error: unknown;
    try {
      createMesh({ env: { [name]: value } });
    } catch (e) {
      error = e;
    }
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    const issues = (error as MeshError).details.issues ?? [];
    expect(issues.find((i) => i.field === name)?.value).toBe(value);
    expect((error as MeshError).message).toContain(`${name}: expected`);
  });

  it('suggests the nearest valid name for an unknown key', () => {
    const r = store().validate(
      { source: 'file', version: 1, document: svc({ retry: { maxRetires: 2 } }) },
      'doc',
    );
    expect((r as MeshError).message).toContain('did you mean "maxRetries"');
    const e = store().validate({ source: 'file', version: 1, document: { servces: {} } }, 'doc');
    expect((e as MeshError).message).toContain('did you mean "services"');
  });

  it('reports every problem of a document at once', () => {
    const r = store().validate(
      {
        source: 'file',
        version: 1,
        document: svc({
          timeout: 'soon',
          retry: { maxRetries: 'x', backoff: { base: '1s', max: '1ms' } },
          hedge: { maxHedges: 0 },
        }),
      },
      'doc',
    ) as MeshError;
    expect(r.details.issues?.map((i) => i.field).sort()).toEqual([
      'services.api.hedge.maxHedges',
      'services.api.retry.backoff.max',
      'services.api.retry.maxRetries',
      'services.api.timeout',
    ]);
  });
});
