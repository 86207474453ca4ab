/**
 * One refresh of one service name: the SRV query (when on) and the A/AAAA queries of the name or
 * of the SRV targets, against the servers in order. Whole or nothing: it resolves with every
 * endpoint, or rejects.
 */
import { createEndpoint, type Endpoint, MeshError } from '@proxyless/core';
import type { DnsLookupResult, DnsSettings } from './resolver.js';
import {
  type AddressEntry,
  type DnsAnswer,
  type DnsQueryType,
  type DnsServer,
  exchange,
  type SrvEntry,
} from './wire.js';

/**
 * Ask the servers in order (one that failed to answer lately last, see {@link ServerOrder}); the
 * first healthy answer (or the first error, if all fail) wins. A query no server answered at all
 * (a lost datagram, a timeout, a refusal) goes round the list again, up to `attempts` rounds, as
 * glibc's resolver and c-ares resend: one lost UDP datagram does not fail the lookup. An answer
 * that is an error (an error code, a malformed packet) is not asked again.
 */
async function query(
  s: DnsSettings,
  name: string,
  type: DnsQueryType,
  signal: AbortSignal,
): Promise<DnsAnswer> {
  let first: unknown;
  /** Servers that answered with an error (an rcode, a malformed packet): not asked again. */
  let answered: Set<DnsServer> | undefined;
  for (let round = 0; round < s.attempts; round++) {
    let unanswered = false;
    for (const server of s.order.order()) {
      if (answered?.has(server)) continue;
      try {
        const answer = await exchange(server, name, type, {
          clock: s.clock,
          random: s.random,
          timeoutMs: s.timeoutMs,
          signal,
        });
        s.order.answered(server);
        return answer;
      } catch (error) {
        first ??= error;
        if (signal.aborted) throw first;
        // No answer at all (timeout, refused, unreachable), not a server error rcode or a
        // malformed answer: the server is asked last for a while, and again in the next round.
        const reason = MeshError.is(error) ? error.details.reason : undefined;
        if (reason !== undefined && reason !== 'cancelled') {
          s.order.failed(server);
          unanswered = true;
        } else {
          s.order.answered(server);
          answered ??= new Set();
          answered.add(server);
        }
      }
    }
    if (!unanswered) break;
  }
  throw first;
}

const secondsToMs = (s: number): number => s * 1000;

/**
 * One complete refresh of one service name. Resolves with every endpoint (possibly none, when a
 * healthy server says the name has no records) or rejects: nothing is half-applied.
 */
export async function lookupService(
  s: DnsSettings,
  name: string,
  signal: AbortSignal,
): Promise<DnsLookupResult> {
  if (s.srv !== undefined) {
    const srv = await query(s, s.srv === '' ? name : `${s.srv}.${name}`, 'SRV', signal);
    if (srv.srv.length > 0) return endpointsFromSrv(s, srv, signal);
    if (srv.srvNotAvailable) return { endpoints: [], ttlMs: secondsToMs(negativeTtl(s, srv)) };
  }
  const [a, aaaa] = await bothFamilies(s, name, signal);
  const addresses = [...a.addresses, ...aaaa.addresses];
  const endpoints = dedupe(addresses.map((r) => createEndpoint({ address: r.address, port: s.defaultPort })));
  const ttl =
    addresses.length > 0
      ? Math.min(...addresses.map((r) => r.ttl), a.cnameTtl ?? Infinity, aaaa.cnameTtl ?? Infinity)
      : Math.min(negativeTtl(s, a), negativeTtl(s, aaaa));
  return { endpoints, ttlMs: secondsToMs(ttl) };
}

/**
 * The A and AAAA answers of `name`. When one family fails (a server or middlebox answering
 * SERVFAIL, NOTIMP or nothing for AAAA) and the other answers, the one that answered is used, as
 * getaddrinfo and Go's resolver do; the failure is logged. Both failing rejects (the first error).
 */
async function bothFamilies(
  s: DnsSettings,
  name: string,
  signal: AbortSignal,
): Promise<[DnsAnswer, DnsAnswer]> {
  const [a, aaaa] = await Promise.allSettled([query(s, name, 'A', signal), query(s, name, 'AAAA', signal)]);
  if (a.status === 'fulfilled' && aaaa.status === 'fulfilled') return [a.value, aaaa.value];
  if (a.status === 'rejected' && aaaa.status === 'rejected') throw a.reason;
  const [ok, failed, type]: [DnsAnswer, unknown, 'A' | 'AAAA'] =
    a.status === 'fulfilled'
      ? [a.value, (aaaa as PromiseRejectedResult).reason, 'AAAA']
      : [(aaaa as PromiseFulfilledResult<DnsAnswer>).value, a.reason, 'A'];
  // With no address from the family that answered, the name may live in the one that failed:
  // not "no endpoints", a failure (the last good set stays).
  if (ok.addresses.length === 0) throw failed;
  s.logger.warn('DNS query of one address family failed; using the other', {
    resolver: 'dns',
    name,
    type,
    error: failed instanceof Error ? failed.message : String(failed),
  });
  return type === 'AAAA' ? [ok, NO_ANSWER] : [NO_ANSWER, ok];
}

