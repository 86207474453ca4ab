/**
 * The Consul double's discovery-chain compiler: stored config entries → the JSON Consul answers
 * on `GET /v1/discovery-chain/<service>`, written to consul-api.md §7 (and Consul's
 * `agent/consul/discoverychain/compile.go`). It shares no code with the mesh's own compiler on
 * purpose: a test routes through both and compares.
 *
 * Test tree only: never part of a published package.
 */

type Json = Record<string, unknown>;

/** A compile failure; the double answers 500 with `message` as the body. */
export class ChainError extends Error {}

/** Read-only view of the stored entries the compiler needs. */
export interface EntryLookup {
  get(kind: string, name: string): Json | undefined;
}

export interface ChainOverrides {
  OverrideProtocol?: string;
  OverrideConnectTimeout?: string;
}

const L7 = ['http', 'http2', 'grpc'];

/** Protocol of a service (§6.2): service-defaults, else proxy-defaults global, else tcp. */
export function serviceProtocol(entries: EntryLookup, service: string): string {
  const sd = entries.get('service-defaults', service);
  if (sd) return String(sd.Protocol || 'tcp').toLowerCase();
  const pd = entries.get('proxy-defaults', 'global');
  const cfg = pd?.Config as Json | undefined;
  return String(cfg?.protocol || 'tcp').toLowerCase();
}

function goNanos(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v !== 'string' || v === '' || v === '0') return 0;
  const unit: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 6e10, h: 3.6e12 };
  let n = 0;
  for (const m of v.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g))
    n += Number(m[1]) * (unit[m[2] ?? ''] ?? 0);
  return n;
}

/** Go's `time.Duration.String()` for whole-millisecond durations (`5s`, `1m30s`, `250ms`). */
function goDurationString(ns: number): string {
  if (ns === 0) return '0s';
  const ms = Math.round(ns / 1e6);
  if (ms < 1000) return `${ms}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = (ms % 60_000) / 1000;
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${s}s`;
}

/** `NormalizeServiceSplitWeight`: round to 0.01 (`math.Round(w*100) / 100`, half away from zero). */
function normalizeWeight(w: number): number {
  // Go computes in float32; toPrecision(12) keeps float64 noise (16.665 as 16.66499…) off a tie.
  return Math.round(Number((w * 100).toPrecision(12))) / 100;
}

type Mods = { Add?: Record<string, string>; Set?: Record<string, string>; Remove?: string[] };

function isZero(m: Mods | undefined): boolean {
  return (
    !m ||
    (Object.keys(m.Add ?? {}).length === 0 &&
      Object.keys(m.Set ?? {}).length === 0 &&
      (m.Remove ?? []).length === 0)
  );
}

/**
 * `MergeHTTPHeaderModifiers(base, overrides)`: overrides' Add/Set win per name, Remove is the
 * union without duplicates. `nil` (undefined) when both are empty.
 */
function mergeHeaders(base: unknown, overrides: unknown): Mods | undefined {
  const b = base as Mods | undefined;
  const o = overrides as Mods | undefined;
  if (isZero(b)) return isZero(o) ? undefined : structuredClone(o);
  const merged = structuredClone(b) as Mods;
  if (isZero(o)) return merged;
  if (o?.Add) merged.Add = { ...merged.Add, ...o.Add };
  if (o?.Set) merged.Set = { ...merged.Set, ...o.Set };
  const removed = merged.Remove ?? [];
  for (const k of o?.Remove ?? []) if (!removed.includes(k)) removed.push(k);
  if (removed.length) merged.Remove = removed;
  return merged;
}

class Compiler {
  readonly nodes: Record<string, Json> = {};
  readonly targets: Record<string, Json> = {};
  readonly protocol: string;

  constructor(
    readonly entries: EntryLookup,
    readonly service: string,
    readonly dc: string,
    readonly clusterId: string,
    readonly overrides: ChainOverrides,
  ) {
    this.protocol = (overrides.OverrideProtocol || serviceProtocol(entries, service)).toLowerCase();
  }

  targetId(svc: string, subset: string, dc: string): string {
    return `${subset ? `${subset}.` : ''}${svc}.default.default.${dc}`;
  }

  checkProtocol(svc: string): void {
    if (this.overrides.OverrideProtocol) return;
    const p = serviceProtocol(this.entries, svc);
    if (p !== this.protocol) {
      throw new ChainError(
        `discovery chain "${this.service}" uses inconsistent protocols; service "${svc}.default.default" has "${p}" which is not "${this.protocol}"`,
      );
    }
  }

  connectTimeout(resolver: Json | undefined): string {
    if (this.overrides.OverrideConnectTimeout) return this.overrides.OverrideConnectTimeout;
    const ns = goNanos(resolver?.ConnectTimeout);
    return goDurationString(ns > 0 ? ns : 5e9);
  }

