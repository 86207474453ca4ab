import { describe, expect, it } from 'vitest';
import { createMesh, type MeshEvent } from '../mesh.js';
import { checkConfigDocument } from './check.js';
import { createConfigSource } from './source.js';

// One owner per setting (probe7 config defect 1): a setting the service's own entry writes that
// nothing in force reads is accepted with a `config_warning` naming it.
const fields = (doc: unknown, options: Parameters<typeof checkConfigDocument>[1] = {}) =>
  checkConfigDocument(doc, { env: {}, ...options }).map((w) => `${w.service ?? '-'}:${w.field}`);

describe('settings nothing reads are warned (probe7 config defect 1)', () => {
  it('retry.retriableStatusCodes / retriableHeaders without their retryOn condition', () => {
    expect(fields({ services: { a: { retry: { retryOn: ['5xx'], retriableStatusCodes: [429] } } } })).toEqual(
      ['a:retry.retriableStatusCodes'],
    );
    expect(
      fields({ services: { a: { retry: { retryOn: ['5xx'], retriableHeaders: ['x-retry'] } } } }),
    ).toEqual(['a:retry.retriableHeaders']);
    // The condition from a lower layer (the defaults) makes them read.
    expect(
      fields({
        defaults: { retry: { retryOn: ['5xx', 'retriable-status-codes', 'retriable-headers'] } },
        services: { a: { retry: { retriableStatusCodes: [429], retriableHeaders: ['x-retry'] } } },
      }),
    ).toEqual([]);
    // With the condition: read, no warning.
    expect(
      fields({
        services: { a: { retry: { retryOn: ['retriable-status-codes'], retriableStatusCodes: [429] } } },
      }),
    ).toEqual([]);
    // Not set by the user (built-in defaults): nothing to warn of.
    expect(fields({ services: { a: { retry: { retryOn: ['5xx'] } } } })).toEqual([]);
  });

  it('retry.retryOn conditions that match nothing: an empty list, or a condition whose list is empty', () => {
    expect(fields({ services: { a: { retry: { maxRetries: 3, retryOn: [] } } } })).toEqual([
      'a:retry.retryOn',
    ]);
    expect(fields({ services: { a: { retry: { retryOn: ['retriable-status-codes'] } } } })).toEqual([
      'a:retry.retryOn',
    ]);
    expect(fields({ services: { a: { retry: { retryOn: ['5xx', 'retriable-headers'] } } } })).toEqual([
      'a:retry.retryOn',
    ]);
    // The list from a lower layer is read.
    expect(
      fields({
        defaults: { retry: { retriableStatusCodes: [429] } },
        services: { a: { retry: { retryOn: ['retriable-status-codes'] } } },
      }),
    ).toEqual([]);
    // Retries off: nothing to warn of.
    expect(fields({ services: { a: { retry: { maxRetries: 0, retryOn: [] } } } })).toEqual([]);
    expect(fields({ services: { a: { retry: { maxRetries: 2, retryOn: ['5xx'] } } } })).toEqual([]);
  });

  it('concurrencyLimit.queueTimeout with no queue', () => {
    expect(fields({ services: { a: { concurrencyLimit: { max: 5, queueTimeout: '1s' } } } })).toEqual([
      'a:concurrencyLimit.queueTimeout',
    ]);
    // maxPendingRequests: 0 leaves no queue either.
    expect(
      fields({
        services: {
          a: {
            concurrencyLimit: { max: 5, queue: 3, queueTimeout: '1s' },
            circuitBreaker: { maxPendingRequests: 0 },
          },
        },
      }),
    ).toEqual(['a:concurrencyLimit.queueTimeout']);
    expect(
      fields({ services: { a: { concurrencyLimit: { max: 5, queue: 2, queueTimeout: '1s' } } } }),
    ).toEqual([]);
    expect(fields({ services: { a: { concurrencyLimit: { max: 5 } } } })).toEqual([]);
  });

  // A warning gives the value in force as every other does: a duration in ms, a number (probe30
  // config defect 3: `concurrencyLimit.queueTimeout` gave the string "1000ms").
  it.each([
    ['concurrencyLimit.queueTimeout', { concurrencyLimit: { max: 5, queueTimeout: '1s' } }, 1000],
    [
      'concurrencyLimit.queueTimeout',
      {
        concurrencyLimit: { max: 5, queue: 3, queueTimeout: '250ms' },
        circuitBreaker: { maxPendingRequests: 0 },
      },
      250,
    ],
    ['loadBalancer.decayTime', { loadBalancer: { policy: 'maglev', decayTime: '5s' } }, 5000],
    ['perTryTimeout', { timeout: '1s', perTryTimeout: '2s' }, 2000],
    [
      'circuitBreaker.maxPendingRequests',
      { concurrencyLimit: { max: 5, queue: 2 }, circuitBreaker: { maxPendingRequests: 50 } },
      50,
    ],
  ])('the warning of %s gives its value as a number (%#)', (field, policy, value) => {
    expect(checkConfigDocument({ services: { a: policy } }, { env: {} })).toEqual([
      { service: 'a', field, expected: expect.any(String), value },
    ]);
  });

  it('circuitBreaker.maxPendingRequests above the concurrencyLimit.queue it caps', () => {
    const doc = {
      services: { a: { concurrencyLimit: { max: 5, queue: 2 }, circuitBreaker: { maxPendingRequests: 50 } } },
    };
    const warnings = checkConfigDocument(doc, { env: {} });
    expect(warnings.map((w) => `${w.service}:${w.field}:${String(w.value)}`)).toEqual([
      'a:circuitBreaker.maxPendingRequests:50',
    ]);
    // At or below the queue it is what bounds it: read.
    for (const maxPendingRequests of [1, 2])
      expect(
        fields({
          services: { a: { concurrencyLimit: { max: 5, queue: 2 }, circuitBreaker: { maxPendingRequests } } },
        }),
      ).toEqual([]);
    // The queue from the defaults, the cap from the service: still the service's unread setting.
    expect(
      fields(
        { services: { a: { circuitBreaker: { maxPendingRequests: 9 } } } },
        { defaults: { concurrencyLimit: { max: 5, queue: 5 } } },
      ),
    ).toEqual(['a:circuitBreaker.maxPendingRequests']);
  });

  it('hedge.delay at or above timeout, as perTryTimeout above timeout', () => {
    expect(fields({ services: { a: { timeout: '100ms', hedge: { delay: '1s' } } } })).toEqual([
      'a:hedge.delay',
    ]);
    expect(fields({ services: { a: { timeout: '100ms', hedge: { delay: '100ms' } } } })).toEqual([
      'a:hedge.delay',
    ]);
    expect(fields({ services: { a: { timeout: '1s', hedge: { delay: '100ms' } } } })).toEqual([]);
    // No timeout, or a percentile delay (measured from attempts shorter than the timeout): none.
    expect(fields({ services: { a: { hedge: { delay: '1s' } } } })).toEqual([]);
    expect(fields({ services: { a: { timeout: '100ms', hedge: { delay: { percentile: 95 } } } } })).toEqual(
      [],
    );
    // In the defaults: said once, under `defaults.`.
    expect(
      fields({ defaults: { timeout: '100ms', hedge: { delay: '1s' } }, services: { a: {}, b: {} } }),
    ).toEqual(['-:defaults.hedge.delay']);
  });

  it('a running mesh fires config_warning naming each field', async () => {
    const mesh = createMesh({
      passthrough: false,
      env: {},
      configSource: createConfigSource('kv', {
        services: {
          a: {
            timeout: '100ms',
            hedge: { delay: '1s' },
            retry: { retryOn: ['5xx'], retriableStatusCodes: [429], retriableHeaders: ['x-retry'] },
            concurrencyLimit: { max: 5, queue: 2 },
            circuitBreaker: { maxPendingRequests: 50 },
          },
          b: { concurrencyLimit: { max: 5, queueTimeout: '1s' } },
        },
      }),
    });
    const seen: string[] = [];
    mesh.onEvent((e: MeshEvent) => {
      if (e.type === 'config_warning') seen.push(`${e.service}:${e.issue.field}`);
    });
    // Warnings of the configuration at start are delivered in a microtask after createMesh.
    await Promise.resolve();
    await mesh.close();
    expect(seen.sort()).toEqual([
      'a:circuitBreaker.maxPendingRequests',
      'a:hedge.delay',
      'a:retry.retriableHeaders',
      'a:retry.retriableStatusCodes',
      'b:concurrencyLimit.queueTimeout',
    ]);
  });
});
