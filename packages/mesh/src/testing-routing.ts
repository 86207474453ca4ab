/**
 * Traffic management alone, for unit tests: where config entries send a request, and the request
 * as it would be sent, with no mesh, no registry and no sockets (see {@link testRoute}).
 */
import { type DispatchHeaders, type Random, seededRandom } from '@proxyless/core';
import { ROUTING_DC } from './config-apply.js';
import type { ChainTarget, HeaderOps, RetryOverride } from './routing/index.js';
import {
  compileRoutingConfig,
  editRequestHeaders,
  rewritePath,
  route,
  routeRequestOf,
} from './routing/index.js';
import { pathAsSent } from './routing-stage.js';

/** A request to route: `url` names the service (`http://web/admin?x=1`), as `mesh.request` takes it. */
export interface TestRouteRequest {
  /** @defaultValue `GET` */
  method?: string;
  /** In any form undici takes: a record, a flat `[name, value, …]` array, pairs, `Headers`. */
  headers?: DispatchHeaders | Headers;
  /** Added to the path as undici adds it. */
  query?: Record<string, unknown>;
}

/** Where a request goes and how it is sent, as the mesh would route it (see {@link testRoute}). */
export interface TestRouteResult {
  /** The service the URL names. */
  readonly service: string;
  /** Index of the router's route that matched (Consul's implicit catch-all is the last); -1 without a router. */
  readonly routeIndex: number;
  /** Index of the split taken; -1 when no splitter chose. */
  readonly splitIndex: number;
  /** The target: Consul's target ID, its service, its subset (`''`: the whole service). */
  readonly target: Pick<ChainTarget, 'id' | 'service' | 'subset' | 'datacenter'>;
  /** Failover targets of the target's resolver, in order (IDs). */
  readonly failover: readonly string[];
  /** The path as sent: the `query` option added, the route's `PrefixRewrite` applied. */
  readonly path: string;
  /** The request headers as sent (`[name, value]`, names as written): the route's and split's edits, the logical `Host`. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** The edits the route and split make to the response's headers. */
  readonly responseHeaders: HeaderOps | undefined;
  /** The route's `RequestTimeout` (else the target resolver's), in ms; `undefined`: the service's policy. */
  readonly requestTimeoutMs: number | undefined;
  /** The route's `IdleTimeout`, in ms. */
  readonly idleTimeoutMs: number | undefined;
  /** The route's retry settings; `undefined`: the service's policy. */
  readonly retry: RetryOverride | undefined;
}

/**
 * Route one request by config entries (`service-router`, `service-splitter`, `service-resolver`,
 * `service-defaults`, as in the config file's `configEntries`), validated and compiled as the mesh
 * compiles them, and decide as the mesh decides: the route matched, the split drawn (seeded
 * randomness: a split's share over many calls is testable), the target, and the path and headers
 * as they would be sent. Endpoints and their health play no part (a failover happens only when a
 * target has no endpoints: `failover` lists the order).
 *
 * @throws MeshError `MESH_CONFIG_INVALID` naming each bad entry (`service-splitter/web`) and field.
 * @example
 * const r = testRoute(entries, 'http://web/admin/x', { headers: { 'x-canary': '1' } });
 * r.target.subset; // 'v2'
 * r.path; // '/x'
 */
export function testRoute(
  configEntries: readonly unknown[],
  url: string | URL,
  request: TestRouteRequest = {},
  options: { random?: Random } = {},
): TestRouteResult {
  const u = typeof url === 'string' ? new URL(url) : url;
  const service = u.hostname;
  const chain = compileRoutingConfig(configEntries, { datacenter: ROUTING_DC }).chain(service);
  const method = request.method ?? 'GET';
  const headers =
    request.headers instanceof Headers
      ? ([...request.headers].flat() as unknown as DispatchHeaders)
      : (request.headers as DispatchHeaders);
  const opts = { method, path: `${u.pathname}${u.search}`, headers, query: request.query };
  const sentPath = pathAsSent(opts as Parameters<typeof pathAsSent>[0]);
  const decision = route(chain, routeRequestOf(method, sentPath, headers), options.random ?? seededRandom(1));
  const host = u.port ? `${decision.target.service}:${u.port}` : decision.target.service;
  const edited = editRequestHeaders(headers, decision.requestHeaders, host) as unknown as unknown[];
  const pairs: Array<readonly [string, string]> = [];
  for (let i = 0; i + 1 < edited.length; i += 2) {
    const v = edited[i + 1];
    if (v === undefined) continue;
    for (const x of Array.isArray(v) ? v : [v]) pairs.push([String(edited[i]), x === null ? '' : String(x)]);
  }
  const t = decision.target;
  return {
    service,
    routeIndex: decision.routeIndex,
    splitIndex: decision.splitIndex,
    target: { id: t.id, service: t.service, subset: t.subset, datacenter: t.datacenter },
    failover: decision.resolver.failover.map((f) => f.id),
    path: rewritePath(decision, sentPath),
    headers: pairs,
    responseHeaders: decision.responseHeaders,
    requestTimeoutMs: decision.requestTimeoutMs,
    idleTimeoutMs: decision.idleTimeoutMs,
    retry: decision.retry,
  };
}
