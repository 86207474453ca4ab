import { Readable } from 'node:stream';
import { type CallResult, Issues, type MeshError } from '@proxyless/core';
import { flushPromises, scriptedUpstream, testContext } from '@proxyless/core/testing';
import { describe, expect, it } from 'vitest';
import { parseResiliencePatch, resolveResilienceConfig } from './config.js';
import { createDeadlineFilter } from './deadline.js';
import { createRetryFilter } from './retry.js';
import { withPolicies } from './stack.js';
import { recordAttempts, runPolicy, VirtualClock } from './testing.js';

describe('runPolicy input', () => {
  it('takes the config-document shape and validates it like createMesh', async () => {
    const rec = await runPolicy(
      { timeout: '1s', retry: { maxRetries: 1, backoff: { base: '10ms', max: '10ms' } } },
      ['503', 200],
    );
    expect(rec.attempts.map((a) => a.outcome)).toEqual([503, 200]);
    // A misspelt key fails to compile, and is refused at run time for JavaScript callers.
    // @ts-expect-error: maxRetrys is not a retry key
    await expect(runPolicy({ retry: { maxRetrys: 2 } }, [200])).rejects.toThrow(
      /policy\.retry\.maxRetrys[\s\S]*did you mean "maxRetries"/,
    );
  });

  it('validates the document shape even when a key ends in "Ms" (it used to skip validation then)', async () => {
    // A document-shaped mistake next to a key that looks parsed: every problem is still reported.
    await expect(
      runPolicy({ retry: { maxRetries: 50 }, hedge: { delayMs: 10 } }, ['503', 200]),
    ).rejects.toMatchObject({ code: 'MESH_CONFIG_INVALID' });
    await expect(
      runPolicy({ timeout: '1s', circuitBreaker: { resetTimeoutMs: 10_000 } }, ['hang']),
    ).rejects.toThrow(/policy\.circuitBreaker\.resetTimeoutMs[\s\S]*did you mean "resetTimeout"/);
  });

  it('rejects a misspelt top-level key instead of running with defaults; balancer keys are ignored', async () => {
    // @ts-expect-error: retyr is not a policy key
    await expect(runPolicy({ retyr: { maxRetries: 2 } }, [200])).rejects.toThrow(
      /policy\.retyr[\s\S]*did you mean "retry"/,
    );
    const rec = await runPolicy(
      { endpoints: '10.0.0.1:80', loadBalancer: { policy: 'random' }, retry: { maxRetries: 1 } },
      ['503', 200],
    );
    expect(rec.status).toBe(200);
  });

  it('uses a parsed patch, a resolved config and a hand-written parsed patch as they are', async () => {
    const issues = new Issues();
    const patch = parseResiliencePatch({ timeout: '1s' }, 'x', issues);
    expect(issues.ok).toBe(true);
    const byPatch = await runPolicy(patch!, ['hang']);
    expect(byPatch.error?.code).toBe('MESH_TIMEOUT');
    expect(byPatch.endedAt).toBe(1000);
    const byConfig = await runPolicy(resolveResilienceConfig({ timeoutMs: 500 }), ['hang']);
    expect(byConfig.endedAt).toBe(500);
    const byHand = await runPolicy({ timeoutMs: 250 }, ['hang']);
    expect(byHand.endedAt).toBe(250);
  });
});

describe('runPolicy time', () => {
  it("waits out a long upstream delay: the breaker's background timers are not counted as the call's", async () => {
    const rec = await runPolicy({ circuitBreaker: { rollingWindow: '10ms' } }, [
      { status: 200, delayMs: 15_000 },
    ]);
    expect(rec.status).toBe(200);
    expect(rec.endedAt).toBe(15_000);
  });

  it('reports a hang only when nothing but background timers is left; a deadline still ends it', async () => {
    await expect(runPolicy({ circuitBreaker: { rollingWindow: '10ms' } }, ['hang'])).rejects.toThrow(
      /did not settle/,
    );
    const rec = await runPolicy({ timeout: '20s', circuitBreaker: { rollingWindow: '10ms' } }, ['hang']);
    expect(rec.error?.code).toBe('MESH_TIMEOUT');
    expect(rec.endedAt).toBe(20_000);
  });
});

