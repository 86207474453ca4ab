/** Health as a registry reports it. Resolvers that know no health report `passing`. */
export type EndpointHealth = 'passing' | 'warning' | 'critical';

/** One network address of a service instance. Immutable. */
export interface Endpoint {
  /** Stable identity within the service: the registry's instance id, else `address:port`. */
  readonly id: string;
  /** IPv4, IPv6 (no brackets) or host name. */
  readonly address: string;
  readonly port: number;
  /** Relative weight, ≥ 0. @defaultValue 1 */
  readonly weight: number;
  /** Locality zone (for zone-aware balancing). */
  readonly zone?: string;
  /**
   * Priority level, Envoy's `priority` (an SRV record's priority): traffic goes to the lowest
   * level, and spills to the next ones only as that level's healthy share falls (see the
   * balancer). Absent: level 0.
   */
  readonly priority?: number;
  readonly tags: readonly string[];
  readonly metadata: Readonly<Record<string, string>>;
  /** @defaultValue 'passing' */
  readonly health: EndpointHealth;
}

/** Fields a caller may give when building an endpoint; the rest default. */
export interface EndpointInit {
  id?: string;
  address: string;
  port: number;
  weight?: number;
  zone?: string;
  /** Priority level (0, the default, is the highest; a higher number is a fallback). */
  priority?: number;
  tags?: readonly string[];
  metadata?: Readonly<Record<string, string>>;
  health?: EndpointHealth;
}

const EMPTY_TAGS: readonly string[] = Object.freeze([]);
const EMPTY_META: Readonly<Record<string, string>> = Object.freeze({});

/**
 * An IPv6 literal in its one canonical text (RFC 5952, as the WHATWG URL parser writes it:
 * lower-case, zeros compressed — `0:0:0:0:0:0:0:1` is `::1`), so that one address written two
 * ways is one endpoint. An IPv4-suffixed form (`::ffff:10.0.0.1`) is only lower-cased, keeping the
 * dotted quad RFC 5952 recommends for it. A host name is lower-cased too (DNS names are
 * case-insensitive, and the URL undici dials lower-cases it): `API.local` and `api.local` are one
 * endpoint. An IPv4 address is returned as given.
 */
export function canonicalAddress(address: string): string {
  if (!address.includes(':')) return address.toLowerCase();
  if (address.includes('.')) return address.toLowerCase();
  try {
    const host = new URL(`http://[${address}]/`).hostname;
    return host.slice(1, -1);
  } catch {
    return address;
  }
}

/** `host:port`, with IPv6 addresses bracketed (`[::1]:8080`). */
export function formatHostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** Build a frozen endpoint with defaults applied. Does not validate: parsers do that at the edge. */
export function createEndpoint(init: EndpointInit): Endpoint {
  const e: Endpoint = {
    id: init.id ?? formatHostPort(init.address, init.port),
    address: init.address,
    port: init.port,
    weight: init.weight ?? 1,
    tags: init.tags ? Object.freeze([...init.tags]) : EMPTY_TAGS,
    metadata: init.metadata ? Object.freeze({ ...init.metadata }) : EMPTY_META,
    health: init.health ?? 'passing',
    ...(init.zone !== undefined ? { zone: init.zone } : {}),
    ...(init.priority !== undefined && init.priority !== 0 ? { priority: init.priority } : {}),
  };
  return Object.freeze(e);
}

/** An immutable snapshot of one service's endpoints. A new snapshot replaces the old one. */
export interface EndpointSet {
  readonly service: string;
  /** Increases with every change seen by the resolver that produced it. */
  readonly version: number;
  readonly endpoints: readonly Endpoint[];
  /** Which resolver produced it (`static`, `env`, `file`, `consul`, `etcd`, `dns`). */
  readonly source: string;
  /** Clock time at which this set was last confirmed by its source. */
  readonly updatedAt: number;
  /**
   * True when the source could not be refreshed and this is the last known good set.
   * `staleSince` is the clock time of the first failed refresh.
   */
  readonly stale: boolean;
  readonly staleSince?: number;
}

export interface EndpointSetInit {
  service: string;
  version: number;
  endpoints: readonly Endpoint[];
  source: string;
  updatedAt: number;
  stale?: boolean;
  staleSince?: number;
}

/** Build a frozen endpoint set. */
export function createEndpointSet(init: EndpointSetInit): EndpointSet {
  return Object.freeze({
    service: init.service,
    version: init.version,
    endpoints: Object.freeze([...init.endpoints]),
    source: init.source,
    updatedAt: init.updatedAt,
    stale: init.stale ?? false,
    ...(init.staleSince !== undefined ? { staleSince: init.staleSince } : {}),
  });
}

/** The same set marked stale since `since` (keeps endpoints; never empties them). */
export function markStale(set: EndpointSet, since: number): EndpointSet {
  if (set.stale) return set;
  return createEndpointSet({ ...set, stale: true, staleSince: since });
}

/**
 * The same set as handed over again: version, source, staleness and endpoints (the same objects,
 * in order). A registry that keeps failing hands its stale set over on every retry.
 */
export function sameEndpointSet(a: EndpointSet, b: EndpointSet): boolean {
  if (
    a.version !== b.version ||
    a.source !== b.source ||
    a.stale !== b.stale ||
    a.staleSince !== b.staleSince ||
    a.endpoints.length !== b.endpoints.length
  )
    return false;
  for (let i = 0; i < a.endpoints.length; i++) if (a.endpoints[i] !== b.endpoints[i]) return false;
  return true;
}

/** True if two endpoint lists hold the same endpoints with the same attributes, in any order. */
export function sameEndpoints(a: readonly Endpoint[], b: readonly Endpoint[]): boolean {
  if (a.length !== b.length) return false;
  const byId = new Map<string, Endpoint>();
  for (const e of a) byId.set(e.id, e);
  for (const e of b) {
    const o = byId.get(e.id);
    if (!o) return false;
    if (o === e) continue;
    if (
      o.address !== e.address ||
      o.port !== e.port ||
      o.weight !== e.weight ||
      o.zone !== e.zone ||
      (o.priority ?? 0) !== (e.priority ?? 0) ||
      o.health !== e.health ||
      o.tags.join('\u0000') !== e.tags.join('\u0000') ||
      JSON.stringify(o.metadata) !== JSON.stringify(e.metadata)
    ) {
      return false;
    }
  }
  return true;
}
