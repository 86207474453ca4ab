import { describe, expect, it, vi } from 'vitest';
import { runPolicy } from './testing.js';

/**
 * The testing entry reads a request and an answer as the mesh does in production: the same
 * idempotency rule, header names in lower case as undici gives them, and an empty body that ends
 * with its head.
 */
describe('the testing entry reads requests and answers as production does', () => {
  it.each([
    ['an Idempotency-Key header', { method: 'POST', body: '{}', headers: { 'Idempotency-Key': 'k1' } }],
    ['x-mesh-idempotent: true', { method: 'POST', body: '{}', headers: { 'x-mesh-idempotent': 'true' } }],
    ['a lower-case standard method', { method: 'get' }],
  ])('retries a reset of a request made idempotent by %s', async (_, request) => {
    // Before: only the method counted, case-sensitively: MESH_UPSTREAM_RESET, not_idempotent.
    const rec = await runPolicy({}, ['reset', 200], { request });
    expect(rec.status).toBe(200);
  });

  it('reads a Retry-After written with capitals (undici lower-cases header names)', async () => {
    const rec = await runPolicy({}, [{ status: 503, headers: { 'Retry-After': '2' } }, 200]);
    // Before: the header was not found and the retry started at 0.
    expect(rec.attempts[1]!.startedAt).toBe(2000);
  });

  it('gives the last 503 when the breaker refuses a retry, whatever the backoff', async () => {
    const rec = await runPolicy(
      { retry: { maxRetries: 5, backoff: { base: 0, max: 0 } }, circuitBreaker: { volumeThreshold: 2 } },
      ['503'],
    );
    // Before: a 0 ms retry ran before the scripted empty body ended, and the caller got
    // MESH_CIRCUIT_OPEN instead of the last real answer.
    expect(rec.status).toBe(503);
    expect(rec.error).toBeUndefined();
    expect(rec.stoppedBecause).toBe('circuit_open (gateway-error)');
  });
  it('works in a test that fakes the global timers (vi.useFakeTimers / Jest)', async () => {
    vi.useFakeTimers();
    try {
      // Before: flushPromises waited on the faked global setImmediate, and the call never settled.
      const rec = await runPolicy({ retry: { maxRetries: 1 } }, ['503', 200]);
      expect(rec.status).toBe(200);
    } finally {
      vi.useRealTimers();
    }
  }, 5000);
});

describe('runPolicy reports a misspelt key as createMesh does', () => {
  it('lists every section of a service entry as known, the balancer’s included, and suggests the nearest', async () => {
    const error = await runPolicy({ retri: { maxRetries: 1 } } as never, [200]).then(
      () => undefined,
      (e: unknown) => e as Error & { code?: string },
    );
    expect(error?.code).toBe('MESH_CONFIG_INVALID');
    expect(error?.message).toContain('policy.retri');
    expect(error?.message).toContain('did you mean "retry"?');
    for (const key of ['loadBalancer', 'outlierDetection', 'healthCheck', 'retry', 'timeout'])
      expect(error?.message).toContain(key);
    const lb = await runPolicy({ loadBalancr: { policy: 'random' } } as never, [200]).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(lb?.message).toContain('did you mean "loadBalancer"?');
  });
});