describe("runPolicy with the caller's own timers on its clock (docs/testing-policies.md)", () => {
  it('an abort scheduled on the same clock lands mid-call, also on a hanging upstream', async () => {
    const clock = new VirtualClock();
    const ac = new AbortController();
    clock.setTimer(100, () => ac.abort('bye'));
    const rec = await runPolicy({}, ['hang'], { clock, signal: ac.signal });
    expect(rec.error?.code).toBe('MESH_ABORTED');
    expect(rec.error?.cause).toBe('bye');
    expect(rec.endedAt).toBe(100);
  });

  it('time stops at the end of the call: a later timer of the caller has not fired', async () => {
    const clock = new VirtualClock();
    const ac = new AbortController();
    clock.setTimer(100, () => ac.abort('bye'));
    let later = false;
    clock.setTimer(300, () => {
      later = true;
    });
    const rec = await runPolicy({ timeout: '1s' }, [{ status: 200, delayMs: 500 }], {
      clock,
      signal: ac.signal,
    });
    expect(rec.error?.code).toBe('MESH_ABORTED');
    expect([rec.endedAt, clock.now(), later]).toEqual([100, 100, false]);
    // A caller's timer that does not end the call: the call runs to its own end, firing it on the way.
    const c2 = new VirtualClock();
    let fired = 0;
    c2.setTimer(50, () => fired++);
    const ok = await runPolicy({}, [{ status: 200, delayMs: 500 }], { clock: c2 });
    expect([ok.status, ok.endedAt, c2.now(), fired]).toEqual([200, 500, 500, 1]);
  });
});

