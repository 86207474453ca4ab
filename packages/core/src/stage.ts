/**
 * Between the two shapes of a stage: an interceptor over undici's dispatch, and a Promise-returning
 * `Next` (`scriptedUpstream`, the testing entry's policies), each usable as the other, and the
 * composition of a stack of interceptors over a terminal stage.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { abortError } from './clock.js';
import { MeshError } from './errors.js';
import type { CallContext, CallResult, Next } from './filter.js';
import { headerRecord } from './headers.js';
import {
  composeInterceptors,
  type DispatchFn,
  ENDPOINT_ATTRIBUTE,
  type Interceptor,
  kCall,
  type MeshDispatchOptions,
  type MeshHandler,
} from './interceptor.js';
import { failDispatch } from './relay.js';

/**
 * A Promise-returning upstream (`(ctx) => Promise<CallResult>`, such as `scriptedUpstream`) as a
 * dispatch function, so interceptors can be driven by it in tests. The attempt's context is the
 * one on the dispatch options; its `signal` aborts when the attempt's controller is aborted.
 */
export function dispatchFromNext(next: Next): DispatchFn {
  return (opts, handler) => {
    const ctx = (opts as MeshDispatchOptions)[kCall];
    if (ctx === undefined) {
      failDispatch(handler, new MeshError('MESH_INTERNAL', 'dispatch without a call context'));
      return true;
    }
    const ac = new AbortController();
    let body: Readable | undefined;
    let done = false;
    const controller: Dispatcher.DispatchController = {
      get aborted() {
        return ac.signal.aborted;
      },
      get paused() {
        return body?.isPaused() ?? false;
      },
      get reason() {
        return (ac.signal.reason as Error | undefined) ?? null;
      },
      abort(reason?: Error) {
        if (ac.signal.aborted) return;
        ac.abort(reason || new MeshError('MESH_ABORTED', 'the attempt was aborted'));
        if (body !== undefined && !done) {
          done = true;
          body.destroy();
          handler.onResponseError?.(controller, ac.signal.reason as Error);
        }
      },
      pause() {
        body?.pause();
      },
      resume() {
        body?.resume();
      },
    };
    handler.onRequestStart?.(controller, {});
    // The attempt's request as the stages above left it (a deadline header, a rewritten path).
    const request =
      opts.headers === ctx.request.headers && opts.path === ctx.request.path && opts.body === ctx.request.body
        ? ctx.request
        : {
            ...ctx.request,
            path: opts.path,
            headers: opts.headers === ctx.request.headers ? ctx.request.headers : headerRecord(opts.headers),
            body: (opts.body ?? null) as CallContext['request']['body'],
          };
    const attempt: CallContext = { ...ctx, request, signal: ac.signal };
    // The endpoint the upstream says this attempt went to (`scriptedUpstream` sets it on the
    // attempt's context when it takes a step, before answering), passed up as the pick stage sets
    // it: stages above read it from an error or a timeout as well as from a head.
    const learnEndpoint = (endpoint: CallResult['endpoint']): void => {
      if (endpoint === undefined || endpoint === ctx.endpoint) return;
      ctx.endpoint = endpoint;
      ctx.attributes.set(ENDPOINT_ATTRIBUTE, endpoint);
    };
    let p: Promise<CallResult>;
    try {
      p = next(attempt);
    } catch (error) {
      p = Promise.reject(error);
    }
    learnEndpoint(attempt.endpoint);
    p.then(
      (result) => {
        if (!isCallResult(result)) {
          // A terminal written in JavaScript (or cast) can answer anything: an error of the call,
          // never a TypeError thrown out of a promise callback.
          done = true;
          handler.onResponseError?.(
            controller,
            new MeshError(
              'MESH_INTERNAL',
              'the upstream answered something that is not a CallResult ({ status, headers, body: a Readable })',
            ),
          );
          return;
        }
        learnEndpoint(result.endpoint ?? attempt.endpoint);
        if (ac.signal.aborted) {
          result.body.destroy();
          return;
        }
        if (result.status < 200) {
          // A 1xx is informational: undici never ends an exchange with one. A terminal answering
          // with it would leave the attempt without a response, so it fails instead of hanging.
          result.body.destroy();
          done = true;
          handler.onResponseError?.(
            controller,
            new MeshError(
              'MESH_INTERNAL',
              `the upstream answered ${result.status}, an informational status, as its final response`,
            ),
          );
          return;
        }
        body = result.body;
        handler.onResponseStart?.(controller, result.status, result.headers as IncomingHttpHeaders, '');
        if (ac.signal.aborted) return;
        if (isEmptyBody(body)) {
          // No body: the exchange ends with its head, in the same turn, as undici ends one.
          done = true;
          body.resume();
          handler.onResponseEnd?.(controller, {});
          return;
        }
        body.on('data', (chunk: Buffer) => {
          if (!done) handler.onResponseData?.(controller, chunk);
        });
        body.once('end', () => {
          if (done) return;
          done = true;
          handler.onResponseEnd?.(controller, {});
        });
        body.once('error', (error: Error) => {
          if (done) return;
          done = true;
          handler.onResponseError?.(controller, error);
        });
      },
      (error: unknown) => {
        learnEndpoint(attempt.endpoint);
        if (done) return;
        done = true;
        // An attempt aborted before its head fails with the abort's reason, whatever the upstream
        // rejected with once it saw its signal abort (`scriptedUpstream`'s `MESH_ABORTED`): as an
        // undici controller aborted with a reason reports that reason.
        if (ac.signal.aborted) {
          handler.onResponseError?.(controller, ac.signal.reason as Error);
          return;
        }
        handler.onResponseError?.(controller, error instanceof Error ? error : new Error(String(error)));
      },
    );
    return true;
  };
}

