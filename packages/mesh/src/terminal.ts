import {
  abortError,
  type Balancer,
  type CallContext,
  type CallResult,
  type Endpoint,
  MeshError,
  type Next,
} from '@proxyless/core';
import type { Dispatcher } from 'undici';
import { DirectHandler } from './direct.js';

/**
 * Call attribute set by the mesh dispatcher (the `fetch` path): the attempt is dispatched with a
 * handler whose body can later stream straight into the caller's handler, instead of through
 * undici's `request()` stream.
 */
export const DIRECT_ATTRIBUTE = 'proxyless.direct';

/** Where the terminal gets a connection pool for an endpoint. */
export interface PoolSource {
  pool(endpoint: Endpoint): Dispatcher;
}

/** Connect-phase failures: nothing reached the endpoint, so any request may be sent elsewhere. */
const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_HAS_EXPIRED',
]);

/**
 * The innermost stage: pick an endpoint, send through its pool, and report the outcome to the
 * balancer — the one place every attempt's outcome is recorded. Resolves when the response head
 * arrives; the body streams to the caller.
 */
export function createTerminal(service: string, balancer: () => Balancer, pools: PoolSource): Next {
  return async (ctx: CallContext): Promise<CallResult> => {
    if (ctx.signal?.aborted) throw abortError(ctx.signal);
    const lb = balancer();
    const endpoint = lb.pick(ctx);
    const req = ctx.request;
    const started = ctx.clock.now();
    lb.onAttemptStart(endpoint);
    if (ctx.attributes.get(DIRECT_ATTRIBUTE) === true) return dispatchDirect(ctx, lb, endpoint, started);
    let response: Dispatcher.ResponseData;
    try {
      response = await pools.pool(endpoint).request({
        method: req.method as Dispatcher.HttpMethod,
        path: req.path,
        headers: req.headers,
        body: req.body as Dispatcher.DispatchOptions['body'],
        signal: ctx.signal,
      });
    } catch (error) {
      throw failed(error, ctx, lb, endpoint, started);
    }
    lb.onAttemptEnd(endpoint, { status: response.statusCode, latencyMs: ctx.clock.now() - started });
    return { status: response.statusCode, headers: response.headers, body: response.body, endpoint };
  };

  /** Map a transport failure and record it as the attempt's outcome. */
  function failed(
    error: unknown,
    ctx: CallContext,
    lb: Balancer,
    endpoint: Endpoint,
    started: number,
  ): MeshError {
    const mapped = mapError(error, ctx, endpoint);
    lb.onAttemptEnd(endpoint, {
      latencyMs: ctx.clock.now() - started,
      failure:
        mapped.code === 'MESH_CONNECT_FAILED'
          ? 'connect'
          : mapped.code === 'MESH_TIMEOUT'
            ? 'timeout'
            : mapped.code === 'MESH_ABORTED'
              ? 'cancelled'
              : 'reset',
    });
    return mapped;
  }

  function dispatchDirect(
    ctx: CallContext,
    lb: Balancer,
    endpoint: Endpoint,
    started: number,
  ): Promise<CallResult> {
    const req = ctx.request;
    return new Promise<CallResult>((resolve, reject) => {
      const handler = new DirectHandler(ctx.signal, {
        head: (status, responseHeaders, body) => {
          lb.onAttemptEnd(endpoint, { status, latencyMs: ctx.clock.now() - started });
          resolve({ status, headers: responseHeaders, body, endpoint });
        },
        fail: (error) => reject(failed(error, ctx, lb, endpoint, started)),
      });
      try {
        pools.pool(endpoint).dispatch(
          {
            method: req.method as Dispatcher.HttpMethod,
            path: req.path,
            headers: req.headers,
            body: req.body as Dispatcher.DispatchOptions['body'],
          },
          handler,
        );
      } catch (error) {
        reject(failed(error, ctx, lb, endpoint, started));
      }
    });
  }

  function mapError(error: unknown, ctx: CallContext, endpoint: Endpoint): MeshError {
    // An aborted attempt reports why it was aborted (a per-try timeout's MESH_TIMEOUT, the caller).
    if (ctx.signal?.aborted) return abortError(ctx.signal);
    if (MeshError.is(error)) return error;
    const code = (error as { code?: unknown }).code;
    const codeText = typeof code === 'string' ? code : 'unknown';
    const message = error instanceof Error ? error.message : String(error);
    if (CONNECT_CODES.has(codeText) || codeText.startsWith('ERR_TLS_') || codeText.startsWith('ERR_SSL_')) {
      return new MeshError(
        'MESH_CONNECT_FAILED',
        `connect to ${endpoint.id} for "${service}" failed: ${message}`,
        {
          cause: error,
          details: { service, endpoint: endpoint.id, phase: 'connect', bodySent: false, errorCode: codeText },
        },
      );
    }
    if (codeText === 'UND_ERR_HEADERS_TIMEOUT' || codeText === 'UND_ERR_BODY_TIMEOUT') {
      return new MeshError('MESH_TIMEOUT', `${endpoint.id} for "${service}": ${message}`, {
        cause: error,
        details: {
          service,
          endpoint: endpoint.id,
          limit: 'headers',
          phase: 'response',
          bodySent: ctx.request.body !== null,
          errorCode: codeText,
        },
      });
    }
    return new MeshError(
      'MESH_UPSTREAM_RESET',
      `request to ${endpoint.id} for "${service}" failed: ${message}`,
      {
        cause: error,
        // We cannot know how much of a body went out before the connection broke: assume some did.
        details: {
          service,
          endpoint: endpoint.id,
          phase: 'response',
          bodySent: ctx.request.body !== null,
          errorCode: codeText,
        },
      },
    );
  }
}
