import { seededRandom } from '@proxyless/core';
import { recordingObserver, scriptedUpstream, testContext, VirtualClock } from '@proxyless/core/testing';
import { describe, expect, it } from 'vitest';
import { createFaultInjectionFilter, parseFaultHeader } from './fault.js';
import { withPolicies } from './stack.js';

describe('fault injection', () => {
  it('aborts with a synthetic status without calling the destination', async () => {
    const upstream = scriptedUpstream([200]);
    const call = withPolicies(
      [createFaultInjectionFilter({ abort: { percent: 100, status: 503 } })],
      upstream,
    );
    const r = await call(testContext());
    expect(r.status).toBe(503);
    expect(r.headers['x-mesh-fault']).toBe('abort');
    expect(upstream.calls).toHaveLength(0);
  });

  it('delays on the clock, then calls the destination', async () => {
    const clock = new VirtualClock();
    const observer = recordingObserver();
    const upstream = scriptedUpstream([200]);
    const call = withPolicies(
      [createFaultInjectionFilter({ delay: { percent: 100, durationMs: 250 } })],
      upstream,
    );
    const p = call(testContext({ clock, observer }));
    await clock.advance(250);
    expect((await p).status).toBe(200);
    expect(upstream.calls[0]!.at).toBe(250);
    expect(observer.events).toMatchObject([{ type: 'fault', reason: 'delay', delayMs: 250 }]);
  });

  it('injects about percent of the time with a seeded random', async () => {
    const call = withPolicies(
      [createFaultInjectionFilter({ abort: { percent: 25, status: 500 } })],
      scriptedUpstream([200]),
    );
    const random = seededRandom(42);
    let aborted = 0;
    for (let i = 0; i < 1000; i++) if ((await call(testContext({ random }))).status === 500) aborted++;
    expect(aborted).toBeGreaterThan(200);
    expect(aborted).toBeLessThan(300);
  });

  it('with a header, only affects requests carrying it; the value can force a fault', async () => {
    const filter = createFaultInjectionFilter({
      abort: { percent: 100, status: 503 },
      header: 'x-mesh-fault',
    });
    const call = withPolicies([filter], scriptedUpstream([200]));
    expect((await call(testContext())).status).toBe(200);
    expect((await call(testContext({ request: { headers: { 'x-mesh-fault': 'yes' } } }))).status).toBe(503);
    expect((await call(testContext({ request: { headers: { 'x-mesh-fault': 'abort=418' } } }))).status).toBe(
      418,
    );
    await expect(
      call(testContext({ request: { headers: { 'x-mesh-fault': 'abort=error' } } })),
    ).rejects.toMatchObject({
      code: 'MESH_FAULT_INJECTED',
    });
  });

  it('parses fault headers leniently', () => {
    expect(parseFaultHeader('delay=200ms, abort=503')).toEqual({ delayMs: 200, abort: 503 });
    expect(parseFaultHeader('delay=soon,abort=999,x')).toEqual({});
  });
});

describe('fault decisions over many calls (docs/testing-policies.md, seededRandom)', () => {
  it('come from each call’s ctx.random: one shared seeded source gives the percentage, deterministically', async () => {
    const run = async (random?: ReturnType<typeof seededRandom>) => {
      const clock = new VirtualClock();
      const call = withPolicies(
        [createFaultInjectionFilter({ abort: { percent: 30, status: 503 } })],
        scriptedUpstream([200]),
      );
      let aborted = 0;
      for (let i = 0; i < 200; i++) {
        const r = await call(testContext({ clock, ...(random ? { random } : {}) }));
        if (r.status === 503) aborted++;
        r.body.resume();
      }
      return aborted;
    };
    const shared = await run(seededRandom(7));
    expect(shared).toBeGreaterThan(40);
    expect(shared).toBeLessThan(80);
    expect(await run(seededRandom(7))).toBe(shared);
    // Each default testContext() draws from a new seededRandom(1): every call decides alike.
    expect([0, 200]).toContain(await run());
  });
});
