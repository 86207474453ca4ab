import {
  answerLocally,
  type CallContext,
  callOf,
  type DispatchFn,
  emitCallEvent,
  type Filter,
  failDispatch,
  KEEP_ALIVE,
  type MeshDispatchOptions,
  MeshError,
  type MeshHandler,
  parseDuration,
  RelayController,
  RelayedHandler,
  type Timer,
} from '@proxyless/core';
import type { Dispatcher } from 'undici';
import type { FaultInjectionConfig } from './config.js';
import { checkSettingKeys } from './factory-checks.js';
import { cancelQueued } from './queued.js';

/** What the fault filter decided for one call. */
interface FaultDecision {
  delayMs: number;
  /** A status to answer with, `'error'` to fail with `MESH_FAULT_INJECTED`, or none. */
  abort: number | 'error' | undefined;
}

function headerText(ctx: CallContext, name: string): string | undefined {
  const v = ctx.request.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Parse a fault header value: `delay=200ms`, `abort=503`, `abort=error`, or both separated by
 * commas. Unknown or bad parts are ignored (a header never breaks a call by itself).
 */
export function parseFaultHeader(value: string): { delayMs?: number; abort?: number | 'error' } {
  const out: { delayMs?: number; abort?: number | 'error' } = {};
  for (const part of value.split(',')) {
    const [k, v] = part.split('=').map((s) => s.trim());
    if (k === undefined || v === undefined) continue;
    if (k === 'delay') {
      try {
        out.delayMs = parseDuration(v, 'delay');
      } catch {
        // ignored
      }
    } else if (k === 'abort') {
      if (v === 'error') out.abort = 'error';
      else if (/^\d{3}$/.test(v) && Number(v) >= 200 && Number(v) <= 599) out.abort = Number(v);
    }
  }
  return out;
}

/**
 * Fault injection (Envoy's fault filter): delay a share of calls by `delay.durationMs` (on the
 * call's clock, cut short by its signal) and/or answer a share of them with a synthetic
 * `abort.status` response (header `x-mesh-fault: abort`) without calling the destination. With
 * `header` set, only requests carrying that header are affected; its value may force a fault
 * (`delay=200ms`, `abort=503`, `abort=error` → `MESH_FAULT_INJECTED`).
 */
export function createFaultInjectionFilter(
  config: Partial<FaultInjectionConfig>,
  options: { service?: string } = {},
): Filter {
  checkSettingKeys('createFaultInjectionFilter', config, 'faultInjection');
  const header = config.header?.toLowerCase();
  const decide = (ctx: CallContext): FaultDecision => {
    const d: FaultDecision = { delayMs: 0, abort: undefined };
    if (header !== undefined) {
      const value = headerText(ctx, header);
      if (value === undefined) return d;
      const forced = parseFaultHeader(value);
      if (forced.delayMs !== undefined || forced.abort !== undefined) {
        d.delayMs = forced.delayMs ?? 0;
        d.abort = forced.abort;
        return d;
      }
    }
    if (config.delay && ctx.random.next() * 100 < config.delay.percent) d.delayMs = config.delay.durationMs;
    if (config.abort && ctx.random.next() * 100 < config.abort.percent) d.abort = config.abort.status;
    return d;
  };
  return (dispatch) => (opts, handler) => {
    const ctx = callOf(opts);
    if (ctx === undefined) return dispatch(opts, handler);
    const d = decide(ctx);
    if (d.delayMs <= 0) return act(ctx, d, dispatch, opts, handler);
    emitCallEvent(ctx, { type: 'fault', reason: 'delay', delayMs: d.delayMs });
    // Delayed: the caller gets a controller now, so an abort during the delay ends the call.
    let inner: Dispatcher.DispatchController | undefined;
    let waiting = true;
    let timer: Timer | undefined;
    const relay = new RelayController((reason) => {
      if (inner !== undefined) return inner.abort(reason);
      // Sent after the delay but not started (queued in the endpoint's pool): take it back.
      if (!waiting) return void cancelQueued(ctx, reason);
      waiting = false;
      timer?.cancel();
      handler.onResponseError?.(relay, reason);
    });
    handler.onRequestStart?.(relay, {});
    // Aborted from onRequestStart itself (an already-aborted caller): ended, no delay to arm.
    if (!waiting) return true;
    timer = ctx.clock.setTimer(
      d.delayMs,
      () => {
        if (!waiting) return;
        waiting = false;
        act(
          ctx,
          d,
          dispatch,
          opts,
          new RelayedHandler(handler, relay, (c) => {
            inner = c;
          }),
        );
      },
      KEEP_ALIVE,
    );
    return true;
  };

  function act(
    ctx: CallContext,
    d: FaultDecision,
    dispatch: DispatchFn,
    opts: MeshDispatchOptions,
    handler: MeshHandler,
  ): boolean {
    if (d.abort === 'error') {
      emitCallEvent(ctx, { type: 'fault', reason: 'abort', code: 'MESH_FAULT_INJECTED' });
      const service = options.service ?? ctx.service;
      failDispatch(
        handler,
        new MeshError('MESH_FAULT_INJECTED', `fault injected: call to "${service}" aborted`, {
          details: { service },
        }),
      );
      return true;
    }
    if (d.abort !== undefined) {
      emitCallEvent(ctx, { type: 'fault', reason: 'abort', status: d.abort });
      // A 204, a 304 or the answer to a HEAD has no body (RFC 9110 §6.4.1).
      const bodiless = d.abort === 204 || d.abort === 304 || opts.method === 'HEAD';
      answerLocally(
        handler,
        d.abort,
        bodiless ? { 'x-mesh-fault': 'abort' } : { 'x-mesh-fault': 'abort', 'content-type': 'text/plain' },
        bodiless ? '' : 'fault filter abort',
      );
      return true;
    }
    return dispatch(opts, handler);
  }
}
