import dgram from 'node:dgram';
import net from 'node:net';
import type { Clock, Random } from '@proxyless/core';
import { formatHostPort, isIPv4, isIPv6, isValidHost, MeshError, quote, randomInt } from '@proxyless/core';
import type * as DnsPacket from 'dns-packet';

/**
 * The DNS wire protocol, spoken directly to the configured servers with `dns-packet`: UDP first,
 * TCP when the UDP answer is truncated. Unlike `node:dns`, this keeps the TTL of every record
 * (SRV included), lets a query go to a server on any port, and lets every answer be validated
 * field by field before anything is applied.
 */

/** The `dns-packet` module, as far as the wire protocol uses it. */
type DnsPacketModule = Pick<typeof DnsPacket, 'encode' | 'decode' | 'RECURSION_DESIRED'>;

let codec: DnsPacketModule | undefined;
let loading: Promise<DnsPacketModule> | undefined;

/**
 * Load `dns-packet` on first use, so that a mesh that never selects the DNS registry does not
 * load it (a regular dependency, unlike the etcd client: it is small). {@link exchange} awaits it;
 * {@link encodeQuery} and {@link decodeResponse} need it loaded.
 */
export function loadDnsPacket(): Promise<DnsPacketModule> {
  loading ??= import('dns-packet').then(
    (mod) => {
      // A CommonJS module: its exports are `default` (Node's ESM loader, the CJS build, bundlers).
      codec = mod.default as DnsPacketModule;
      return codec;
    },
    (error: unknown) => {
      loading = undefined;
      throw error;
    },
  );
  return loading;
}

function dnsPacket(): DnsPacketModule {
  if (codec === undefined) throw new Error('dns-packet is not loaded yet: await loadDnsPacket() first');
  return codec;
}

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

const TYPE_CODES: Readonly<Record<string, number>> = { A: 1, CNAME: 5, SOA: 6, AAAA: 28, SRV: 33 };
/** Largest TTL accepted as is; RFC 2181 §8 says larger values are treated as 0. */
const MAX_TTL = 0x7fffffff;
/** At most this many records in one response (a bound on work per answer). */
export const MAX_RECORDS = 4096;
const MAX_CNAME_HOPS = 8;

const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'] as const;

/** Lower-case, no trailing dot. */
export function normalizeName(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') && n.length > 1 ? n.slice(0, -1) : n;
}

/** Build a query packet (recursion desired). */
export function encodeQuery(question: DnsQuestion): Buffer {
  const codec = dnsPacket();
  return codec.encode({
    type: 'query',
    id: question.id,
    flags: codec.RECURSION_DESIRED,
    questions: [{ type: question.type, class: 'IN', name: question.name }],
  });
}

