/**
 * The shapes the DNS wire protocol deals in: the server a query goes to, the question it asks,
 * and the validated records of an answer; plus the normal form names are compared in.
 */

/** A DNS server to query. */
export interface DnsServer {
  /** IPv4 or IPv6 literal (no brackets). */
  readonly address: string;
  readonly port: number;
}

/** Record types the DNS resolver asks for. */
export type DnsQueryType = 'SRV' | 'A' | 'AAAA';

/** One validated SRV record. */
export interface SrvEntry {
  /** Target host name, lower-case, without the trailing dot. */
  readonly target: string;
  readonly port: number;
  readonly priority: number;
  readonly weight: number;
  /** Seconds. */
  readonly ttl: number;
}

/** One validated A or AAAA record. */
export interface AddressEntry {
  /** Owner name, lower-case, without the trailing dot. */
  readonly name: string;
  readonly address: string;
  readonly family: 4 | 6;
  /** Seconds. */
  readonly ttl: number;
}

/** A usable answer from a healthy server (NOERROR or NXDOMAIN). */
export interface DnsAnswer {
  readonly rcode: 'NOERROR' | 'NXDOMAIN';
  /** SRV records owned by the question name (or the end of its CNAME chain). */
  readonly srv: readonly SrvEntry[];
  /** A/AAAA records owned by the question name (or the end of its CNAME chain). */
  readonly addresses: readonly AddressEntry[];
  /** A/AAAA records from the additional section (glue for SRV targets), by owner name. */
  readonly additional: readonly AddressEntry[];
  /** Smallest TTL of any CNAME followed (seconds), if any. */
  readonly cnameTtl: number | undefined;
  /** For negative answers: the SOA negative-caching TTL (seconds), when the server sent one. */
  readonly negativeTtl: number | undefined;
  /** True when the only SRV record has the target "." (RFC 2782: the service is not available). */
  readonly srvNotAvailable: boolean;
}

/** A decoded response: an answer, or a truncated UDP response that must be retried over TCP. */
export type DnsResponse = { readonly kind: 'truncated' } | ({ readonly kind: 'answer' } & DnsAnswer);

/** The question a response must answer. */
export interface DnsQuestion {
  readonly id: number;
  readonly name: string;
  readonly type: DnsQueryType;
}

/** Lower-case, no trailing dot. */
export function normalizeName(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') && n.length > 1 ? n.slice(0, -1) : n;
}
