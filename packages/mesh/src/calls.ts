/**
 * The mesh's call path: the one entry every face of the mesh reaches (`MeshDispatcher` →
 * `CallPath.dispatch`), which names the destination from the origin and either passes the request
 * through or sends it through the destination's stack with a call context; and `mesh.request` /
 * `mesh.fetch`, undici's own `request()` and `fetch` over that dispatcher.
 *
 * This is the hot path: no allocation, closure or layer here that the call does not need.
 */

import type { UrlObject } from 'node:url';
import {
  type CallContext,
  type Clock,
  copyOptions,
  ENDPOINT_ATTRIBUTE,
  type Endpoint,
  failDispatch,
  formatHostPort,
  hasHeader,
  isHeaderIterable,
  isUndiciRequestHandler,
  kCall,
  type MeshDispatchOptions,
  MeshError,
  pairsToFlat,
  plainDispatchOptions,
  type Random,
  TARGET_ATTRIBUTE,
  undiciErrors,
  undiciSync,
  withHeader,
} from '@proxyless/core';
import type { Dispatcher, request as undiciRequest } from 'undici';
import type { MeshRequestOptions, MeshResponseData } from './api.js';
import { type CallCounter, CallHandler } from './call-handler.js';
import type { Destination } from './destination.js';
import type { DestinationTable } from './destination-table.js';
import { type DispatchTarget, MeshDispatcher } from './dispatcher.js';
import { fetchOver } from './fetch-call.js';
import { hostnameOf, hostOf, requestTarget, serverNameOf, unknownService } from './naming.js';
import { asksForTls, assertOrigin, refuseTls } from './origin.js';
import type { PassthroughDispatcher } from './passthrough.js';
import {
  assertDispatchable,
  DispatchRequest,
  hasIdempotentFlag,
  IDEMPOTENT_HEADER,
  undiciHeaderError,
} from './request.js';
import type { RoutingStage } from './routing-stage.js';
import type { RouteOverrides } from './routing-targets.js';

/** Dispatch option through which `mesh.request` learns the call's context (for `endpoint`). */
const kCallSink = Symbol('proxyless.callSink');

/** Where the mesh puts the call's context for `mesh.request`, which reads its endpoint at the end. */
interface CallSink {
  ctx: CallContext | undefined;
}

/** The result with `endpoint`: the `host:port` of the endpoint that answered, if one did. */
function withEndpoint<T extends MeshResponseData<unknown>>(out: T, sink: CallSink): T {
  const ep = sink.ctx?.attributes.get(ENDPOINT_ATTRIBUTE) as Endpoint | undefined;
  out.endpoint = ep ? formatHostPort(ep.address, ep.port) : undefined;
  return out;
}

/**
 * Fail a dispatch undici would refuse: through the caller's handler, unless it is in the old style
 * without `onError`, which undici's dispatch answers by throwing the error (`DispatcherBase`).
 */
function failUnchecked(handler: Dispatcher.DispatchHandler, error: Error): void {
  const h = handler as { onRequestStart?: unknown; onError?: unknown };
  if (typeof h.onRequestStart !== 'function' && typeof h.onError !== 'function') throw error;
  failDispatch(new CallHandler(handler), error);
}

/**
 * Refuse TLS to a mesh service — unless undici's `Request` refuses the request's headers, which it
 * does before anything else happens to the request: then with its error.
 */
function refuseTlsUnlessRefused(
  handler: Dispatcher.DispatchHandler,
  opts: Dispatcher.DispatchOptions,
  origin: string,
  service: string,
): void {
  const refused = undiciHeaderError(opts.headers);
  if (refused !== undefined) failUnchecked(handler, refused);
  else refuseTls(handler, origin, service);
}

/** What the call path needs from the mesh that owns it. */
export interface CallPathDeps {
  destinations: DestinationTable;
  routing: RoutingStage;
  clock: Clock;
  random: Random;
  /** The pass-through agent for origins that are not mesh services (none: they fail). */
  agent: PassthroughDispatcher | undefined;
  hostHeader: 'logical' | 'endpoint';
  /** The mesh's own `close` and `destroy`, which the dispatcher's close and destroy are. */
  lifecycle: Pick<DispatchTarget, 'close' | 'destroy' | 'closed' | 'destroyed'>;
}