function invalid(
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

/**
 * Check the raw layout of a response before decoding it: the header, every name and every
 * record length must fit inside the packet, and A/AAAA/SRV record data must have the size its
 * type requires. `dns-packet` reads fixed-size fields without checking the declared length, so
 * this is where short or lying records are caught.
 */
function checkLayout(
  buf: Buffer,
  fail: (field: string, expected: string, value: unknown) => MeshError,
): void {
  if (buf.length < 12) throw fail('packet', 'a DNS message of at least 12 bytes', `${buf.length} bytes`);
  const counts = [
    buf.readUInt16BE(4),
    buf.readUInt16BE(6),
    buf.readUInt16BE(8),
    buf.readUInt16BE(10),
  ] as const;
  const total = counts[0] + counts[1] + counts[2] + counts[3];
  if (total > MAX_RECORDS) throw fail('header.counts', `at most ${MAX_RECORDS} records`, total);
  let offset = 12;
  const skipName = (field: string): void => {
    for (let labels = 0; labels < 128; labels++) {
      if (offset >= buf.length)
        throw fail(field, 'a name inside the packet', `packet ends at byte ${buf.length}`);
      const len = buf[offset]!;
      if (len === 0) {
        offset += 1;
        return;
      }
      if ((len & 0xc0) === 0xc0) {
        if (offset + 2 > buf.length)
          throw fail(field, 'a name inside the packet', `packet ends at byte ${buf.length}`);
        const pointer = ((len & 0x3f) << 8) | buf[offset + 1]!;
        if (pointer >= buf.length) throw fail(field, 'a compression pointer inside the packet', pointer);
        offset += 2;
        return;
      }
      if ((len & 0xc0) !== 0) throw fail(field, 'a label length 0..63', len);
      offset += 1 + len;
    }
    throw fail(field, 'a name of at most 127 labels', 'more');
  };
  for (let i = 0; i < counts[0]; i++) {
    skipName(`questions[${i}].name`);
    if (offset + 4 > buf.length)
      throw fail(`questions[${i}]`, 'a complete question', `packet ends at byte ${buf.length}`);
    offset += 4;
  }
  const sections = ['answers', 'authorities', 'additionals'] as const;
  for (let s = 0; s < 3; s++) {
    const section = sections[s]!;
    const count = counts[s + 1]!;
    for (let i = 0; i < count; i++) {
      const at = `${section}[${i}]`;
      skipName(`${at}.name`);
      if (offset + 10 > buf.length)
        throw fail(at, 'a complete record header', `packet ends at byte ${buf.length}`);
      const type = buf.readUInt16BE(offset);
      const rdlength = buf.readUInt16BE(offset + 8);
      offset += 10;
      if (offset + rdlength > buf.length) {
        throw fail(`${at}.rdlength`, `at most ${buf.length - offset} (bytes left in the packet)`, rdlength);
      }
      if (type === TYPE_CODES.A && rdlength !== 4)
        throw fail(`${at}.rdlength`, '4 for an A record', rdlength);
      if (type === TYPE_CODES.AAAA && rdlength !== 16)
        throw fail(`${at}.rdlength`, '16 for an AAAA record', rdlength);
      if (type === TYPE_CODES.SRV && rdlength < 7)
        throw fail(`${at}.rdlength`, 'at least 7 for an SRV record', rdlength);
      offset += rdlength;
    }
  }
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
  // Names that stand for the question: the name itself and every CNAME it leads to.
  const names = new Set([normalizeName(question.name)]);
  let cnameTtl: number | undefined;
  for (let hop = 0; hop < MAX_CNAME_HOPS; hop++) {
    let grew = false;
    answers.forEach((a, i) => {
      if (a.type !== 'CNAME' || !names.has(normalizeName(a.name))) return;
      const target = typeof a.data === 'string' ? normalizeName(a.data) : '';
      if (!isValidHost(target)) throw fail(`answers[${i}].data`, 'a host name (CNAME target)', a.data);
      if (!names.has(target)) {
        names.add(target);
        grew = true;
        cnameTtl = Math.min(cnameTtl ?? MAX_TTL, ttlOf(a));
      }
    });
    if (!grew) break;
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

/** Options of one query exchange. */
export interface ExchangeOptions {
  readonly clock: Clock;
  readonly random: Random;
  /** Per-transport timeout (UDP, then TCP on truncation). */
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

function unavailable(
  source: string,
  what: string,
  cause?: unknown,
  extra: Record<string, unknown> = {},
): MeshError {
  return new MeshError('MESH_REGISTRY_UNAVAILABLE', `DNS server ${source}: ${what}`, {
    cause,
    details: { server: source, ...extra },
  });
}

/**
 * Ask one server one question: UDP, then TCP if the UDP answer is truncated. Resolves with the
 * validated answer; rejects with `MESH_REGISTRY_UNAVAILABLE` (timeout, refused, network error,
 * server error rcode) or `MESH_REGISTRY_PAYLOAD_INVALID` (malformed answer).
 */
export async function exchange(
  server: DnsServer,
  name: string,
  type: DnsQueryType,
  options: ExchangeOptions,
): Promise<DnsAnswer> {
  const question: DnsQuestion = { id: randomInt(options.random, 0x10000), name, type };
  const source = formatHostPort(server.address, server.port);
  await loadDnsPacket();
  const query = encodeQuery(question);
  const udp = await exchangeUdp(server, source, question, query, options);
  if (udp.kind === 'answer') return udp;
  const tcp = await exchangeTcp(server, source, question, query, options);
  if (tcp.kind === 'truncated') throw invalid(source, question, 'header.tc', 'a complete answer over TCP', 1);
  return tcp;
}

function withDeadline<T>(
  source: string,
  question: DnsQuestion,
  transport: 'udp' | 'tcp',
  options: ExchangeOptions,
  run: (settle: { resolve: (v: T) => void; reject: (e: unknown) => void }) => () => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    let cleanup: () => void = () => {};
    const finish = (): boolean => {
      if (done) return false;
      done = true;
      timer.cancel();
      options.signal?.removeEventListener('abort', onAbort);
      cleanup();
      return true;
    };
    const onAbort = (): void => {
      if (finish())
        reject(
          unavailable(source, `query ${question.type} ${question.name} cancelled`, options.signal?.reason),
        );
    };
    const timer = options.clock.setTimer(options.timeoutMs, () => {
      if (finish()) {
        reject(
          unavailable(
            source,
            `no answer over ${transport} to ${question.type} ${question.name} within ${options.timeoutMs}ms`,
            undefined,
            {
              reason: 'timeout',
              transport,
            },
          ),
        );
      }
    });
    if (options.signal?.aborted) {
      onAbort();
      return;
    }
    options.signal?.addEventListener('abort', onAbort, { once: true });
    cleanup = run({
      resolve: (v) => {
        if (finish()) resolve(v);
      },
      reject: (e) => {
        if (finish()) reject(e);
      },
    });
    if (done) cleanup();
  });
}

function exchangeUdp(
  server: DnsServer,
  source: string,
  question: DnsQuestion,
  query: Buffer,
  options: ExchangeOptions,
): Promise<DnsResponse> {
  return withDeadline<DnsResponse>(source, question, 'udp', options, ({ resolve, reject }) => {
    const socket = dgram.createSocket(server.address.includes(':') ? 'udp6' : 'udp4');
    socket.on('error', (error) => {
      reject(
        unavailable(source, `${(error as NodeJS.ErrnoException).code ?? error.message} over udp`, error, {
          transport: 'udp',
        }),
      );
    });
    socket.on('message', (msg) => {
      // A datagram with another id is not ours (late answer to an earlier query): keep waiting.
      if (msg.length >= 2 && msg.readUInt16BE(0) !== question.id) return;
      try {
        resolve(decodeResponse(msg, question, source, 'udp'));
      } catch (error) {
        reject(error);
      }
    });
    // A connected socket reports ICMP "port unreachable" as ECONNREFUSED instead of a silent timeout.
    socket.connect(server.port, server.address, () => {
      socket.send(query, (error) => {
        if (error) reject(unavailable(source, `send failed: ${error.message}`, error, { transport: 'udp' }));
      });
    });
    return () => {
      try {
        socket.close();
      } catch {
        // already closed
      }
    };
  });
}

function exchangeTcp(
  server: DnsServer,
  source: string,
  question: DnsQuestion,
  query: Buffer,
  options: ExchangeOptions,
): Promise<DnsResponse> {
  return withDeadline<DnsResponse>(source, question, 'tcp', options, ({ resolve, reject }) => {
    const socket = net.connect({ host: server.address, port: server.port });
    const chunks: Buffer[] = [];
    let received = 0;
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      received += chunk.length;
      if (received < 2) return;
      const all = Buffer.concat(chunks);
      const length = all.readUInt16BE(0);
      if (all.length < 2 + length) return;
      try {
        resolve(decodeResponse(all.subarray(2, 2 + length), question, source, 'tcp'));
      } catch (error) {
        reject(error);
      }
    };
    socket.on('data', onData);
    socket.on('error', (error) => {
      reject(
        unavailable(source, `${(error as NodeJS.ErrnoException).code ?? error.message} over tcp`, error, {
          transport: 'tcp',
        }),
      );
    });
    socket.on('end', () => {
      reject(
        unavailable(source, 'connection closed before a complete answer over tcp', undefined, {
          transport: 'tcp',
        }),
      );
    });
    socket.on('connect', () => {
      const framed = Buffer.alloc(2 + query.length);
      framed.writeUInt16BE(query.length, 0);
      query.copy(framed, 2);
      socket.write(framed);
    });
    return () => socket.destroy();
  });
}
