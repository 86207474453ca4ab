/**
 * Consul's compiled discovery chain (`GET /v1/discovery-chain/<service>`, consul-api.md §7) →
 * the same {@link RoutingChain} our own compiler produces. Consul has already applied the
 * protocol gate, redirects, default subsets, splitter flattening and failover; this reads the
 * result: `StartNode` → router routes / splitter splits → resolver nodes → `Targets`.
 *
 * Unknown fields are ignored (Consul adds fields across versions). What proxyless cannot honour
 * — a subset filter on `Node.*` or `Checks.*`, a regex JavaScript cannot compile — rejects the
 * chain with `MESH_CONFIG_INVALID` (it is configuration, written in Consul), naming
 * `discovery-chain/<service>` and the field; the caller keeps the last good chain.
 */
import { MeshError } from '@proxyless/core';
import { compileBexpr } from './bexpr.js';
import {
  buildChain,
  type ChainNext,
  type ChainSplit,
  type ChainTarget,
  type RoutingChain,
  type TargetResolver,
} from './chain.js';
import { DEFAULT_CONNECT_TIMEOUT_MS } from './compile.js';
import type { HeaderModifiers, LoadBalancer, ServiceRoute } from './entries.js';
import { EntryIssues, goDurationMs } from './entry-issues.js';
import { mapLoadBalancer } from './load-balancer.js';

type Json = Record<string, unknown>;

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

class Abort extends Error {}

class ChainReader {
  readonly targets = new Map<string, ChainTarget>();
  readonly resolvers = new Map<string, TargetResolver>();
  readonly label: string;

  constructor(
    readonly chain: Json,
    readonly issues: EntryIssues,
  ) {
    this.label = `discovery-chain/${str(chain.ServiceName) || '?'}`;
  }

  fail(path: string, message: string, value?: unknown): never {
    this.issues.add(this.label, path, message, value);
    throw new Abort();
  }

  node(key: string, from: string): Json {
    const nodes = this.chain.Nodes;
    const n = isObj(nodes) ? nodes[key] : undefined;
    if (!isObj(n)) this.fail(from, 'names a node the chain does not have', key);
    return n;
  }

  target(id: string, from: string): ChainTarget {
    const known = this.targets.get(id);
    if (known) return known;
    const all = this.chain.Targets;
    const t = isObj(all) ? all[id] : undefined;
    if (!isObj(t)) this.fail(from, 'names a target the chain does not have', id);
    const subset = isObj(t.Subset) ? t.Subset : {};
    const filter = str(subset.Filter);
    let predicate: ChainTarget['predicate'];
    if (filter) {
      try {
        predicate = compileBexpr(filter);
      } catch (error) {
        this.fail(`Targets[${JSON.stringify(id)}].Subset.Filter`, (error as Error).message, filter);
      }
    }
    const ct = goDurationMs(t.ConnectTimeout);
    const target: ChainTarget = Object.freeze({
      id,
      service: str(t.Service),
      subset: str(t.ServiceSubset),
      datacenter: str(t.Datacenter),
      filter,
      predicate,
      onlyPassing: subset.OnlyPassing === true,
      connectTimeoutMs: ct ? ct : DEFAULT_CONNECT_TIMEOUT_MS,
    });
    this.targets.set(id, target);
    return target;
  }

  resolverNode(key: string, from: string): ChainTarget {
    const n = this.node(key, from);
    if (n.Type !== 'resolver' || !isObj(n.Resolver))
      this.fail(`Nodes[${JSON.stringify(key)}]`, 'expected a resolver node');
    const r = n.Resolver as Json;
    const target = this.target(str(r.Target), `Nodes[${JSON.stringify(key)}].Resolver.Target`);
    if (!this.resolvers.has(target.id)) {
      const fo =
        isObj(r.Failover) && Array.isArray(r.Failover.Targets) ? (r.Failover.Targets as unknown[]) : [];
      const failover = fo
        .map((id, i) => this.target(str(id), `Nodes[${JSON.stringify(key)}].Resolver.Failover.Targets[${i}]`))
        .filter((t) => t.id !== target.id);
      const lb = (
        isObj(n.LoadBalancer) ? n.LoadBalancer : isObj(r.LoadBalancer) ? r.LoadBalancer : undefined
      ) as LoadBalancer | undefined;
      const ct = goDurationMs(r.ConnectTimeout);
      const rt = goDurationMs(r.RequestTimeout);
      this.resolvers.set(
        target.id,
        Object.freeze({
          target,
          isDefault: r.Default === true,
          connectTimeoutMs: ct ? ct : DEFAULT_CONNECT_TIMEOUT_MS,
          requestTimeoutMs: rt ? rt : undefined,
          failover: Object.freeze(failover),
          loadBalancer: mapLoadBalancer(lb),
          hashPolicies: Object.freeze([...(lb?.HashPolicies ?? [])]),
        }),
      );
    }
    return target;
  }

