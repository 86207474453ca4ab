/**
 * The testing entry refuses what it cannot run faithfully and leaves nothing behind (issue #9,
 * probe of `proxyless/testing` against the real stack): each case names the field and the value.
 */

import { Readable } from 'node:stream';
import { MeshError } from '@proxyless/core';
import type { ResiliencePatch } from '@proxyless/resilience';
import { describe, expect, it } from 'vitest';
import {
  createRetryFilter,
  recordAttempts,
  runPolicy,
  testContext,
  VirtualClock,
  withPolicies,
} from './testing.js';

async function refused(p: Promise<unknown>): Promise<Array<[string, unknown]>> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
  return ((error as MeshError).details.issues ?? []).map((i) => [i.field, i.value]);
}

describe('proxyless/testing runPolicy checks (#9)', () => {
  it('refuses a step delay of Infinity (the clock would run forever) and a bad VirtualClock.advance', async () => {
    expect(await refused(runPolicy({}, [{ status: 200, delayMs: Number.POSITIVE_INFINITY }]))).toEqual([
      ['script[0].delayMs', Number.POSITIVE_INFINITY],
    ]);
    await expect(new VirtualClock().advance(Number.POSITIVE_INFINITY)).rejects.toThrow(RangeError);
  });

  it('accepts the endpoints key of a service entry, and checks its value as createMesh does', async () => {
    const rec = await runPolicy({ endpoints: '10.0.0.1:8080,10.0.0.2:8080', retry: { maxRetries: 1 } }, [
      '503',
      200,
    ]);
    expect(rec.status).toBe(200);
    expect(await refused(runPolicy({ endpoints: '10.0.0.1' }, [200]))).toEqual([
      ['policy.endpoints', '10.0.0.1'],
    ]);
  });

  it('names a misspelt key nested in a hand-written patch (it was a silent default)', async () => {
    const bad = [
      { timeoutMs: 1000, retry: { maxRetrys: 0 } },
      { timeoutMs: 1000, retry: { maxRetries: 0, backof: { baseMs: 5 } } },
      { timeoutMs: 1000, retry: { backoff: { baseMS: 5 } } },
      { perTryTimeoutMs: 100, circuitBreaker: { volumThreshold: 1 } },
    ] as unknown as ResiliencePatch[];
    const fields = await Promise.all(bad.map(async (p) => (await refused(runPolicy(p, [200])))[0]?.[0]));
    expect(fields).toEqual([
      'policy.retry.maxRetrys',
      'policy.retry.backof',
      'policy.retry.backoff.baseMS',
      'policy.circuitBreaker.volumThreshold',
    ]);
    const ok = await runPolicy({ timeoutMs: 1000, retry: { maxRetries: 0, backoff: { baseMs: 5 } } }, [
      '503',
    ]);
    expect(ok.attempts).toHaveLength(1);
  });

  it('refuses malformed step fields naming them (a string of headers lost a Retry-After)', async () => {
    const script = [
      { status: 503, headers: 'retry-after: 2' },
      { status: 200, endpoint: 5 },
      { status: 200, body: 5 },
    ] as never;
    expect(await refused(runPolicy({}, script))).toEqual([
      ['script[0].headers', 'retry-after: 2'],
      ['script[1].endpoint', 5],
      ['script[2].body', 5],
    ]);
  });

  it('leaves no timer on the caller clock when it refuses the script', async () => {
    const clock = new VirtualClock();
    await refused(runPolicy({}, ['conect-error' as never], { clock }));
    expect(clock.pendingTimers).toBe(0);
  });

  it('records an attempt answered with a 1xx as MESH_INTERNAL, as the call fails', async () => {
    const clock = new VirtualClock();
    const { terminal, record, observer } = recordAttempts(async () => ({
      status: 103,
      statusText: '',
      headers: {},
      body: Readable.from([]),
    }));
    const p = withPolicies(
      [createRetryFilter({ maxRetries: 2 })],
      terminal,
    )(testContext({ clock, observer }));
    const settled = p.then(
      () => 'resolved',
      (e: unknown) => (e as MeshError).code,
    );
    await clock.runAll();
    expect(await settled).toBe('MESH_INTERNAL');
    expect(record.attempts.map((a) => a.outcome)).toEqual(['MESH_INTERNAL']);
  });

  it('fails the call with MESH_INTERNAL when a hand-written upstream answers no CallResult (it threw out of a callback)', async () => {
    for (const answer of [
      { status: 103, body: null },
      null,
      { status: 200 },
      { status: '200', body: Readable.from([]) },
    ]) {
      const clock = new VirtualClock();
      const p = withPolicies(
        [createRetryFilter({ maxRetries: 1 })],
        (async () => answer) as never,
      )(testContext({ clock }));
      const settled = p.then(
        () => 'resolved',
        (e: unknown) => (e as MeshError).code,
      );
      await clock.runAll();
      expect(await settled).toBe('MESH_INTERNAL');
    }
  });
});