const kEmptyBody = Symbol('proxyless.emptyBody');

/** A response body known to be empty (a scripted answer without one). */
export function emptyBody(): Readable {
  const body = Readable.from([]);
  (body as Readable & { [kEmptyBody]?: true })[kEmptyBody] = true;
  return body;
}

function isEmptyBody(body: Readable): boolean {
  return (body as Readable & { [kEmptyBody]?: true })[kEmptyBody] === true;
}

/**
 * Where a Promise-returning call ({@link nextFromDispatch}, {@link compose}) reports how it settled:
 * a method under this key on the call's observer (`ctx.observer`) is called once, just before the
 * Promise settles, with the result (at the head) or the error. `recordAttempts` fills the
 * call-level fields of its record (status, error, end time) from it. A registry symbol, so every
 * copy of the package (the ESM and CommonJS builds) agrees on it.
 * @internal
 */
export const kCallSettled: unique symbol = Symbol.for('proxyless.callSettled') as never;

/** An observer that wants to know how the call settled (see {@link kCallSettled}). @internal */
export interface CallSettledListener {
  [kCallSettled]?: (
    ctx: CallContext,
    outcome: { readonly result: CallResult } | { readonly error: unknown },
  ) => void;
}

/**
 * A dispatch function as a Promise-returning call: resolves at the response head with a readable
 * body fed by the exchange (with back-pressure), rejects on an error before the head. `ctx.signal`
 * aborts the exchange. For tests and for wrapping a stack around non-HTTP work; the mesh's own
 * path never turns an exchange into a Promise. An exchange that ends with no final head (only a
 * 1xx) rejects with `MESH_INTERNAL` rather than leaving the call pending.
 */
export function nextFromDispatch(dispatch: DispatchFn): Next {
  return (ctx) =>
    new Promise<CallResult>((resolveCall, rejectCall) => {
      const listener = ctx.observer as CallSettledListener | undefined;
      const resolve = (result: CallResult): void => {
        listener?.[kCallSettled]?.(ctx, { result });
        resolveCall(result);
      };
      const reject = (error: unknown): void => {
        listener?.[kCallSettled]?.(ctx, { error });
        rejectCall(error);
      };
      const r = ctx.request;
      const opts: MeshDispatchOptions = {
        origin: r.origin,
        path: r.path,
        method: r.method as Dispatcher.HttpMethod,
        headers: r.headers,
        body: r.body as Dispatcher.DispatchOptions['body'],
        [kCall]: ctx,
      };
      let controller: Dispatcher.DispatchController | undefined;
      let body: Readable | undefined;
      let settled = false;
      const signal = ctx.signal;
      // The caller's reason itself, whatever it is, as undici rejects a request aborted with it
      // (and the mesh passes it on unchanged).
      const reasonOf = (s: AbortSignal): Error => (s.reason ?? abortError(s)) as Error;
      const onAbort = (): void => controller?.abort(reasonOf(signal!));
      const cleanup = (): void => signal?.removeEventListener('abort', onAbort);
      const handler: MeshHandler = {
        onRequestStart(c) {
          controller = c;
          if (signal?.aborted) c.abort(reasonOf(signal));
        },
        onResponseStart(c, status, headers) {
          if (status < 200 || settled) return;
          settled = true;
          body = new Readable({ read: () => c.resume() });
          // A body nobody reads may be cut by a deadline: that must not become an uncaught 'error'.
          body.on('error', () => undefined);
          const endpoint = (ctx.attributes.get(ENDPOINT_ATTRIBUTE) as CallResult['endpoint']) ?? ctx.endpoint;
          resolve({ status, headers, body, ...(endpoint ? { endpoint } : {}) });
        },
        onResponseData(c, chunk) {
          if (body !== undefined && !body.push(chunk)) c.pause();
        },
        onResponseEnd() {
          cleanup();
          if (!settled) {
            // Only 1xx heads came (informational, skipped above): the exchange gave no answer.
            settled = true;
            reject(
              new MeshError('MESH_INTERNAL', 'the exchange ended without a final response (only a 1xx)'),
            );
            return;
          }
          body?.push(null);
        },
        onResponseError(_c, error) {
          cleanup();
          if (!settled) {
            settled = true;
            reject(error);
          } else body?.destroy(error);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        dispatch(opts, handler);
      } catch (error) {
        cleanup();
        if (!settled) {
          settled = true;
          reject(error);
        }
      }
    });
}

/**
 * Run interceptors over a Promise-returning upstream: `withPolicies([createRetryFilter()], upstream)`.
 * The interceptors see a whole exchange, exactly as on the mesh's path; the result resolves at the
 * head with the body still streaming.
 */
export function compose(interceptors: readonly Interceptor[], terminal: Next): Next {
  return nextFromDispatch(composeInterceptors(interceptors, dispatchFromNext(terminal)));
}

/** `{ status: number, body: a stream }`: what a Promise-returning upstream must answer. */
function isCallResult(result: unknown): result is CallResult {
  if (result === null || typeof result !== 'object') return false;
  const { status, body } = result as { status?: unknown; body?: unknown };
  return (
    typeof status === 'number' &&
    body !== null &&
    typeof body === 'object' &&
    typeof (body as { destroy?: unknown }).destroy === 'function'
  );
}