/** The target of the mesh's dispatcher: every request of every face of the mesh comes through here. */
export class CallPath implements DispatchTarget {
  readonly dispatcher: Dispatcher;
  readonly #destinations: DestinationTable;
  /** The table's `byOrigin` (one map for the mesh's life), read here without the extra hop. */
  readonly #byOrigin: Map<string, Destination>;
  readonly #routing: RoutingStage;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #agent: PassthroughDispatcher | undefined;
  readonly #hostHeader: 'logical' | 'endpoint';
  readonly #lifecycle: Pick<DispatchTarget, 'close' | 'destroy' | 'closed' | 'destroyed'>;

  constructor(deps: CallPathDeps) {
    this.#destinations = deps.destinations;
    this.#byOrigin = deps.destinations.byOrigin;
    this.#routing = deps.routing;
    this.#clock = deps.clock;
    this.#random = deps.random;
    this.#agent = deps.agent;
    this.#hostHeader = deps.hostHeader;
    this.#lifecycle = deps.lifecycle;
    this.dispatcher = new MeshDispatcher(this);
  }

  // ---- calls -----------------------------------------------------------------------------------

  /**
   * The mesh dispatcher's one entry: name the destination from the origin, then either pass the
   * request through untouched or send it through the destination's stack with a call context.
   */
  dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    // undici's `DispatcherBase.dispatch`: no handler is thrown at once; bad options reach the handler.
    if (handler === null || typeof handler !== 'object') {
      throw new undiciErrors.InvalidArgumentError('handler must be an object');
    }
    if (opts === null || typeof opts !== 'object') {
      failUnchecked(handler, new undiciErrors.InvalidArgumentError('opts must be an object.'));
      return false;
    }
    // undici reads the options with property gets (inherited values and getters count); every
    // copy the mesh makes on the way is of own keys, so anything but a plain object is read once.
    try {
      opts = plainDispatchOptions(opts);
    } catch (error) {
      failUnchecked(handler, error as Error);
      return false;
    }
    const origin = typeof opts.origin === 'string' ? opts.origin : String(opts.origin ?? '');
    let dest: Destination | undefined;
    try {
      dest = this.#byOrigin.get(origin);
      if (dest === undefined || dest.evicted) {
        const hostname = hostnameOf(origin);
        dest = hostname === undefined ? undefined : this.#destinations.destinationFor(hostname);
        if (dest !== undefined) {
          // Checked once per origin: only an origin undici's Agent would take is remembered.
          assertOrigin(origin);
          if (this.#byOrigin.size < 1024) this.#byOrigin.set(origin, dest);
        }
      }
    } catch (error) {
      failUnchecked(handler, error as Error);
      // As undici's Agent when it refuses an origin, and its dispatcher after `close()`: the
      // request failed and `false` is returned.
      return false;
    }
    const chains = this.#routing.chains;
    // Headers given as an iterable of pairs, read once: the mesh reads a service's headers more
    // than once (the logical Host, its flags, routing, policies), and a one-shot iterator (a
    // generator) would send none the second time. The flat array undici reads the same way.
    if ((dest !== undefined || chains.size > 0) && isHeaderIterable(opts.headers)) {
      try {
        opts = { ...opts, headers: pairsToFlat(opts.headers) };
      } catch (error) {
        failDispatch(new CallHandler(handler), error as Error);
        return true;
      }
    }
    // ---- traffic management: services with a routing chain (one map lookup otherwise) ----
    if (chains.size > 0) {
      const service = dest?.service ?? hostnameOf(origin) ?? '';
      const chain = chains.get(service);
      if (chain !== undefined) {
        // The routed service's own destination stays live (its watch starts Consul's chain watch).
        if (dest !== undefined) dest.lastUsed = this.#clock.now();
        try {
          if (dest === undefined) assertOrigin(origin);
          assertDispatchable(opts, handler);
        } catch (error) {
          failUnchecked(handler, error as Error);
          return true;
        }
        // A routed name is the mesh's own, endpoints of its own or not: never passed through.
        if (asksForTls(origin)) {
          refuseTlsUnlessRefused(handler, opts, origin, service);
          return true;
        }
        try {
          return this.#routing.dispatch(chain, opts, origin, handler, dest);
        } catch (error) {
          failDispatch(new CallHandler(handler), error as Error);
          return true;
        }
      }
    }
    // ---- end traffic management ----
    if (dest === undefined) {
      if (this.#agent) return this.#agent.dispatch(opts, handler);
      failDispatch(new CallHandler(handler, undefined, opts.headers), unknownService(origin));
      return true;
    }
    try {
      assertDispatchable(opts, handler);
    } catch (error) {
      failUnchecked(handler, error as Error);
      return true;
    }
    if (asksForTls(origin)) {
      refuseTlsUnlessRefused(handler, opts, origin, dest.service);
      return true;
    }
    const o = opts as Dispatcher.DispatchOptions & {
      idempotent?: boolean;
      hashKey?: unknown;
      waitForReady?: unknown;
      [kCallSink]?: CallSink;
    };
    let headers = opts.headers;
    let servername: string | undefined;
    try {
      if (this.#hostHeader === 'logical' && !hasHeader(headers, 'host')) {
        const host = hostOf(origin);
        headers = withHeader(headers, 'host', host);
        servername = serverNameOf(host);
      }
      if (hasIdempotentFlag(headers)) {
        // Read the flag from the caller's headers before it is removed from what is sent.
        const request = new DispatchRequest(opts, origin, o.idempotent);
        void request.idempotent;
        headers = withHeader(headers, IDEMPOTENT_HEADER, undefined);
        return this.send(dest, o, headers, handler, request, servername);
      }
    } catch (error) {
      // A malformed header list: undici's own InvalidArgumentError, before anything is sent.
      failDispatch(new CallHandler(handler), error as Error);
      return true;
    }
    return this.send(dest, o, headers, handler, new DispatchRequest(opts, origin, o.idempotent), servername);
  }

  /** Send through a destination's stack with a new call context (also the routing stage's `send`). */
  send(
    dest: Destination,
    opts: Dispatcher.DispatchOptions & {
      hashKey?: unknown;
      waitForReady?: unknown;
      [kCallSink]?: CallSink;
    },
    headers: Dispatcher.DispatchOptions['headers'],
    handler: Dispatcher.DispatchHandler,
    request: DispatchRequest,
    /** The server name undici would derive from the logical `Host` the mesh added (see `serverNameOf`). */
    servername?: string,
    /** A route's timeout and retry settings, for a call the routing stage sends to a target. */
    route?: RouteOverrides,
    /**
     * For a call the routing stage sends: the routed service's own destination. It counts the call
     * in flight too, whatever target (of whatever chain version) takes it: the service is busy.
     */
    owner?: CallCounter,
  ): boolean {
    const attributes = new Map<string, unknown>();
    const key = opts.hashKey;
    // A number is its decimal string, so `42` and `'42'` pick the same endpoint.
    if (typeof key === 'string') attributes.set('hashKey', key);
    else if (typeof key === 'number' && Number.isFinite(key)) attributes.set('hashKey', String(key));
    if (typeof opts.waitForReady === 'boolean') attributes.set('waitForReady', opts.waitForReady);
    // A service subset's routing target: the access log names it as its upstream cluster.
    const target = dest.target;
    if (target !== undefined) attributes.set(TARGET_ATTRIBUTE, target);
    const ctx: CallContext = {
      service: dest.service,
      request,
      attempt: 1,
      deadline: undefined,
      signal: undefined,
      clock: this.#clock,
      random: this.#random,
      excludeEndpoints: undefined,
      attributes,
      observer: undefined,
      endpoint: undefined,
    };
    const sink = opts[kCallSink];
    if (sink !== undefined) sink.ctx = ctx;
    dest.inFlight++;
    dest.lastUsed = this.#clock.now();
    const routedFrom = owner === dest ? undefined : owner;
    if (routedFrom !== undefined) routedFrom.inFlight++;
    // The headers go with the caller's side: a call the mesh answers itself is still refused for
    // a header undici refuses, as undici would (see `CallHandler`; checked only then).
    const call = new CallHandler(handler, dest, headers, routedFrom);
    // Options built by `mesh.request` (they carry its sink) belong to this call: no copy needed.
    const sent = (opts[kCallSink] !== undefined ? opts : copyOptions(opts)) as MeshDispatchOptions;
    // undici's `request()` handler (`mesh.request`'s, or `undici.request()` over the mesh) reads
    // the header lines only to parse them, unless it returns them raw.
    if (
      isUndiciRequestHandler(handler) &&
      (handler as { responseHeaders?: unknown }).responseHeaders !== 'raw'
    )
      call.parsesLines();
    sent.headers = headers;
    // undici's `Request` reads `servername` from the options, though its types do not declare it.
    const named = sent as { servername?: string | null };
    if (servername !== undefined && named.servername == null) named.servername = servername;
    sent[kCall] = ctx;
    // The caller is started here, as undici starts a request inside `dispatch()`: aborting works
    // from now on, wherever the call waits. Aborted already (or its start threw): nothing is sent.
    const early = call.start(ctx);
    if (early !== undefined) {
      call.onResponseError(undefined as never, early);
      return true;
    }
    try {
      return dest.dispatch(sent, call, route);
    } catch (error) {
      failDispatch(call, error as Error);
      // As undici's dispatcher after `close()`: the request failed and `false` is returned.
      return !MeshError.is(error, 'MESH_CLOSED');
    }
  }

  /**
   * undici's `request()` over the mesh dispatcher: every option and result field of undici's own,
   * plus `endpoint`. Not an async function: on the common call (a URL, no `path` or `agent`) it is
   * undici's `dispatcher.request(opts, callback)` in one promise of its own, which spares the
   * async function's state and undici's own promise and closures per call.
   */
  request<TOpaque = null>(
    url: string | URL | UrlObject,
    options: MeshRequestOptions<TOpaque> | null | undefined,
  ): Promise<MeshResponseData<TOpaque>> {
    try {
      // As undici's `request(url, opts)` reads its arguments: `opts` must be an object if given;
      // with none, an object `url` is the options; `path`, `agent`, `method` and `body` are read
      // with gets (inherited ones count), the rest is spread (own keys).
      if (options != null && typeof options !== 'object') {
        throw new undiciErrors.InvalidArgumentError('invalid opts');
      }
      const given = (options ?? (typeof url === 'object' ? url : {})) as MeshRequestOptions<TOpaque> & {
        path?: unknown;
        agent?: unknown;
      };
      const path = given.path;
      const agent = given.agent;
      const target =
        path == null && !agent && (typeof url === 'string' || url instanceof URL)
          ? requestTarget(url)
          : undefined;
      if (target === undefined) return this.#requestByUrl(url, options, given, path, agent);
      // undici's `request(url, opts)` is `dispatcher.request({ ...opts, origin, path, method })`;
      // the same call, built here without its spread literal (see `copyOptions`).
      const opts = copyOptions(given) as Dispatcher.RequestOptions & { [kCallSink]?: CallSink };
      opts.origin = target.origin;
      opts.path = target.path;
      opts.method = (given.method || (given.body ? 'PUT' : 'GET')) as Dispatcher.HttpMethod;
      const sink: CallSink = { ctx: undefined };
      opts[kCallSink] = sink;
      const dispatcher = this.dispatcher;
      return new Promise((resolve, reject) => {
        // undici's promise form of `request()` is this callback form in a promise.
        dispatcher.request(opts, (err, data) => {
          if (err) reject(err);
          else resolve(withEndpoint(data as unknown as MeshResponseData<TOpaque>, sink));
        });
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** `request()` with the options only undici's own URL handling reads (`path`, `agent`, a URL-like object). */
  async #requestByUrl<TOpaque>(
    url: string | URL | UrlObject,
    options: MeshRequestOptions<TOpaque> | null | undefined,
    given: MeshRequestOptions<TOpaque>,
    path: unknown,
    agent: unknown,
  ): Promise<MeshResponseData<TOpaque>> {
    const opts = copyOptions(given) as Parameters<typeof undiciRequest>[1] & {
      [kCallSink]?: CallSink;
      path?: unknown;
      agent?: unknown;
    };
    if (options == null) {
      // No options: undici's `request(url)` reads an object `url` as both the URL and the
      // options, and its `path` (`{ origin, path }`) as part of the URL (`parseURL`). Given back
      // to undici as `request(url, copy)`, the copy's own `path` would be read as `opts.path`
      // instead, a path joined to `url`'s origin, which a URL object with a path is not
      // (`invalid url`): the copy has none. undici reads `method` and `body` of the options
      // with gets (inherited ones count), so the method is set here as it would compute it.
      opts!.path = undefined;
      opts!.method = (given.method || (given.body ? 'PUT' : 'GET')) as Dispatcher.HttpMethod;
    } else if (path != null) opts!.path = path;
    if (agent) opts!.agent = agent;
    opts!.dispatcher = this.dispatcher;
    const sink: CallSink = { ctx: undefined };
    opts![kCallSink] = sink;
    // undici's own `request()`, called now (loaded at once on first use) so that it reads `url` in
    // this turn.
    const r = await undiciSync().request(url, opts);
    return withEndpoint(r as unknown as MeshResponseData<TOpaque>, sink);
  }

  /**
   * undici's `fetch` over the mesh dispatcher. Its arguments are read now, as fetch reads them, and
   * anything it throws rejects the promise it returns.
   */
  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    return fetchOver(this.dispatcher, input, init);
  }

  close(): Promise<void> {
    return this.#lifecycle.close();
  }

  get closed(): boolean {
    return this.#lifecycle.closed;
  }

  get destroyed(): boolean {
    return this.#lifecycle.destroyed;
  }

  destroy(reason?: Error): Promise<void> {
    return this.#lifecycle.destroy(reason);
  }
}