/** The answer standing in for a family whose query failed while the other one answered. */
const NO_ANSWER: DnsAnswer = Object.freeze({
  rcode: 'NOERROR',
  srv: [],
  addresses: [],
  additional: [],
  cnameTtl: undefined,
  negativeTtl: undefined,
  srvNotAvailable: false,
});

function negativeTtl(s: DnsSettings, answer: DnsAnswer): number {
  return answer.negativeTtl ?? s.minRefreshMs / 1000;
}

async function endpointsFromSrv(
  s: DnsSettings,
  answer: DnsAnswer,
  signal: AbortSignal,
): Promise<DnsLookupResult> {
  let ttl = Math.min(...answer.srv.map((r) => r.ttl), answer.cnameTtl ?? Infinity);
  const glue = new Map<string, AddressEntry[]>();
  for (const r of answer.additional) {
    const list = glue.get(r.name) ?? [];
    list.push(r);
    glue.set(r.name, list);
  }
  const resolved = new Map<string, readonly AddressEntry[]>();
  const addressesOf = async (target: string): Promise<readonly AddressEntry[]> => {
    const known = resolved.get(target) ?? glue.get(target);
    if (known !== undefined) return known;
    const [a, aaaa] = await bothFamilies(s, target, signal);
    const list = [...a.addresses, ...aaaa.addresses];
    resolved.set(target, list);
    if (list.length === 0) {
      s.logger.warn('SRV target has no A/AAAA records', { resolver: 'dns', target });
      ttl = Math.min(ttl, negativeTtl(s, a), negativeTtl(s, aaaa));
    }
    return list;
  };
  // Every priority group, each endpoint with its record's priority: the balancer sends calls to
  // the lowest priority number and spills to the next groups as that one loses healthy
  // endpoints (RFC 2782: try the lowest priority a client can reach).
  const priorities = [...new Set(answer.srv.map((r) => r.priority))].sort((x, y) => x - y);
  const found: Endpoint[] = [];
  for (const priority of priorities) {
    const group = answer.srv.filter((r) => r.priority === priority);
    const allZero = group.every((r) => r.weight === 0);
    const perTarget = await mapLimit(group, TARGET_LOOKUPS, async (r) => ({
      r,
      list: await addressesOf(r.target),
    }));
    for (const { r, list } of perTarget) {
      for (const entry of list) {
        ttl = Math.min(ttl, entry.ttl);
        found.push(srvEndpoint(r, entry, allZero));
      }
    }
  }
  return { endpoints: dedupe(found), ttlMs: secondsToMs(ttl) };
}

/**
 * SRV targets without glue looked up at once, at most (an A and an AAAA query each). Sent all
 * together, the queries for hundreds of targets overflowed the server's receive queue (dnsmasq's
 * 212 KB default dropped two thirds of 800): some timed out and the whole refresh failed.
 */
export const TARGET_LOOKUPS = 8;

/** `fn` over `items`, at most `limit` at a time, results in order; rejects with the first error. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

function srvEndpoint(r: SrvEntry, entry: AddressEntry, allZero: boolean): Endpoint {
  return createEndpoint({
    address: entry.address,
    port: r.port,
    // RFC 2782: when every record of the group has weight 0 they are picked evenly.
    weight: allZero ? 1 : r.weight,
    priority: r.priority,
    metadata: { 'dns.target': r.target, 'dns.priority': String(r.priority) },
  });
}

/**
 * One endpoint per `address:port`, sorted by id: the weights of duplicates of one priority add up;
 * one also listed under a higher priority number keeps its lowest (`endpoints` come in priority
 * order).
 */
function dedupe(endpoints: readonly Endpoint[]): Endpoint[] {
  const byId = new Map<string, Endpoint>();
  for (const e of endpoints) {
    const prev = byId.get(e.id);
    if (prev === undefined) byId.set(e.id, e);
    else if ((prev.priority ?? 0) === (e.priority ?? 0))
      byId.set(e.id, createEndpoint({ ...prev, weight: prev.weight + e.weight }));
  }
  return [...byId.values()].sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
}