  next(key: string, from: string): ChainNext {
    const n = this.node(key, from);
    if (n.Type === 'resolver') return { type: 'resolver', target: this.resolverNode(key, from) };
    if (n.Type !== 'splitter' || !Array.isArray(n.Splits)) {
      this.fail(`Nodes[${JSON.stringify(key)}]`, 'expected a splitter or resolver node', n.Type);
    }
    const splits = (n.Splits as unknown[]).map((s, i): ChainSplit => {
      const at = `Nodes[${JSON.stringify(key)}].Splits[${i}]`;
      if (!isObj(s) || typeof s.Weight !== 'number')
        this.fail(at, 'expected a split with a numeric Weight', s);
      const def = isObj(s.Definition) ? s.Definition : {};
      return {
        weight: s.Weight,
        target: this.resolverNode(str(s.NextNode), `${at}.NextNode`),
        requestHeaders: isObj(def.RequestHeaders) ? (def.RequestHeaders as HeaderModifiers) : undefined,
        responseHeaders: isObj(def.ResponseHeaders) ? (def.ResponseHeaders as HeaderModifiers) : undefined,
      };
    });
    return { type: 'splitter', name: str(n.Name), splits };
  }

  read(): RoutingChain {
    const startKey = str(this.chain.StartNode);
    const start = this.node(startKey, 'StartNode');
    const routes: { definition: ServiceRoute; next: ChainNext }[] = [];
    let startNext: ChainNext;
    if (start.Type === 'router') {
      const list = Array.isArray(start.Routes) ? (start.Routes as unknown[]) : [];
      if (list.length === 0)
        this.fail(`Nodes[${JSON.stringify(startKey)}].Routes`, 'a router node without routes');
      list.forEach((r, i) => {
        const at = `Nodes[${JSON.stringify(startKey)}].Routes[${i}]`;
        if (!isObj(r)) this.fail(at, 'expected a route object', r);
        const definition = (isObj(r.Definition) ? r.Definition : {}) as ServiceRoute;
        routes.push({ definition, next: this.next(str(r.NextNode), `${at}.NextNode`) });
      });
      // Consul's implicit catch-all is the last route: its next node is the chain's own start.
      startNext = routes[routes.length - 1]!.next;
    } else {
      startNext = this.next(startKey, 'StartNode');
    }
    try {
      return buildChain(
        {
          service: str(this.chain.ServiceName),
          protocol: str(this.chain.Protocol) || 'tcp',
          datacenter: str(this.chain.Datacenter),
          isDefault: this.chain.Default === true,
          routes,
          start: startNext,
          targets: this.targets,
          resolvers: this.resolvers,
        },
        goDurationMs,
      );
    } catch (error) {
      // A route regex that RE2 accepts and JavaScript does not.
      return this.fail('Routes', `a route matcher does not compile: ${(error as Error).message}`);
    }
  }
}

/**
 * Parse the body of `GET /v1/discovery-chain/<service>` (the whole `{ "Chain": … }` object or the
 * `Chain` itself) into a routing chain.
 *
 * @example
 * const res = await fetch(`${consul}/v1/discovery-chain/payments`);
 * const chain = chainFromConsul(await res.json());
 * @throws MeshError `MESH_CONFIG_INVALID` naming `discovery-chain/<service>` and the field.
 */
export function chainFromConsul(body: unknown): RoutingChain {
  const chain = isObj(body) && isObj(body.Chain) ? body.Chain : body;
  if (!isObj(chain) || typeof chain.ServiceName !== 'string') {
    throw new MeshError('MESH_CONFIG_INVALID', 'discovery chain: expected an object with Chain.ServiceName', {
      details: { field: 'Chain', value: body },
    });
  }
  const issues = new EntryIssues();
  let out: RoutingChain | undefined;
  try {
    out = new ChainReader(chain, issues).read();
  } catch (error) {
    if (!(error instanceof Abort)) throw error;
  }
  issues.throwIfAny('discovery chain');
  return out!;
}