  addTarget(svc: string, subset: string, dc: string): string {
    const id = this.targetId(svc, subset, dc);
    if (this.targets[id]) return id;
    const resolver = this.entries.get('service-resolver', svc);
    const subsets = (resolver?.Subsets ?? {}) as Record<string, Json>;
    if (subset && !subsets[subset])
      throw new ChainError(`service "${svc}" does not have a subset named "${subset}"`);
    const def = subset ? subsets[subset] : undefined;
    const sni = `${subset ? `${subset}.` : ''}${svc}.default.${dc}.internal.${this.clusterId}.consul`;
    this.targets[id] = {
      ID: id,
      Service: svc,
      ...(subset ? { ServiceSubset: subset } : {}),
      Namespace: 'default',
      Partition: 'default',
      Datacenter: dc,
      MeshGateway: {},
      Subset: def
        ? { ...(def.Filter ? { Filter: def.Filter } : {}), ...(def.OnlyPassing ? { OnlyPassing: true } : {}) }
        : {},
      TransparentProxy: {},
      ConnectTimeout: this.connectTimeout(resolver),
      SNI: sni,
      Name: sni,
    };
    return id;
  }

  /** Where `svc`/`subset`/`dc` ends up once resolvers' redirects are followed (loops detected). */
  redirected(svc: string, subset: string, dc: string, seen: string[] = []): [string, string, string] {
    const redirect = this.entries.get('service-resolver', svc)?.Redirect as Json | undefined;
    if (!redirect) return [svc, subset, dc];
    const here = this.targetId(svc, subset, dc);
    const nsvc = String(redirect.Service || svc);
    const nsub = String(redirect.ServiceSubset || (nsvc === svc ? subset : ''));
    const ndc = String(redirect.Datacenter || dc);
    const next = this.targetId(nsvc, nsub, ndc);
    if (next === here) return [svc, subset, dc];
    if (seen.includes(next))
      throw new ChainError(`detected circular resolver redirect: [${[...seen, here, next].join(' -> ')}]`);
    return this.redirected(nsvc, nsub, ndc, [...seen, here]);
  }

  /** Redirect (with loop detection), then the default subset; returns the resolver node key. */
  resolver(svc: string, subset: string, dc: string, seen: string[] = []): string {
    const entry = this.entries.get('service-resolver', svc);
    const redirect = entry?.Redirect as Json | undefined;
    const here = this.targetId(svc, subset, dc);
    if (redirect) {
      const nsvc = String(redirect.Service || svc);
      const nsub = String(redirect.ServiceSubset || (nsvc === svc ? subset : ''));
      const ndc = String(redirect.Datacenter || dc);
      const next = this.targetId(nsvc, nsub, ndc);
      if (next !== here) {
        if (seen.includes(next))
          throw new ChainError(
            `detected circular resolver redirect: [${[...seen, here, next].join(' -> ')}]`,
          );
        return this.resolver(nsvc, nsub, ndc, [...seen, here]);
      }
    }
    this.checkProtocol(svc);
    const effective = subset || String(entry?.DefaultSubset ?? '');
    const id = this.addTarget(svc, effective, dc);
    const key = `resolver:${id}`;
    if (this.nodes[key]) return key;
    const failover = (entry?.Failover ?? {}) as Record<string, Json>;
    const fo = failover[effective] ?? failover['*'];
    const foIds: string[] = [];
    if (fo) {
      const refs: [unknown, unknown, unknown][] = [];
      const targets = (fo.Targets ?? []) as Json[];
      if (targets.length) for (const t of targets) refs.push([t.Service, t.ServiceSubset, t.Datacenter]);
      else if (((fo.Datacenters ?? []) as string[]).length)
        for (const d of fo.Datacenters as string[]) refs.push([fo.Service, fo.ServiceSubset, d]);
      else refs.push([fo.Service, fo.ServiceSubset, undefined]);
      for (const [s, sub, d] of refs) {
        const fsvc = String(s || svc);
        const fsub = String(sub || (fsvc === svc ? effective : ''));
        // Each failover target resolved as Consul's getResolverNode(target, true) does: its own
        // resolver's Redirect, then its DefaultSubset (only its failover is not followed).
        const [rsvc, rsub, rdc] = this.redirected(fsvc, fsub, String(d || dc));
        const dsub =
          rsub ||
          (rsvc !== svc ? String(this.entries.get('service-resolver', rsvc)?.DefaultSubset ?? '') : '');
        const fid = this.addTarget(rsvc, dsub, rdc);
        if (fid !== id && !foIds.includes(fid)) foIds.push(fid);
      }
    }
    const rt = goNanos(entry?.RequestTimeout);
    this.nodes[key] = {
      Type: 'resolver',
      Name: id,
      Resolver: {
        ...(entry ? {} : { Default: true }),
        ConnectTimeout: this.connectTimeout(entry),
        // No string marshaller upstream: integer nanoseconds (consul-api.md §7).
        ...(rt > 0 ? { RequestTimeout: rt } : {}),
        Target: id,
        ...(foIds.length ? { Failover: { Targets: foIds } } : {}),
      },
      ...(entry?.LoadBalancer ? { LoadBalancer: entry.LoadBalancer } : {}),
    };
    return key;
  }