describe('runPolicy hang', () => {
  it('aborts the call before reporting the hang: nothing is left on the caller clock', async () => {
    const clock = new VirtualClock();
    await expect(runPolicy({}, ['hang'], { clock })).rejects.toThrow(/did not settle/);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('runPolicy hand-written patch', () => {
  it('rejects a key a ResiliencePatch does not have, naming it, instead of ignoring it', async () => {
    // @ts-expect-error: retyr is not a key of a ResiliencePatch
    await expect(runPolicy({ timeoutMs: 1000, retyr: { maxRetries: 0 } }, [200])).rejects.toMatchObject({
      code: 'MESH_CONFIG_INVALID',
      message: expect.stringContaining('retyr'),
    });
    expect((await runPolicy({ timeoutMs: 1000, retry: false }, ['503'])).status).toBe(503);
  });
});

describe('a caller abort in runPolicy', () => {
  it('is recorded as MESH_ABORTED with the signal reason as cause', async () => {
    const ac = new AbortController();
    const reason = new Error('user gave up');
    ac.abort(reason);
    const record = await runPolicy({ faultInjection: { delay: { duration: '1s' } } }, [200], {
      signal: ac.signal,
    });
    expect([record.error?.code, record.error?.message]).toEqual(['MESH_ABORTED', expect.any(String)]);
    expect(record.error?.cause).toBe(reason);
  });
});

describe('a caller abort through a composed stack', () => {
  it('rejects with the signal reason itself, whatever it is, as mesh.request does', async () => {
    for (const reason of ['a string', { why: 1 }, new Error('an error')]) {
      const ac = new AbortController();
      const call = withPolicies([createDeadlineFilter({ timeoutMs: 60_000 })], scriptedUpstream(['hang']));
      const settled = call(testContext({ clock: new VirtualClock(), signal: ac.signal })).catch(
        (e: unknown) => e,
      );
      ac.abort(reason);
      expect(await settled).toBe(reason);
    }
  });
});

describe('the endpoint of an attempt that timed out or was aborted', () => {
  it('is recorded by runPolicy: the losing hedge and a per-try timeout keep their endpoint', async () => {
    const hedge = await runPolicy({ hedge: { delay: '50ms' } }, [
      { status: 200, delayMs: 500, endpoint: 'slow:80' },
      { status: 200, delayMs: 20, endpoint: 'fast:80' },
    ]);
    expect(hedge.attempts.map((a) => [a.attempt, a.endpoint, a.outcome])).toEqual([
      [1, 'slow:80', 'MESH_ABORTED'],
      [2, 'fast:80', 200],
    ]);
    const perTry = await runPolicy({ perTryTimeout: '300ms', retry: { backoff: { base: 0, max: 0 } } }, [
      { status: 200, delayMs: 1000, endpoint: 'slow:80' },
      'hang',
      { status: 200, endpoint: 'fast:80' },
    ]);
    expect(perTry.attempts.map((a) => [a.attempt, a.endpoint, a.outcome])).toEqual([
      [1, 'slow:80', 'MESH_TIMEOUT'],
      [2, 'upstream:80', 'MESH_TIMEOUT'],
      [3, 'fast:80', 200],
    ]);
  });

  it('is recorded by recordAttempts around a stack composed by hand', async () => {
    const clock = new VirtualClock();
    const { terminal, record, observer } = recordAttempts(
      scriptedUpstream([{ status: 200, delayMs: 1000, endpoint: 'slow:80' }]),
    );
    const p = withPolicies(
      [createDeadlineFilter({ timeoutMs: 100 })],
      terminal,
    )(testContext({ clock, observer }));
    const settled = p.catch((e: unknown) => e);
    await clock.runAll();
    expect(await settled).toMatchObject({ code: 'MESH_TIMEOUT' });
    expect(record.attempts.map((a) => [a.endpoint, a.outcome])).toEqual([['slow:80', 'MESH_TIMEOUT']]);
  });
});

describe('a 1xx step', () => {
  it('is rejected naming the step, not left to hang the call until "did not settle"', async () => {
    await expect(runPolicy({ timeout: '1s' }, [103])).rejects.toMatchObject({
      code: 'MESH_CONFIG_INVALID',
      message: expect.stringMatching(/script\[0\][\s\S]*200 to 599/),
    });
  });

  it('from a terminal of your own fails the call at once; it does not stay pending past the deadline', async () => {
    const clock = new VirtualClock();
    const informational = async (): Promise<CallResult> => ({
      status: 103,
      headers: { link: '</a.css>; rel=preload' },
      body: Readable.from([]),
    });
    let state = 'pending';
    void withPolicies(
      [createDeadlineFilter({ timeoutMs: 1000 })],
      informational,
    )(testContext({ clock })).then(
      (r) => {
        state = `resolved ${r.status}`;
      },
      (e: MeshError) => {
        state = `rejected ${e.code}`;
      },
    );
    await clock.advance(60_000);
    await flushPromises();
    expect(state).toBe('rejected MESH_INTERNAL');
  });
});

describe('recordAttempts', () => {
  it("fills the call's status and end time, as runPolicy does", async () => {
    const clock = new VirtualClock();
    const { terminal, record, observer } = recordAttempts(
      scriptedUpstream(['503', { status: 200, delayMs: 30 }]),
    );
    const p = withPolicies(
      [createRetryFilter({ maxRetries: 1, backoff: { baseMs: 10, maxMs: 10 } })],
      terminal,
    )(testContext({ clock, observer }));
    await clock.runAll();
    expect((await p).status).toBe(200);
    const rec = await runPolicy({ retry: { maxRetries: 1, backoff: { base: '10ms', max: '10ms' } } }, [
      '503',
      { status: 200, delayMs: 30 },
    ]);
    const callOf = (r: typeof record) => [r.status, r.error, r.endedAt, r.attempts.length];
    expect(callOf(record)).toEqual([200, undefined, rec.endedAt, 2]);
    expect(callOf(rec)).toEqual([200, undefined, expect.any(Number), 2]);
  });

  it("fills the call's error: a deadline's MESH_TIMEOUT, and the caller's abort as MESH_ABORTED", async () => {
    const clock = new VirtualClock();
    const timedOut = recordAttempts(scriptedUpstream(['hang']));
    const p = withPolicies(
      [createDeadlineFilter({ timeoutMs: 250 })],
      timedOut.terminal,
    )(testContext({ clock, observer: timedOut.observer })).catch((e: unknown) => e);
    await clock.runAll();
    expect(await p).toMatchObject({ code: 'MESH_TIMEOUT' });
    expect([timedOut.record.status, timedOut.record.error?.code, timedOut.record.endedAt]).toEqual([
      undefined,
      'MESH_TIMEOUT',
      250,
    ]);

    const ac = new AbortController();
    const reason = 'user gave up';
    ac.abort(reason);
    const aborted = recordAttempts(scriptedUpstream([200]));
    const q = withPolicies(
      [createDeadlineFilter({ timeoutMs: 250 })],
      aborted.terminal,
    )(testContext({ clock, observer: aborted.observer, signal: ac.signal })).catch((e: unknown) => e);
    expect(await q).toBe(reason);
    expect(aborted.record.error?.code).toBe('MESH_ABORTED');
    expect(aborted.record.error?.cause).toBe(reason);
    expect(aborted.record.endedAt).toBe(250);
  });
});
