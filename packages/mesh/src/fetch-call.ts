/**
 * `mesh.fetch`: undici's own `fetch` over the mesh dispatcher, with what fetch reads from its
 * arguments left as fetch reads it, and calls of Node's bundled fetch (its `Request` and
 * `FormData`) handed to that fetch.
 */

import { undiciSync } from '@proxyless/core';
import type { Dispatcher, fetch as undiciFetch } from 'undici';

type Undici = ReturnType<typeof undiciSync>;

/** Node's own `fetch` (the copy of undici bundled with Node), as it was when the mesh was loaded. */
const nodeFetch: typeof fetch | undefined = globalThis.fetch;

/**
 * A call undici's `fetch` would misread: a `Request`, or a `FormData` body, of another fetch than
 * undici's — Node's global one, from the copy of undici bundled with Node — which undici's `fetch`
 * would send as the text "[object Request]" or "[object FormData]". Node's own fetch takes them
 * whole (a body's source and length, for framing and redirects; a form's parts) and, given the
 * mesh dispatcher, sends them through the mesh: what the global `fetch` does after `install()`.
 * Node's fetch as it was at load, not `globalThis.fetch` now: that may be `mesh.fetch` itself, or
 * a wrapper around it.
 */
function foreignCall(u: Undici, input: unknown, init: unknown): boolean {
  if (nodeFetch === undefined) return false;
  if (
    typeof input === 'object' &&
    input !== null &&
    !(input instanceof URL) &&
    !(input instanceof u.Request)
  ) {
    const NodeRequest = (globalThis as { Request?: typeof Request }).Request;
    if (NodeRequest !== undefined && input instanceof NodeRequest) return true;
  }
  const body = typeof init === 'object' && init !== null ? (init as { body?: unknown }).body : undefined;
  if (typeof body !== 'object' || body === null || body instanceof u.FormData) return false;
  const NodeFormData = (globalThis as { FormData?: typeof FormData }).FormData;
  return NodeFormData !== undefined && body instanceof NodeFormData;
}

/**
 * `init` as fetch reads it, with the mesh dispatcher: fetch reads each member of its `RequestInit`
 * with a property get (inherited members and getters included, a getter's error rejecting the
 * call), so `init` is not copied but seen through, with `dispatcher` answered by the mesh. A value
 * that is not an object is passed as it is, for fetch to reject as it does.
 */
function initWithDispatcher(init: unknown, dispatcher: Dispatcher): unknown {
  if (init == null) return { dispatcher };
  if (typeof init !== 'object' && typeof init !== 'function') return init;
  return new Proxy(init as object, {
    get: (target, key) => (key === 'dispatcher' ? dispatcher : Reflect.get(target, key)),
    has: (target, key) => key === 'dispatcher' || Reflect.has(target, key),
  });
}

/**
 * undici's `fetch` over the mesh dispatcher. Its arguments are read now, as fetch reads them, and
 * anything it throws rejects the promise it returns.
 */
export function fetchOver(
  dispatcher: Dispatcher,
  input: string | URL | Request,
  init?: RequestInit,
): Promise<Response> {
  try {
    // undici's fetch is loaded on the first call (core/undici.ts), then called directly.
    const u = undiciSync();
    const opts = initWithDispatcher(init, dispatcher);
    const result = foreignCall(u, input, init)
      ? (nodeFetch as typeof fetch)(input, opts as RequestInit)
      : u.fetch(input as Parameters<typeof undiciFetch>[0], opts as Parameters<typeof undiciFetch>[1]);
    return result as unknown as Promise<Response>;
  } catch (error) {
    return Promise.reject(error);
  }
}
