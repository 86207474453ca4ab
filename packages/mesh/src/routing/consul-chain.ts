/**
 * Consul's compiled discovery chain (`GET /v1/discovery-chain/<service>`, consul-api.md §7) →
 * the same {@link RoutingChain} our own compiler produces. Consul has already applied the
 * protocol gate, redirects, default subsets, splitter flattening and failover; this reads the
 * result: `StartNode` → router routes / splitter splits → resolver nodes → `Targets`.
 *
 * Unknown fields are ignored (Consul adds fields across versions), and an absent field means what
 * it means to Consul (Go's zero value: Consul leaves zero values out). A field that is present
 * with a value Consul cannot have sent — a duration that is not a Go duration, a boolean that is
 * not `true`/`false`, a weight or count that is not a number in range, a list that is not a list —
 * is a problem, never read as its default; so is what proxyless cannot honour (a subset filter on
 * `Node.*` or `Checks.*`, a regex JavaScript cannot compile). Every problem rejects the chain
 * with `MESH_CONFIG_INVALID` (it is configuration, written in Consul), naming
 * `discovery-chain/<service>`, the field path and the value; the caller keeps the last good chain.
 */
import {
  Issues,
  MeshError,
  type TSchema,
  Type,
  type Validator,
  validator,
  withoutUnknownKeys,
} from '@proxyless/core';
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
import {
  CONSUL_LB_POLICIES,
  type HeaderModifiers,
  HeaderModifiersSchema,
  HttpMatchSchema,
  type LoadBalancer,
  LoadBalancerSchema,
  RouteDestinationSchema,
  type ServiceRoute,
} from './entries.js';
import { checkDuration, EntryIssues, goDurationMs } from './entry-issues.js';
import { mapLoadBalancer } from './load-balancer.js';

type Json = Record<string, unknown>;

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

const Opt = <T extends TSchema>(t: T) => Type.Optional(t);
const Closed = { additionalProperties: false } as const;

/**
 * A route's `Definition` (Consul's `ServiceRoute`) as Consul's Go types allow it: the entry
 * schema's types, except that the durations are checked on their own (one message for every
 * malformed duration) and `RetryOnStatusCodes` is Consul's `[]uint32`, which Consul does not
 * range-check on write.
 */
const ChainRouteSchema = Type.Object(
  {
    Match: Opt(Type.Object({ HTTP: Opt(HttpMatchSchema) }, Closed)),
    Destination: Opt(
      Type.Object(
        {
          ...RouteDestinationSchema.properties,
          RequestTimeout: Opt(Type.Unknown()),
          IdleTimeout: Opt(Type.Unknown()),
          RetryOnStatusCodes: Opt(Type.Array(Type.Integer({ minimum: 0 }))),
        },
        Closed,
      ),
    ),
  },
  Closed,
);

/** What this reads of a split's `Definition` (Consul's `ServiceSplit`): its header edits. */
const ChainSplitSchema = Type.Object(
  { RequestHeaders: Opt(HeaderModifiersSchema), ResponseHeaders: Opt(HeaderModifiersSchema) },
  Closed,
);

let checkers: { route: Validator<unknown>; split: Validator<unknown>; lb: Validator<unknown> } | undefined;

