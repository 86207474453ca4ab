/**
 * The exchange of one question with one DNS server: a query over UDP, retried over TCP when the
 * UDP answer is truncated, each under a deadline and the caller's abort signal.
 */
import type { Clock, Random } from '@proxyless/core';
import { formatHostPort, MeshError, randomInt } from '@proxyless/core';
import { encodeQuery, loadDnsPacket } from './codec.js';
import { decodeResponse, invalid } from './decode.js';
import type { DnsAnswer, DnsQueryType, DnsQuestion, DnsResponse, DnsServer } from './message.js';

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
 * `details.reason` of a network failure: `refused` (ICMP port unreachable on UDP, a refused TCP
 * connect), else the error's code (`ENETUNREACH`, `ECONNRESET`, …), else `network`.
 */
function networkReason(error: Error): string {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ECONNREFUSED' ? 'refused' : (code ?? 'network');
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
          unavailable(source, `query ${question.type} ${question.name} cancelled`, options.signal?.reason, {
            reason: 'cancelled',
            transport,
          }),
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

/** One query to one server over one transport. */
type Transport = (
  server: DnsServer,
  source: string,
  question: DnsQuestion,
  query: Buffer,
  options: ExchangeOptions,
) => Promise<DnsResponse>;

const exchangeUdp: Transport = (server, source, question, query, options) => {
  return withDeadline<DnsResponse>(source, question, 'udp', options, ({ resolve, reject }) => {
    // `node:dgram` and `node:net` at the first query, not when the mesh is imported.
    const socket = process
      .getBuiltinModule('node:dgram')
      .createSocket(server.address.includes(':') ? 'udp6' : 'udp4');
    socket.on('error', (error) => {
      reject(
        unavailable(source, `${(error as NodeJS.ErrnoException).code ?? error.message} over udp`, error, {
          reason: networkReason(error),
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
        if (error)
          reject(
            unavailable(source, `send failed: ${error.message}`, error, {
              reason: networkReason(error),
              transport: 'udp',
            }),
          );
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
};

const exchangeTcp: Transport = (server, source, question, query, options) => {
  return withDeadline<DnsResponse>(source, question, 'tcp', options, ({ resolve, reject }) => {
    const socket = process.getBuiltinModule('node:net').connect({ host: server.address, port: server.port });
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
          reason: networkReason(error),
          transport: 'tcp',
        }),
      );
    });
    socket.on('end', () => {
      reject(
        unavailable(source, 'connection closed before a complete answer over tcp', undefined, {
          reason: 'closed',
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
};
