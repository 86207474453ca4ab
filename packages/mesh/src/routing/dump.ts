/**
 * A compiled routing chain as the admin `/config_dump` shows it (Envoy's route configuration in
 * its config dump): each route as written with where it leads, the splits with their weights, and
 * every target with its subset filter, timeouts, failover order and load-balancer settings. Plain
 * JSON: no maps, matchers or typed arrays.
 */
import type { ChainNext, RoutingChain } from './chain.js';

function next(n: ChainNext): Record<string, unknown> {
  if (n.type === 'resolver') return { target: n.target.id };
  return {
    splitter: n.name,
    splits: n.splits.map((s) => ({
      weight: s.weight,
      target: s.target.id,
      ...(s.requestHeaders !== undefined ? { requestHeaders: s.requestHeaders } : {}),
      ...(s.responseHeaders !== undefined ? { responseHeaders: s.responseHeaders } : {}),
    })),
  };
}

/** The chain in JSON: `routes` (Consul's implicit catch-all last) or `start`, and `targets` by ID. */
export function chainDump(chain: RoutingChain): Record<string, unknown> {
  const targets: Record<string, unknown> = {};
  for (const [id, t] of chain.targets) {
    const r = chain.resolvers.get(id);
    targets[id] = {
      service: t.service,
      ...(t.subset !== '' ? { subset: t.subset } : {}),
      ...(t.filter !== '' ? { filter: t.filter } : {}),
      onlyPassing: t.onlyPassing,
      connectTimeoutMs: t.connectTimeoutMs,
      ...(r?.requestTimeoutMs !== undefined ? { requestTimeoutMs: r.requestTimeoutMs } : {}),
      ...(r !== undefined && r.failover.length > 0 ? { failover: r.failover.map((f) => f.id) } : {}),
      ...(r?.loadBalancer !== undefined ? { loadBalancer: r.loadBalancer } : {}),
      ...(r !== undefined && r.hashPolicies.length > 0 ? { hashPolicies: r.hashPolicies } : {}),
    };
  }
  return {
    protocol: chain.protocol,
    datacenter: chain.datacenter,
    ...(chain.routes.length > 0
      ? {
          routes: chain.routes.map((r) => ({
            index: r.index,
            match: r.definition.Match ?? null,
            destination: r.definition.Destination ?? null,
            ...next(r.next),
          })),
        }
      : { start: next(chain.start) }),
    targets,
  };
}
