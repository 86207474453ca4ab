import { existsSync } from 'node:fs';
import {
  type CallEvent,
  composeInterceptors,
  createEndpoint,
  type DispatchFn,
  type Interceptor,
  kCall,
  type MeshDispatchOptions,
  MeshError,
  noopLogger,
} from '@proxyless/core';
import { testContext, VirtualClock } from '@proxyless/core/testing';
import { Registry } from 'prom-client';
import type { Dispatcher } from 'undici';
import { describe, expect, it } from 'vitest';
import type { AccessLogRecord } from './access-log.js';
import { createTelemetry } from './telemetry.js';

const controller = {
  abort() {},
  pause() {},
  resume() {},
  paused: false,
  aborted: false,
  reason: null,
} as unknown as Dispatcher.DispatchController;

/** A scripted upstream: answers `status` at once, the body after `bodyMs` of virtual time. */
function scripted(
  clock: VirtualClock,
  status: number,
  bodyMs: number,
  seen: MeshDispatchOptions[],
): DispatchFn {
  return (opts, handler) => {
    seen.push(opts);
    handler.onRequestStart?.(controller, {});
    handler.onResponseStart?.(controller, status, {}, '');
    clock.setTimer(bodyMs, () => {
      handler.onResponseData?.(controller, Buffer.from('x'));
      handler.onResponseEnd?.(controller, {});
    });
    return true;
  };
}

const pick: Interceptor = (dispatch) => (opts, handler) => {
  const ctx = opts[kCall]!;
  ctx.endpoint = createEndpoint({ address: '10.0.0.1', port: 8080 });
  ctx.observer?.onEvent({ type: 'attempt_start', at: ctx.clock.now(), attempt: ctx.attempt });
  return dispatch(opts, handler);
};

function run(dispatch: DispatchFn, opts: MeshDispatchOptions): Promise<{ status?: number; error?: Error }> {
  return new Promise((resolve) => {
    let status: number | undefined;
    dispatch(opts, {
      onResponseStart: (_c, s) => {
        status = s;
      },
      onResponseEnd: () => resolve({ status }),
      onResponseError: (_c, error) => resolve({ status, error }),
    });
  });
}

