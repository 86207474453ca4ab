/**
 * Decoding and validating one DNS response against its question: header, rcode and question
 * checks, CNAME chains, and the SRV, A/AAAA and SOA records an answer is made of.
 */
import { isIPv4, isIPv6, isValidHost, MeshError, quote } from '@proxyless/core';
import type * as DnsPacket from 'dns-packet';
import { dnsPacket } from './codec.js';
import { checkLayout } from './layout.js';
import {
  type AddressEntry,
  type DnsQuestion,
  type DnsResponse,
  normalizeName,
  type SrvEntry,
} from './message.js';

/** Largest TTL accepted as is; RFC 2181 §8 says larger values are treated as 0. */
const MAX_TTL = 0x7fffffff;
const MAX_CNAME_HOPS = 8;

const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'] as const;

/** A `MESH_REGISTRY_PAYLOAD_INVALID` error naming the field and value of the answer at fault. */
export function invalid(
  source: string,
  question: DnsQuestion,
  field: string,
  expected: string,
  value: unknown,
): MeshError {
  return new MeshError(
    'MESH_REGISTRY_PAYLOAD_INVALID',
    `DNS answer from ${source} for ${question.type} ${question.name}: ${field}: expected ${expected}, got ${quote(value)}`,
    { details: { field, value, server: source, query: `${question.type} ${question.name}` } },
  );
}

interface RawRecord {
  readonly type: string;
  readonly name: string;
  readonly ttl?: number | undefined;
  readonly class?: string | undefined;
  readonly data?: unknown;
}

function ttlOf(record: RawRecord): number {
  const ttl = record.ttl ?? 0;
  return ttl > MAX_TTL ? 0 : ttl;
}

/**
 * Decode and validate one response to `question`. Returns the answer, or `truncated` for a
 * truncated UDP response. Throws `MESH_REGISTRY_PAYLOAD_INVALID` (naming the field and value)
 * for a malformed response, and `MESH_REGISTRY_UNAVAILABLE` for a server error rcode
 * (SERVFAIL, REFUSED, …).
 */