  /** Splits of `svc`'s splitter, flattened (weights multiplied through nested splitters). */
  splits(svc: string, stack: string[]): Json[] {
    if (stack.includes(svc))
      throw new ChainError(`detected circular reference: [${[...stack, svc].join(' -> ')}]`);
    this.checkProtocol(svc);
    const splitter = this.entries.get('service-splitter', svc)!;
    const out: Json[] = [];
    for (const s of (splitter.Splits ?? []) as Json[]) {
      const ssvc = String(s.Service || svc);
      const weight = Number(s.Weight);
      if (!s.ServiceSubset && ssvc !== svc && this.entries.get('service-splitter', ssvc)) {
        // flattenAdjacentSplitterNodes: weight scaled and normalised, the parent's header edits
        // merged into the child's definition (ServiceSplit.MergeParent).
        for (const inner of this.splits(ssvc, [...stack, svc])) {
          const def = inner.Definition as Json;
          out.push({
            ...inner,
            Definition: {
              ...def,
              RequestHeaders: mergeHeaders(s.RequestHeaders, def.RequestHeaders),
              ResponseHeaders: mergeHeaders(def.ResponseHeaders, s.ResponseHeaders),
            },
            Weight: normalizeWeight((weight * Number(inner.Weight)) / 100),
          });
        }
        continue;
      }
      out.push({
        Definition: s,
        Weight: weight,
        NextNode: this.resolver(ssvc, String(s.ServiceSubset ?? ''), this.dc),
      });
    }
    return out;
  }

  splitterOrResolver(svc: string): string {
    if (!this.entries.get('service-splitter', svc) || !L7.includes(this.protocol))
      return this.resolver(svc, '', this.dc);
    const key = `splitter:${svc}.default.default`;
    if (!this.nodes[key])
      this.nodes[key] = { Type: 'splitter', Name: `${svc}.default.default`, Splits: this.splits(svc, []) };
    return key;
  }

  compile(): Json {
    const svc = this.service;
    const router = this.entries.get('service-router', svc);
    const splitter = this.entries.get('service-splitter', svc);
    const l7 = L7.includes(this.protocol);
    if ((router || splitter) && !l7 && !this.overrides.OverrideProtocol) {
      throw new ChainError(
        `discovery chain "${svc}" uses a protocol "${this.protocol}" that does not permit advanced routing or splitting behavior`,
      );
    }
    let start: string;
    if (router && l7) {
      const routes = [
        ...((router.Routes ?? []) as Json[]),
        {
          Match: { HTTP: { PathPrefix: '/' } },
          Destination: { Service: svc, Namespace: 'default', Partition: 'default' },
        },
      ].map((def) => {
        const d = (def.Destination ?? {}) as Json;
        const dsvc = String(d.Service || svc);
        const next = d.ServiceSubset
          ? this.resolver(dsvc, String(d.ServiceSubset), this.dc)
          : this.splitterOrResolver(dsvc);
        return { Definition: def, NextNode: next };
      });
      start = `router:${svc}.default.default`;
      this.nodes[start] = { Type: 'router', Name: `${svc}.default.default`, Routes: routes };
    } else {
      start = this.splitterOrResolver(svc);
    }
    const isDefault = !router && !splitter && !this.entries.get('service-resolver', svc);
    return {
      ServiceName: svc,
      Namespace: 'default',
      Partition: 'default',
      Datacenter: this.dc,
      ...(isDefault ? { Default: true } : {}),
      Protocol: this.protocol,
      StartNode: start,
      Nodes: this.nodes,
      Targets: this.targets,
      AutoVirtualIPs: null,
      ManualVirtualIPs: null,
    };
  }
}

/**
 * Compile the chain of `service` from the stored entries.
 * @throws ChainError with Consul's message (the double answers 500).
 */
export function compileDiscoveryChain(
  entries: EntryLookup,
  service: string,
  options: { datacenter: string; clusterId: string; overrides?: ChainOverrides },
): Json {
  return new Compiler(
    entries,
    service,
    options.datacenter,
    options.clusterId,
    options.overrides ?? {},
  ).compile();
}