/** The shape validators, made at the first chain read (not at import: start-up). */
function shapeCheckers(): NonNullable<typeof checkers> {
  checkers ??= {
    route: validator(ChainRouteSchema),
    split: validator(ChainSplitSchema),
    lb: validator(LoadBalancerSchema),
  };
  return checkers;
}

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

  /** Record a problem and read on, so that one error lists every problem of the chain. */
  bad(path: string, message: string, value: unknown): undefined {
    this.issues.add(this.label, path, message, value);
    return undefined;
  }

  /** A Go duration in ms; `undefined` when absent, or when malformed (recorded). */
  duration(v: unknown, path: string): number | undefined {
    if (v === undefined) return undefined;
    checkDuration(v, this.label, path, this.issues);
    return goDurationMs(v);
  }

  /** A boolean; absent is `false` (Go's zero value), anything else but a boolean is recorded. */
  bool(v: unknown, path: string): boolean {
    if (v === undefined) return false;
    if (typeof v !== 'boolean') this.bad(path, 'expected true or false', v);
    return v === true;
  }

  /** A string; absent is `''`, anything else but a string is recorded. */
  string(v: unknown, path: string): string {
    if (v === undefined) return '';
    if (typeof v !== 'string') this.bad(path, 'expected a string', v);
    return str(v);
  }

  /** An object; absent is `undefined`, anything else but an object is recorded. */
  object(v: unknown, path: string): Json | undefined {
    if (v === undefined) return undefined;
    if (!isObj(v)) return this.bad(path, 'expected an object', v);
    return v;
  }

  /**
   * Check `value` against a shape (unknown keys ignored: Consul adds fields across versions),
   * recording each problem under `path`; true when there is none.
   */
  shape(check: Validator<unknown>, value: unknown, path: string): boolean {
    if (check.check(value)) return true;
    const known = withoutUnknownKeys(check.schema, value);
    if (check.check(known)) return true;
    const found = new Issues();
    check.validate(known, path, found);
    for (const e of found.list) this.bad(e.field, `expected ${e.expected}`, e.value);
    return false;
  }

  node(key: string, from: string): Json {
    const nodes = this.chain.Nodes;
    const n = isObj(nodes) ? nodes[key] : undefined;
    if (!isObj(n)) this.fail(from, 'names a node the chain does not have', key);
    return n;
  }

  /** A node or target key at `from`: a string (a missing one names nothing the chain has). */
  key(v: unknown, from: string): string {
    if (v !== undefined && typeof v !== 'string') this.fail(from, 'expected a string', v);
    return str(v);
  }

  target(id: string, from: string): ChainTarget {
    const known = this.targets.get(id);
    if (known) return known;
    const all = this.chain.Targets;
    const t = isObj(all) ? all[id] : undefined;
    if (!isObj(t)) this.fail(from, 'names a target the chain does not have', id);
    const at = `Targets[${JSON.stringify(id)}]`;
    const subset = this.object(t.Subset, `${at}.Subset`) ?? {};
    const filter = this.string(subset.Filter, `${at}.Subset.Filter`);
    let predicate: ChainTarget['predicate'];
    if (filter) {
      try {
        predicate = compileBexpr(filter);
      } catch (error) {
        this.fail(`${at}.Subset.Filter`, (error as Error).message, filter);
      }
    }
    const ct = this.duration(t.ConnectTimeout, `${at}.ConnectTimeout`);
    const target: ChainTarget = Object.freeze({
      id,
      service: this.string(t.Service, `${at}.Service`),
      subset: this.string(t.ServiceSubset, `${at}.ServiceSubset`),
      datacenter: this.string(t.Datacenter, `${at}.Datacenter`),
      filter,
      predicate,
      onlyPassing: this.bool(subset.OnlyPassing, `${at}.Subset.OnlyPassing`),
      connectTimeoutMs: ct ? ct : DEFAULT_CONNECT_TIMEOUT_MS,
    });
    this.targets.set(id, target);
    return target;
  }

  /** The node's `LoadBalancer` (where Consul puts it), else one inside `Resolver`; checked. */
  loadBalancer(n: Json, r: Json, at: string): LoadBalancer | undefined {
    const [lb, path] =
      n.LoadBalancer !== undefined
        ? [n.LoadBalancer, `${at}.LoadBalancer`]
        : [r.LoadBalancer, `${at}.Resolver.LoadBalancer`];
    if (lb === undefined) return undefined;
    if (!this.shape(shapeCheckers().lb, lb, path)) return undefined;
    const policy = (lb as LoadBalancer).Policy ?? '';
    if (!CONSUL_LB_POLICIES.includes(policy)) {
      this.bad(
        `${path}.Policy`,
        `Bad LoadBalancer: unknown policy; one of ${CONSUL_LB_POLICIES.slice(1).join(', ')}`,
        policy,
      );
      return undefined;
    }
    return lb as LoadBalancer;
  }

  resolverNode(key: string, from: string): ChainTarget {
    const n = this.node(key, from);
    const at = `Nodes[${JSON.stringify(key)}]`;
    if (n.Type !== 'resolver' || !isObj(n.Resolver)) this.fail(at, 'expected a resolver node');
    const r = n.Resolver as Json;
    const target = this.target(this.key(r.Target, `${at}.Resolver.Target`), `${at}.Resolver.Target`);
    if (!this.resolvers.has(target.id)) {
      const failover = this.object(r.Failover, `${at}.Resolver.Failover`);
      const foAt = `${at}.Resolver.Failover.Targets`;
      let fo: unknown[] = [];
      if (failover?.Targets !== undefined) {
        if (Array.isArray(failover.Targets)) fo = failover.Targets;
        else this.bad(foAt, 'expected a list of target IDs', failover.Targets);
      }
      const failoverTargets = fo
        .map((id, i) => this.target(this.key(id, `${foAt}[${i}]`), `${foAt}[${i}]`))
        .filter((t) => t.id !== target.id);
      const lb = this.loadBalancer(n, r, at);
      const ct = this.duration(r.ConnectTimeout, `${at}.Resolver.ConnectTimeout`);
      const rt = this.duration(r.RequestTimeout, `${at}.Resolver.RequestTimeout`);
      this.resolvers.set(
        target.id,
        Object.freeze({
          target,
          isDefault: this.bool(r.Default, `${at}.Resolver.Default`),
          connectTimeoutMs: ct ? ct : DEFAULT_CONNECT_TIMEOUT_MS,
          requestTimeoutMs: rt ? rt : undefined,
          failover: Object.freeze(failoverTargets),
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
      if (!isObj(s)) this.fail(at, 'expected a split object', s);
      // Consul leaves a weight of 0 out (`DiscoverySplit.Weight` is `omitempty`).
      const weight = s.Weight === undefined ? 0 : s.Weight;
      if (typeof weight !== 'number' || !Number.isFinite(weight) || weight < 0 || weight > 100)
        this.bad(`${at}.Weight`, 'expected a split weight between 0 and 100', weight);
      const def = this.object(s.Definition, `${at}.Definition`) ?? {};
      const headersOk = this.shape(shapeCheckers().split, def, `${at}.Definition`);
      return {
        weight: typeof weight === 'number' ? weight : 0,
        target: this.resolverNode(this.key(s.NextNode, `${at}.NextNode`), `${at}.NextNode`),
        requestHeaders:
          headersOk && isObj(def.RequestHeaders) ? (def.RequestHeaders as HeaderModifiers) : undefined,
        responseHeaders:
          headersOk && isObj(def.ResponseHeaders) ? (def.ResponseHeaders as HeaderModifiers) : undefined,
      };
    });
    return { type: 'splitter', name: this.string(n.Name, `Nodes[${JSON.stringify(key)}].Name`), splits };
  }

  /** A route's `Definition`: its shape, and its durations (read by `buildChain`). */
  routeDefinition(r: Json, at: string): ServiceRoute {
    const def = this.object(r.Definition, `${at}.Definition`) ?? {};
    if (!this.shape(shapeCheckers().route, def, `${at}.Definition`)) return {};
    const d = def.Destination as Json | undefined;
    this.duration(d?.RequestTimeout, `${at}.Definition.Destination.RequestTimeout`);
    this.duration(d?.IdleTimeout, `${at}.Definition.Destination.IdleTimeout`);
    return def as ServiceRoute;
  }

  read(): RoutingChain {
    const startKey = this.key(this.chain.StartNode, 'StartNode');
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
        const definition = this.routeDefinition(r, at);
        routes.push({
          definition,
          next: this.next(this.key(r.NextNode, `${at}.NextNode`), `${at}.NextNode`),
        });
      });
      // Consul's implicit catch-all is the last route: its next node is the chain's own start.
      startNext = routes[routes.length - 1]!.next;
    } else {
      startNext = this.next(startKey, 'StartNode');
    }
    const protocol = this.string(this.chain.Protocol, 'Protocol');
    const datacenter = this.string(this.chain.Datacenter, 'Datacenter');
    const isDefault = this.bool(this.chain.Default, 'Default');
    // A chain with a problem is refused: do not compile its matchers.
    if (!this.issues.ok) throw new Abort();
    try {
      return buildChain(
        {
          service: str(this.chain.ServiceName),
          protocol: protocol || 'tcp',
          datacenter,
          isDefault,
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
 * @throws MeshError `MESH_CONFIG_INVALID` naming `discovery-chain/<service>`, the field and its
 *   value: every problem of the chain, which is then not applied at all.
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