export function decodeResponse(
  buf: Buffer,
  question: DnsQuestion,
  source: string,
  transport: 'udp' | 'tcp' = 'udp',
): DnsResponse {
  const fail = (field: string, expected: string, value: unknown): MeshError =>
    invalid(source, question, field, expected, value);
  checkLayout(buf, fail);
  const codec = dnsPacket();
  let packet: DnsPacket.DecodedPacket;
  try {
    packet = codec.decode(buf);
  } catch (error) {
    throw new MeshError(
      'MESH_REGISTRY_PAYLOAD_INVALID',
      `DNS answer from ${source} for ${question.type} ${question.name}: packet: undecodable (${(error as Error).message})`,
      { cause: error, details: { field: 'packet', value: `${buf.length} bytes`, server: source } },
    );
  }
  if (packet.id !== question.id) throw fail('header.id', `the query id ${question.id}`, packet.id);
  if (!packet.flag_qr) throw fail('header.qr', 'a response (QR=1)', 0);
  const rcodeNumber = (packet.flags ?? 0) & 0xf;
  const rcode = RCODES[rcodeNumber] ?? `RCODE${rcodeNumber}`;
  if (packet.flag_tc) {
    if (transport === 'tcp') throw fail('header.tc', 'a complete answer over TCP', 1);
    return { kind: 'truncated' };
  }
  if (rcode !== 'NOERROR' && rcode !== 'NXDOMAIN') {
    throw new MeshError(
      'MESH_REGISTRY_UNAVAILABLE',
      `DNS server ${source} answered ${rcode} for ${question.type} ${question.name}`,
      { details: { server: source, rcode, query: `${question.type} ${question.name}` } },
    );
  }
  const questions = packet.questions ?? [];
  const q0 = questions[0];
  if (questions.length !== 1 || !q0) throw fail('questions', 'exactly one question', questions.length);
  if (normalizeName(q0.name) !== normalizeName(question.name)) {
    throw fail('questions[0].name', quote(normalizeName(question.name)), q0.name);
  }
  if (q0.type !== question.type) throw fail('questions[0].type', question.type, q0.type);

  const answers = (packet.answers ?? []) as readonly RawRecord[];
  // Names that stand for the question: the name itself and every CNAME it leads to, followed
  // hop by hop whatever the order of the records. A loop, or a chain longer than
  // MAX_CNAME_HOPS, is an invalid answer (recursive resolvers answer SERVFAIL), not "no records".
  const names = new Set([normalizeName(question.name)]);
  let cnameTtl: number | undefined;
  for (let current = normalizeName(question.name); ; ) {
    const i = answers.findIndex((a) => a.type === 'CNAME' && normalizeName(a.name) === current);
    if (i < 0) break;
    const a = answers[i] as RawRecord;
    const target = typeof a.data === 'string' ? normalizeName(a.data) : '';
    if (!isValidHost(target)) throw fail(`answers[${i}].data`, 'a host name (CNAME target)', a.data);
    if (names.has(target)) throw fail(`answers[${i}].data`, 'a CNAME chain without a loop', a.data);
    if (names.size > MAX_CNAME_HOPS)
      throw fail(`answers[${i}]`, `a CNAME chain of at most ${MAX_CNAME_HOPS} hops`, a.name);
    names.add(target);
    cnameTtl = Math.min(cnameTtl ?? MAX_TTL, ttlOf(a));
    current = target;
  }

  const srv: SrvEntry[] = [];
  const addresses: AddressEntry[] = [];
  let srvNotAvailable = false;
  let negativeFromSrv: number | undefined;
  const readAddress = (a: RawRecord, field: string): AddressEntry | undefined => {
    if (a.type !== 'A' && a.type !== 'AAAA') return undefined;
    if (a.class !== undefined && a.class !== 'IN') return undefined;
    const address = typeof a.data === 'string' ? a.data : '';
    const ok = a.type === 'A' ? isIPv4(address) : isIPv6(address);
    if (!ok) throw fail(`${field}.data`, a.type === 'A' ? 'an IPv4 address' : 'an IPv6 address', a.data);
    return { name: normalizeName(a.name), address, family: a.type === 'A' ? 4 : 6, ttl: ttlOf(a) };
  };
  answers.forEach((a, i) => {
    const field = `answers[${i}]`;
    if (!names.has(normalizeName(a.name))) return;
    if (a.type === 'SRV' && question.type === 'SRV') {
      const data = a.data as { port?: unknown; target?: unknown; priority?: unknown; weight?: unknown };
      const port = data.port;
      if (typeof port !== 'number' || port < 1 || port > 65535) {
        throw fail(`${field}.data.port`, 'a port 1..65535', port);
      }
      const rawTarget = typeof data.target === 'string' ? data.target : '';
      // RFC 2782: a target of "." means the service is decidedly not available at this name.
      if (rawTarget === '.' || rawTarget === '') {
        if (answers.filter((x) => x.type === 'SRV').length > 1) {
          throw fail(`${field}.data.target`, 'a host name ("." only as the single SRV record)', rawTarget);
        }
        srvNotAvailable = true;
        negativeFromSrv = ttlOf(a);
        return;
      }
      const target = normalizeName(rawTarget);
      if (!isValidHost(target) || isIPv4(target) || isIPv6(target)) {
        throw fail(`${field}.data.target`, 'a host name', data.target);
      }
      srv.push({
        target,
        port,
        priority: typeof data.priority === 'number' ? data.priority : 0,
        weight: typeof data.weight === 'number' ? data.weight : 0,
        ttl: ttlOf(a),
      });
      return;
    }
    if (a.type === question.type) {
      const entry = readAddress(a, field);
      if (entry) addresses.push(entry);
    }
  });
  const additional: AddressEntry[] = [];
  ((packet.additionals ?? []) as readonly RawRecord[]).forEach((a, i) => {
    const entry = readAddress(a, `additionals[${i}]`);
    if (entry) additional.push(entry);
  });
  let negativeTtl: number | undefined;
  for (const a of (packet.authorities ?? []) as readonly RawRecord[]) {
    if (a.type !== 'SOA') continue;
    const minimum = (a.data as { minimum?: unknown } | undefined)?.minimum;
    const soaMin = typeof minimum === 'number' ? minimum : MAX_TTL;
    negativeTtl = Math.min(ttlOf(a), soaMin > MAX_TTL ? 0 : soaMin);
  }
  return {
    kind: 'answer',
    rcode: rcode === 'NXDOMAIN' ? 'NXDOMAIN' : 'NOERROR',
    srv,
    addresses,
    additional,
    cnameTtl,
    negativeTtl: negativeTtl ?? negativeFromSrv,
    srvNotAvailable,
  };
}