describe('telemetry interceptors with no OpenTelemetry SDK', () => {
  it('pass the caller headers on untouched and record exact metrics on virtual time', async () => {
    const clock = new VirtualClock();
    const registry = new Registry();
    const lines: AccessLogRecord[] = [];
    const telemetry = createTelemetry({
      registry,
      clock,
      accessLog: { write: (l) => void lines.push(JSON.parse(l)), close: () => Promise.resolve() },
    });
    const seen: MeshDispatchOptions[] = [];
    const dispatch = composeInterceptors(
      [telemetry.callInterceptor, telemetry.attemptInterceptor, pick],
      scripted(clock, 200, 250, seen),
    );
    const headers = { 'X-Caller': '1' };
    const events: CallEvent[] = [];
    const ctx = testContext({ service: 'payments', clock, observer: { onEvent: (e) => events.push(e) } });
    const done = run(dispatch, { method: 'GET', path: '/', headers, [kCall]: ctx });
    await clock.advance(250);
    expect(await done).toEqual({ status: 200 });
    expect(seen[0]!.headers).toBe(headers);
    const h = await registry.getSingleMetric('http_client_request_duration_seconds')!.get();
    const value = (suffix: string, le?: number) =>
      h.values.find(
        (v) =>
          (v as { metricName?: string }).metricName?.endsWith(suffix) &&
          (le === undefined || v.labels.le === le),
      )?.value;
    expect(value('_sum')).toBe(0.25);
    expect(value('_count')).toBe(1);
    expect(value('_bucket', 0.1)).toBe(0);
    expect(value('_bucket', 0.25)).toBe(1);
    expect(lines[0]).toMatchObject({
      method: 'GET',
      path: '/',
      upstream_cluster: 'payments',
      upstream_host: '10.0.0.1:8080',
      response_code: 200,
      response_flags: '-',
      duration_ms: 250,
      attempts: 1,
      trace_id: '-',
      error_code: '-',
    });
    // The mesh's own observer still sees the call's events.
    expect(events.map((e) => e.type)).toEqual(['attempt_start']);
  });

  it('never lets a telemetry failure reach the caller', async () => {
    const clock = new VirtualClock();
    const telemetry = createTelemetry({
      registry: new Registry(),
      clock,
      accessLog: {
        write: () => {
          throw new Error('disk full');
        },
        close: () => Promise.resolve(),
      },
    });
    const failing: DispatchFn = (_opts, handler) => {
      handler.onResponseError?.(controller, new MeshError('MESH_NO_ENDPOINTS', 'none'));
      return true;
    };
    const dispatch = composeInterceptors([telemetry.callInterceptor, telemetry.attemptInterceptor], failing);
    const r = await run(dispatch, { method: 'GET', path: '/', [kCall]: testContext({ clock }) });
    expect(MeshError.is(r.error, 'MESH_NO_ENDPOINTS')).toBe(true);
  });

  it.runIf(existsSync('/dev/full'))(
    'logs the first access-log write failure (disk full) through its logger, once',
    async () => {
      const clock = new VirtualClock();
      const logged: { message: string; fields?: Record<string, unknown> }[] = [];
      let reported = (): void => undefined;
      const failed = new Promise<void>((resolve) => {
        reported = resolve;
      });
      const telemetry = createTelemetry({
        registry: new Registry(),
        clock,
        env: { MESH_ACCESS_LOG: '/dev/full' },
        logger: {
          ...noopLogger,
          error: (message, fields) => {
            logged.push({ message, ...(fields ? { fields } : {}) });
            reported();
          },
        },
      });
      const failing: DispatchFn = (_opts, handler) => {
        handler.onResponseError?.(controller, new MeshError('MESH_NO_ENDPOINTS', 'none'));
        return true;
      };
      const dispatch = composeInterceptors([telemetry.callInterceptor], failing);
      await run(dispatch, { method: 'GET', path: '/', [kCall]: testContext({ clock }) });
      await failed;
      await run(dispatch, { method: 'GET', path: '/', [kCall]: testContext({ clock }) });
      await telemetry.close();
      expect(logged).toHaveLength(1);
      expect(logged[0]!.fields).toMatchObject({ path: '/dev/full', error: { code: 'ENOSPC' } });
    },
  );

  it('counts an attempt the hedge stopped after its 5xx head as 5xx, and one stopped before its head as cancelled', async () => {
    const clock = new VirtualClock();
    const registry = new Registry();
    const telemetry = createTelemetry({ registry, clock });
    // What the attempt stage sees when the hedge stage aborts an attempt: undici's error with the
    // hedge's reason, after the response head (a 5xx held back) or before it (a lost race).
    const stopped = (status: number | undefined, reason: string): DispatchFn => {
      return (_opts, handler) => {
        handler.onRequestStart?.(controller, {});
        if (status !== undefined) handler.onResponseStart?.(controller, status, {}, '');
        handler.onResponseError?.(
          controller,
          new MeshError('MESH_ABORTED', 'stopped by the hedge', { details: { service: 's', reason } }),
        );
        return true;
      };
    };
    for (const [status, reason] of [
      [503, 'hedge_5xx'],
      [undefined, 'hedge_lost'],
    ] as const) {
      const dispatch = composeInterceptors(
        [telemetry.callInterceptor, telemetry.attemptInterceptor, pick],
        stopped(status, reason),
      );
      await run(dispatch, { method: 'GET', path: '/', [kCall]: testContext({ service: 's', clock }) });
    }
    const series = (await registry.metrics()).split('\n').filter((l) => l.startsWith('mesh_attempts_total{'));
    // Before: the 503 that was held back was `cancelled` (as `hedge_lost`) or `error`.
    expect(series.sort()).toEqual([
      'mesh_attempts_total{service="s",endpoint="10.0.0.1:8080",outcome="5xx"} 1',
      'mesh_attempts_total{service="s",endpoint="10.0.0.1:8080",outcome="cancelled"} 1',
    ]);
  });

  it('records nothing and adds no stage cost when metrics and tracing are off', async () => {
    const clock = new VirtualClock();
    const registry = new Registry();
    const telemetry = createTelemetry({
      registry,
      clock,
      env: { MESH_METRICS: 'false', MESH_TRACING: 'false' },
    });
    expect(telemetry.metrics).toBeUndefined();
    const seen: MeshDispatchOptions[] = [];
    const dispatch = composeInterceptors(
      [telemetry.callInterceptor, telemetry.attemptInterceptor, pick],
      scripted(clock, 200, 0, seen),
    );
    const done = run(dispatch, { method: 'GET', path: '/', [kCall]: testContext({ clock }) });
    await clock.advance(0);
    await done;
    expect(await registry.getMetricsAsJSON()).toEqual([]);
  });
});
