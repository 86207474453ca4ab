/**
 * The examples of docs/testing-policies.md (with the types a .ts file needs), so they run with the suite.
 */
import { type CallContext, type MeshError, noopLogger } from '@proxyless/core';
import {
  createPolicyStack,
  createRetryFilter,
  resolveResilienceConfig,
  withPolicies,
} from '@proxyless/resilience';
import {
  recordAttempts,
  runPolicy,
  scriptedUpstream,
  seededRandom,
  testContext,
  VirtualClock,
} from '@proxyless/resilience/testing';
import { describe, expect, it } from 'vitest';

describe('docs/testing-policies.md', () => {
  it('retries, attempt by attempt', async () => {
    const rec = await runPolicy(
      { retry: { maxRetries: 2, backoff: { base: '100ms', max: '1s' } } },
      [
        { status: 503, endpoint: 'a:80' },
        { status: 503, endpoint: 'b:80' },
        { status: 200, endpoint: 'c:80' },
      ],
      { seed: 7 },
    );

    expect(rec.status).toBe(200);
    expect(rec.attempts.map((a) => [a.attempt, a.endpoint, a.outcome, a.retriedBecause])).toEqual([
      [1, 'a:80', 503, 'gateway-error'],
      [2, 'b:80', 503, 'gateway-error'],
      [3, 'c:80', 200, undefined],
    ]);
    // Full jitter: each backoff is below base·2^(n-1), and the next attempt starts exactly then.
    expect(rec.attempts[0]!.backoffMs).toBeLessThan(100);
    expect(rec.attempts[1]!.startedAt).toBe(rec.attempts[0]!.backoffMs);
  });

  it('why retrying stopped', async () => {
    const rec = await runPolicy({ retry: { maxRetries: 1 } }, ['503']);
    expect(rec.status).toBe(503); // the last real answer, not a generic error
    expect(rec.attempts).toHaveLength(2);
    expect(rec.stoppedBecause).toBe('max_retries (gateway-error)');
  });

  it('a POST whose body reached the server is never replayed', async () => {
    const rec = await runPolicy({}, ['reset', 200], { request: { method: 'POST', body: '{"amount":100}' } });
    expect(rec.error?.code).toBe('MESH_UPSTREAM_RESET');
    expect(rec.attempts).toHaveLength(1);
    expect(rec.stoppedBecause).toBe('not_idempotent (reset)');
  });

  it('a connect failure is safely sent elsewhere', async () => {
    const rec = await runPolicy({}, ['connect-error', 201], { request: { method: 'POST', body: '{}' } });
    expect(rec.status).toBe(201);
    expect(rec.attempts.map((a) => a.outcome)).toEqual(['MESH_CONNECT_FAILED', 201]);
  });

  it('timeouts on virtual time', async () => {
    const rec = await runPolicy(
      { timeout: '1s', perTryTimeout: '300ms', retry: { backoff: { base: 0, max: 0 } } },
      ['hang', 'hang', { status: 200, delayMs: 50 }],
    );
    expect(rec.attempts.map((a) => [a.startedAt, a.outcome])).toEqual([
      [0, 'MESH_TIMEOUT'],
      [300, 'MESH_TIMEOUT'],
      [600, 200],
    ]);
    expect(rec.endedAt).toBe(650);
  });

  it('Retry-After', async () => {
    const rec = await runPolicy({}, [{ status: 503, headers: { 'retry-after': '2' } }, 200]);
    expect(rec.attempts[1]!.startedAt).toBe(2000);
  });

  it('Retry-After as an HTTP date, on the virtual wall clock', async () => {
    const clock = new VirtualClock(0, { wall: Date.parse('Wed, 21 Oct 2015 07:28:00 GMT') });
    const rec = await runPolicy(
      {},
      [{ status: 503, headers: { 'retry-after': 'Wed, 21 Oct 2015 07:28:05 GMT' } }, 200],
      { clock },
    );
    expect(rec.attempts[1]!.startedAt).toBe(5000);
  });

  it('a circuit breaker, driven by the clock', async () => {
    const clock = new VirtualClock();
    const stack = createPolicyStack(
      resolveResilienceConfig({
        retry: false,
        circuitBreaker: { volumeThreshold: 5, resetTimeoutMs: 10_000 },
      }),
      { service: 'payments', clock, random: seededRandom(1), logger: noopLogger },
    );
    const state = { failing: true };
    const upstream = (ctx: CallContext) => scriptedUpstream([state.failing ? 503 : 200])(ctx);
    const call = withPolicies(stack.filters, upstream);
    const outcome = (ctx: CallContext) =>
      call(ctx).then(
        (r) => r.status,
        (e: MeshError) => e.code,
      );

    for (let i = 0; i < 5; i++) await outcome(testContext({ clock }));
    expect(await outcome(testContext({ clock }))).toBe('MESH_CIRCUIT_OPEN');

    state.failing = false;
    await clock.advance(10_000); // half-open: one trial call
    expect(await outcome(testContext({ clock }))).toBe(200); // closes it
    expect(await outcome(testContext({ clock }))).toBe(200);
    stack.close();
  });

  it('hedging', async () => {
    const rec = await runPolicy({ hedge: { delay: '50ms' } }, [
      { status: 200, delayMs: 500, endpoint: 'slow:80' },
      { status: 200, delayMs: 20, endpoint: 'fast:80' },
    ]);
    expect(rec.attempts.map((a) => [a.attempt, a.endpoint, a.startedAt, a.outcome])).toEqual([
      [1, 'slow:80', 0, 'MESH_ABORTED'], // the loser is aborted…
      [2, 'fast:80', 50, 200], // …when the hedge answers
    ]);
    expect(rec.endedAt).toBe(70);
  });

  it('your own composition', async () => {
    const clock = new VirtualClock();
    const { terminal, record, observer } = recordAttempts(scriptedUpstream(['connect-error', 200]));
    const p = withPolicies(
      [createRetryFilter({ maxRetries: 1 })],
      terminal,
    )(testContext({ clock, observer }));
    await clock.runAll();
    expect((await p).status).toBe(200);
    expect(record.attempts.map((a) => a.retriedBecause)).toEqual(['connect-failure', undefined]);
    expect([record.status, record.endedAt]).toEqual([200, 15]); // the call settled after its backoff
  });
});
