import { text } from 'node:stream/consumers';
import type { CallContext, CallResult, MeshErrorCode } from '@proxyless/core';
import { MeshError } from '@proxyless/core';
import {
  recordingObserver,
  type ScriptStep,
  scriptedUpstream,
  testContext,
  VirtualClock,
} from '@proxyless/core/testing';
import { describe, expect, it } from 'vitest';
import { RetryBudget } from './budget.js';
import { createHedgeFilter } from './hedge.js';
import { createRetryFilter } from './retry.js';
import { withPolicies } from './stack.js';

/**
 * A stand-in for the pick stage in front of a scripted upstream: once `refuse` is set (the only
 * endpoint went to TRANSIENT_FAILURE, or the set became empty), an attempt fails with `refuse`
 * before anything is sent, as the balancer does.
 */
function pickStage(script: readonly ScriptStep[], refuseAfter: number, code: MeshErrorCode) {
  const upstream = scriptedUpstream(script);
  let sent = 0;
  const terminal = async (ctx: CallContext): Promise<CallResult> => {
    if (sent >= refuseAfter) {
      throw new MeshError(code, `service "${ctx.service}" has nothing to pick (test)`, {
        details: { service: ctx.service },
      });
    }
    sent++;
    return upstream(ctx);
  };
  return { upstream, terminal };
}

function setup(refuseAfter: number, code: MeshErrorCode, script: readonly ScriptStep[]) {
  const clock = new VirtualClock();
  const observer = recordingObserver();
  const budget = new RetryBudget({ ratio: 0, minPerSecond: 1, windowMs: 10_000 }, clock);
  const { upstream, terminal } = pickStage(script, refuseAfter, code);
  return { clock, observer, budget, upstream, terminal };
}

const reasons = (events: readonly { type: string; reason?: unknown }[], type: string): unknown[] =>
  events.filter((e) => e.type === type).map((e) => e.reason);

describe('retry with no endpoint left to retry on', () => {
  it('returns the refused connect, not MESH_NO_HEALTHY_ENDPOINTS, and says why it stopped', async () => {
    const { clock, observer, budget, upstream, terminal } = setup(1, 'MESH_NO_HEALTHY_ENDPOINTS', [
      'connect-error',
    ]);
    const retry = createRetryFilter({ maxRetries: 2, backoff: { baseMs: 10, maxMs: 10 } }, { budget });
    const p = withPolicies([retry], terminal)(testContext({ clock, observer }));
    const settled = p.catch((e: unknown) => e);
    await clock.runAll(50);
    const error = await settled;
    expect(error).toMatchObject({ code: 'MESH_CONNECT_FAILED', details: { endpoint: 'upstream:80' } });
    expect(upstream.calls).toHaveLength(1);
    expect(reasons(observer.events, 'retry')).toEqual(['connect-failure']);
    expect(reasons(observer.events, 'give_up')).toEqual(['no_healthy_endpoints (connect-failure)']);
    expect(budget.snapshot().retries).toBe(0); // the refused retry was never sent
  });

  it('returns the last response, body included, when the endpoint set became empty', async () => {
    const { clock, observer, budget, upstream, terminal } = setup(1, 'MESH_NO_ENDPOINTS', [
      { status: 503, body: 'going away' },
    ]);
    const retry = createRetryFilter({ maxRetries: 2, backoff: { baseMs: 10, maxMs: 10 } }, { budget });
    const p = withPolicies([retry], terminal)(testContext({ clock, observer }));
    await clock.runAll(50);
    const r = await p;
    expect(r.status).toBe(503);
    expect(await text(r.body)).toBe('going away');
    expect(upstream.calls).toHaveLength(1);
    expect(reasons(observer.events, 'give_up')).toEqual(['no_endpoints (gateway-error)']);
    expect(budget.snapshot().retries).toBe(0);
  });

  it.each(['MESH_NO_HEALTHY_ENDPOINTS', 'MESH_NO_ENDPOINTS'] as const)(
    'still fails a first attempt the pick stage refuses with %s',
    async (code) => {
      const { clock, observer, terminal } = setup(0, code, [200]);
      const retry = createRetryFilter({ maxRetries: 2 });
      const p = withPolicies([retry], terminal)(testContext({ clock, observer }));
      await expect(p).rejects.toMatchObject({ code });
      expect(reasons(observer.events, 'give_up')).toEqual([]);
    },
  );

  it('stops hedging when no endpoint is left for a hedge; the first attempt still answers', async () => {
    const { clock, observer, budget, upstream, terminal } = setup(1, 'MESH_NO_HEALTHY_ENDPOINTS', [
      { status: 200, delayMs: 200 },
    ]);
    const hedge = createHedgeFilter({ delayMs: 50, maxHedges: 2 }, { budget });
    const p = withPolicies([hedge], terminal)(testContext({ clock, observer }));
    await clock.runAll(50);
    expect((await p).status).toBe(200);
    expect(upstream.calls).toHaveLength(1);
    expect(reasons(observer.events, 'hedge_skipped')).toEqual(['no_healthy_endpoints']);
    expect(budget.snapshot().retries).toBe(0);
  });
});