describe('runPolicy checks its own arguments (probe43 4)', () => {
  // Each was a silent default (`sed`, `seed: 'abc'` → 0, `seed: 1.5` → 1), a misleading message
  // (`maxTimers: -1`: "the timer budget ran out") or a TypeError from inside.
  it.each([
    ['a misspelt option', {}, ['503'], { sed: 7 }, [['options.sed', 7]]],
    ['a seed that is text', {}, ['503'], { seed: 'abc' }, [['options.seed', 'abc']]],
    ['a fractional seed', {}, ['503'], { seed: 1.5 }, [['options.seed', 1.5]]],
    ['a negative timer budget', {}, ['503'], { maxTimers: -1 }, [['options.maxTimers', -1]]],
    ['a clock that is not a VirtualClock', {}, ['503'], { clock: Date }, [['options.clock', Date]]],
    ['no policy', null, ['503'], undefined, [['policy', null]]],
    ['a script that is one step', {}, '503', undefined, [['script', '503']]],
    [
      'a request method that is not a string',
      {},
      ['503'],
      { request: { method: 42 } },
      [['options.request.method', 42]],
    ],
    [
      'a misspelt request field',
      {},
      ['503'],
      { request: { methd: 'POST' } },
      [['options.request.methd', 'POST']],
    ],
    [
      'request headers that are text',
      {},
      ['503'],
      { request: { headers: 'a: b' } },
      [['options.request.headers', 'a: b']],
    ],
  ] as const)('%s is named with its value', async (_name, policy, script, options, issues) => {
    expect(await refused(runPolicy(policy as never, script as never, options as never))).toEqual(issues);
  });

  it('every good option is taken', async () => {
    const record = await runPolicy({ retry: { maxRetries: 1 } }, ['503', '200'], {
      seed: 7,
      maxTimers: 50,
      clock: new VirtualClock(),
      service: 'api',
      request: { method: 'GET' },
    });
    expect(record.attempts).toHaveLength(2);
  });

  it('scripted connect and reset errors have the production shape: errorCode and a cause with that code', async () => {
    const connect = await runPolicy({ retry: false }, ['connect-error'], { service: 'payments' });
    expect(connect.error?.code).toBe('MESH_CONNECT_FAILED');
    expect(connect.error?.details).toMatchObject({
      phase: 'connect',
      bodySent: false,
      errorCode: 'ECONNREFUSED',
    });
    expect((connect.error?.cause as { code?: string } | undefined)?.code).toBe('ECONNREFUSED');
    expect(connect.error?.message).toMatch(/^connect to \S+ for "payments" failed: connect ECONNREFUSED/);
    const reset = await runPolicy({ retry: false }, ['reset'], { service: 'payments' });
    expect(reset.error?.details).toMatchObject({ phase: 'request', errorCode: 'UND_ERR_SOCKET' });
    expect((reset.error?.cause as { code?: string } | undefined)?.code).toBe('UND_ERR_SOCKET');
  });
});
