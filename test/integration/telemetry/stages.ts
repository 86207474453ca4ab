/**
 * Small stand-ins for the mesh's stages, enough to drive the telemetry interceptors over real
 * undici Pools: a pick stage that sets `ctx.endpoint` and sends to that endpoint's Pool, a retry
 * stage that derives a context per attempt and reports `retry`/`give_up` through the observer,
 * and a breaker that answers with `MESH_CIRCUIT_OPEN`. Plus a handler that collects a response.
 */
import type { IncomingHttpHeaders } from 'node:http';
import {
  type CallContext,
  callOf,
  createEndpoint,
  type DispatchFn,
  type Endpoint,
  ForwardingHandler,
  type Interceptor,
  kCall,
  type MeshDispatchOptions,
  MeshError,
  type MeshHandler,
  systemClock,
  withCall,
} from '@proxyless/core';
import { testContext } from '@proxyless/core/testing';
import { type Dispatcher, Pool } from 'undici';

/** A call context on the system clock for `service`. */
export function callContext(service: string, method = 'GET', path = '/'): CallContext {
  return testContext({ service, clock: systemClock, request: { method, path, origin: `http://${service}` } });
}

/** Dispatch options for a mesh call. */
export function callOptions(
  ctx: CallContext,
  headers?: Dispatcher.DispatchOptions['headers'],
  extra: Partial<Dispatcher.DispatchOptions> = {},
): MeshDispatchOptions {
  return {
    method: ctx.request.method as Dispatcher.HttpMethod,
    path: ctx.request.path,
    headers,
    [kCall]: ctx,
    ...extra,
  };
}

/** Pools per endpoint; `terminal` sends to the Pool of `ctx.endpoint`. */
export class Pools {
  readonly #pools = new Map<string, Pool>();
  readonly #options: Pool.Options;

  constructor(options: Pool.Options = {}) {
    this.#options = options;
  }

  readonly terminal: DispatchFn = (opts, handler) => {
    const ep = callOf(opts)?.endpoint;
    if (ep === undefined) throw new Error('no endpoint picked');
    let pool = this.#pools.get(ep.id);
    if (pool === undefined) {
      pool = new Pool(`http://${ep.address}:${ep.port}`, this.#options);
      this.#pools.set(ep.id, pool);
    }
    return pool.dispatch(opts, handler);
  };

  async close(): Promise<void> {
    await Promise.all([...this.#pools.values()].map((p) => p.close()));
  }
}

/** The innermost stage: picks the endpoints in turn (attempt n gets endpoints[(n-1) % len]). */
export function fakePick(endpoints: ReadonlyArray<{ address: string; port: number }>): Interceptor {
  const eps: Endpoint[] = endpoints.map((e) => createEndpoint(e));
  return (dispatch) => (opts, handler) => {
    const ctx = callOf(opts)!;
    ctx.endpoint = eps[(ctx.attempt - 1) % eps.length];
    return dispatch(opts, handler);
  };
}

/** Retries on 5xx and on transport errors, up to `maxRetries`, each attempt with its own context. */
export function fakeRetry(maxRetries: number): Interceptor {
  return (dispatch) => (opts, handler) => {
    const ctx = callOf(opts)!;
    const attempt = (n: number): boolean => {
      const actx: CallContext = { ...ctx, attempt: n, endpoint: undefined };
      const emit = (type: string, reason: string): void =>
        actx.observer?.onEvent({ type, reason, at: actx.clock.now(), attempt: n });
      return dispatch(withCall(opts, actx), new RetryHandler(handler, n, maxRetries, attempt, emit));
    };
    return attempt(1);
  };
}

class RetryHandler extends ForwardingHandler {
  #swallow = false;
  constructor(
    handler: MeshHandler,
    readonly n: number,
    readonly max: number,
    readonly again: (n: number) => boolean,
    readonly emit: (type: string, reason: string) => void,
  ) {
    super(handler);
  }
  override onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    if (this.n === 1) super.onRequestStart(controller, context);
  }
  override onResponseStart(
    controller: Dispatcher.DispatchController,
    status: number,
    headers: IncomingHttpHeaders,
    message?: string,
  ): void {
    if (status >= 500) {
      if (this.n <= this.max) {
        this.#swallow = true;
        return;
      }
      this.emit('give_up', 'max_retries (5xx)');
    }
    super.onResponseStart(controller, status, headers, message);
  }
  override onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.#swallow) super.onResponseData(controller, chunk);
  }
  override onResponseEnd(controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    if (this.#swallow) {
      this.emit('retry', '5xx');
      this.again(this.n + 1);
      return;
    }
    super.onResponseEnd(controller, trailers);
  }
  override onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    if (this.n <= this.max && !this.#swallow) {
      this.emit('retry', 'connect-failure');
      this.again(this.n + 1);
      return;
    }
    if (this.max > 0) this.emit('give_up', 'max_retries (connect-failure)');
    super.onResponseError(controller, error);
  }
}

/** A breaker that is open: fails the call at once with `MESH_CIRCUIT_OPEN`. */
export const openBreaker: Interceptor = () => (opts, handler) => {
  const ctx = callOf(opts)!;
  ctx.observer?.onEvent({ type: 'circuit_open', reason: 'open', at: ctx.clock.now(), attempt: ctx.attempt });
  const controller = {
    abort() {},
    pause() {},
    resume() {},
    paused: false,
    aborted: false,
    reason: null,
  } as unknown as Dispatcher.DispatchController;
  queueMicrotask(() =>
    handler.onResponseError?.(
      controller,
      new MeshError('MESH_CIRCUIT_OPEN', `circuit open for "${ctx.service}"`),
    ),
  );
  return true;
};

/** A collected response; `headAt`/`endAt` let a test look at the state between head and end. */
export interface Collected {
  status: number | undefined;
  headers: IncomingHttpHeaders;
  body: string;
  error: Error | undefined;
}

/** Dispatch and collect the whole response. `onHead` runs when the head arrives (before the body). */
export function collect(
  dispatch: DispatchFn,
  opts: MeshDispatchOptions,
  onHead?: () => void,
): Promise<Collected> {
  return new Promise((resolve) => {
    const out: Collected = { status: undefined, headers: {}, body: '', error: undefined };
    const chunks: Buffer[] = [];
    dispatch(opts, {
      onRequestStart() {},
      onResponseStart(_c, status, headers) {
        out.status = status;
        out.headers = headers;
        onHead?.();
      },
      onResponseData(_c, chunk) {
        chunks.push(chunk);
      },
      onResponseEnd() {
        out.body = Buffer.concat(chunks).toString();
        resolve(out);
      },
      onResponseError(_c, error) {
        out.error = error;
        resolve(out);
      },
    });
  });
}
