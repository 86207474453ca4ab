/**
 * Malformed balancer sections (`loadBalancer`, `outlierDetection`, `healthCheck`): part of the
 * bad-document table of bad-documents.fixture.ts.
 */
import { type DocCase, svc } from './bad-documents-shape.fixture.js';

export const BALANCER_DOCUMENTS: DocCase[] = [
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
  [
    'connectBackoff.initial 0',
    svc({ loadBalancer: { connectBackoff: { initial: 0 } } }),
    'services.api.loadBalancer.connectBackoff.initial',
    0,
  ],
  [
    'connectBackoff.max not a duration',
    svc({ loadBalancer: { connectBackoff: { max: 'soon' } } }),
    'services.api.loadBalancer.connectBackoff.max',
    'soon',
  ],
  [
    'connectBackoff.max below initial',
    svc({ loadBalancer: { connectBackoff: { initial: '2s', max: '1s' } } }),
    'services.api.loadBalancer.connectBackoff.max',
    '1s',
  ],
  [
    'connectBackoff.multiplier 0.5 (would shrink)',
    svc({ loadBalancer: { connectBackoff: { multiplier: 0.5 } } }),
    'services.api.loadBalancer.connectBackoff.multiplier',
    0.5,
  ],
  [
    'connectBackoff.jitter 2',
    svc({ loadBalancer: { connectBackoff: { jitter: 2 } } }),
    'services.api.loadBalancer.connectBackoff.jitter',
    2,
  ],
  [
    'connectBackoff gRPC channel-arg name',
    svc({ loadBalancer: { connectBackoff: { maxBackoff: '1s' } } }),
    'services.api.loadBalancer.connectBackoff.maxBackoff',
    '1s',
  ],
  [
    'connectBackoff a number',
    svc({ loadBalancer: { connectBackoff: 500 } }),
    'services.api.loadBalancer.connectBackoff',
    500,
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
    'services.api.outlierDetection.maxEjectionTime',
    // As the document writes it (the rule compares merged values in milliseconds).
    '1s',
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
    'services.api.healthCheck.path',
    undefined,
  ],
  [
    'healthCheck.timeout above interval',
    svc({ healthCheck: { path: '/h', interval: '1s', timeout: '2s' } }),
    'services.api.healthCheck.timeout',
    '2s',
  ],
  ['healthCheck typo', svc({ healthCheck: { pth: '/h' } }), 'services.api.healthCheck.pth', '/h'],
];
