import { MeshError } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import { checkConfigDocument, createMesh } from '../index.js';
import { configDocumentJsonSchema } from './schema.js';

/** The issues of the error `checkConfigDocument` throws for `doc`. */
function issuesOf(doc: unknown): readonly { field: string; expected: string; value: unknown }[] {
  try {
    checkConfigDocument(doc);
  } catch (error) {
    if (!MeshError.is(error, 'MESH_CONFIG_INVALID')) throw error;
    return error.details.issues ?? [];
  }
  throw new Error('the document was accepted');
}

const svc = (policy: Record<string, unknown>) => ({
  services: { pay: { endpoints: '127.0.0.1:80', ...policy } },
});

describe('a key another mesh uses in that place says what this one calls it', () => {
  it.each([
    [{ retry: { attempts: 3 } }, 'services.pay.retry.attempts', 'use maxRetries', "Istio's retries.attempts"],
    [
      { retry: { perTryTimeout: '1s' } },
      'services.pay.retry.perTryTimeout',
      "use the service's own perTryTimeout, next to retry",
      "Envoy's retry_policy.per_try_timeout",
    ],
    [{ retry: { numRetries: 2 } }, 'services.pay.retry.numRetries', 'use maxRetries', 'num_retries'],
    [
      { retry: { retryBackOff: { baseInterval: '25ms' } } },
      'services.pay.retry.retryBackOff',
      'use backoff: { base, max }',
      'retry_back_off',
    ],
    [
      { retry: { backoff: { baseInterval: '25ms' } } },
      'services.pay.retry.backoff.baseInterval',
      'use base',
      'base_interval',
    ],
    [
      { loadBalancer: { simple: 'LEAST_REQUEST' } },
      'services.pay.loadBalancer.simple',
      "use policy, in lower case ('round_robin', 'least_request', 'random')",
      "Istio's loadBalancer.simple",
    ],
    [
      { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } },
      'services.pay.loadBalancer.consistentHash',
      "use policy: 'ring_hash' (or 'maglev') with hashOn",
      "Istio's loadBalancer.consistentHash",
    ],
    [
      { circuitBreaker: { consecutiveErrors: 5 } },
      'services.pay.circuitBreaker.consecutiveErrors',
      'use outlierDetection.consecutive5xx',
      "Istio's outlierDetection.consecutiveErrors",
    ],
    [
      { connectionPool: { tcp: { maxConnections: 10 } } },
      'services.pay.connectionPool',
      'use circuitBreaker.maxConnections',
      "Istio's connectionPool",
    ],
    [
      { trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } },
      'services.pay.trafficPolicy',
      'use the sections themselves',
      "Istio's DestinationRule trafficPolicy",
    ],
    [{ fault: { abort: {} } }, 'services.pay.fault', 'use faultInjection', "Istio's fault"],
    [
      { faultInjection: { delay: { fixedDelay: '1s' } } },
      'services.pay.faultInjection.delay.fixedDelay',
      'use duration',
      "Istio's fault.delay.fixedDelay",
    ],
    [
      { faultInjection: { abort: { httpStatus: 503, percent: 1 } } },
      'services.pay.faultInjection.abort.httpStatus',
      'use status',
      "Istio's fault.abort.httpStatus",
    ],
    [
      { healthCheck: { httpHealthCheck: { path: '/healthz' } } },
      'services.pay.healthCheck.httpHealthCheck',
      'use path',
      "Envoy's health_check.http_health_check",
    ],
    [
      { rateLimit: { rps: 10, maxTokens: 20 } },
      'services.pay.rateLimit.maxTokens',
      'use burst',
      'token_bucket.max_tokens',
    ],
    [
      { rateLimit: { tokensPerFill: 10, fillInterval: '1s' } },
      'services.pay.rateLimit.fillInterval',
      'use rps (tokensPerFill divided by fillInterval in seconds)',
      'token_bucket.fill_interval',
    ],
  ])('%j', (policy, field, use, from) => {
    const issues = issuesOf(svc(policy));
    const issue = issues.find((i) => i.field === field);
    expect(issue, JSON.stringify(issues)).toBeDefined();
    expect(issue?.expected).toContain(`no such field here: ${use}`);
    expect(issue?.expected).toContain(from);
    // The known names are still listed, as for any unknown key.
    expect(issue?.expected).toContain('; known: ');
  });

  // Envoy's and Consul's configs spell their keys in snake_case: the same key is recognised so.
  it.each([
    [{ retry: { num_retries: 2 } }, 'services.pay.retry.num_retries', 'no such field here: use maxRetries'],
    [{ lb_policy: 'LEAST_REQUEST' }, 'services.pay.lb_policy', 'no such field here: use loadBalancer.policy'],
    [
      { retry: { max_retries: 2 } },
      'services.pay.retry.max_retries',
      'did you mean "maxRetries"? names here are camelCase',
    ],
    [
      { retry: { RETRY_ON: '5xx' } },
      'services.pay.retry.RETRY_ON',
      'did you mean "retryOn"? names here are camelCase',
    ],
    [
      { per_try_timeout: '1s' },
      'services.pay.per_try_timeout',
      'did you mean "perTryTimeout"? names here are camelCase',
    ],
    [
      { outlierDetection: { base_ejection_time: '30s' } },
      'services.pay.outlierDetection.base_ejection_time',
      'did you mean "baseEjectionTime"? names here are camelCase',
    ],
    [
      { 'circuit-breaker': { maxRequests: 10 } },
      'services.pay.circuit-breaker',
      'did you mean "circuitBreaker"? names here are camelCase',
    ],
  ])('%j (snake_case or kebab-case)', (policy, field, expected) => {
    const issue = issuesOf(svc(policy)).find((i) => i.field === field);
    expect(issue?.expected).toContain(expected);
  });

  it('in `defaults` too, next to every other problem of the document', () => {
    const issues = issuesOf({
      defaults: { retries: { attempts: 2 } },
      services: { pay: { endpoints: '127.0.0.1:80', retry: { attempts: 3 }, timeout: 'soon' } },
    });
    expect(issues.map((i) => i.field).sort()).toEqual(
      ['defaults.retries', 'services.pay.retry.attempts', 'services.pay.timeout'].sort(),
    );
    expect(issues.find((i) => i.field === 'defaults.retries')?.expected).toContain(
      "use retry (maxRetries, retryOn, backoff…) (retries is Istio's retries)",
    );
  });

  it('in options given in code: the mesh is not made', () => {
    let error: unknown;
    try {
      createMesh({
        env: {},
        services: {
          pay: {
            endpoints: '127.0.0.1:80',
            // @ts-expect-error Istio's name: no such key in `retry`
            retry: { attempts: 3 },
          },
        },
      });
    } catch (e) {
      error = e;
    }
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    expect((error as Error).message).toContain('options.services.pay.retry.attempts');
    expect((error as Error).message).toContain('use maxRetries');
  });

  it('a near miss that is no other mesh’s name still gets the nearest name', () => {
    const issue = issuesOf(svc({ retry: { maxRetires: 2 } }))[0];
    expect(issue?.expected).toContain('no such field (did you mean "maxRetries"?)');
  });

  it('the annotation stays out of the published JSON Schema', () => {
    expect(JSON.stringify(configDocumentJsonSchema())).not.toContain('x-foreign-names');
  });
});
