/**
 * The order in which one resolver asks its DNS servers. A server that failed to answer (timed out,
 * refused, unreachable) is asked last for a while, so every lookup does not wait out its timeout
 * first: what c-ares and glibc's resolver do by moving past a server that failed. It comes back
 * to its place once that while is over, or as soon as it answers again.
 */
import { isIPv6 } from 'node:net';
import type { Clock } from '@proxyless/core';
import type { DnsServer } from './message.js';

/** How long a server that failed is asked after the others. */
export const DEAD_SERVER_MS = 30_000;

export class ServerOrder {
  readonly #servers: readonly DnsServer[];
  readonly #clock: Clock;
  /** When each server last failed to answer (absent: it answered, or was never asked). */
  readonly #failedAt = new Map<DnsServer, number>();

  constructor(servers: readonly DnsServer[], clock: Clock) {
    this.#servers = servers;
    this.#clock = clock;
  }

  /** Every server, those that failed in the last {@link DEAD_SERVER_MS} last (each group in the configured order). */
  order(): readonly DnsServer[] {
    if (this.#failedAt.size === 0) return this.#servers;
    const now = this.#clock.now();
    const alive: DnsServer[] = [];
    const dead: DnsServer[] = [];
    for (const s of this.#servers) {
      const at = this.#failedAt.get(s);
      if (at !== undefined && now - at < DEAD_SERVER_MS) dead.push(s);
      else alive.push(s);
    }
    return dead.length === 0 ? this.#servers : [...alive, ...dead];
  }

  /** The server gave no answer (timeout, refused, network error). */
  failed(server: DnsServer): void {
    this.#failedAt.set(server, this.#clock.now());
  }

  /** The server answered (an error rcode is an answer too). */
  answered(server: DnsServer): void {
    this.#failedAt.delete(server);
  }
}

/**
 * For a bare IPv6 address that reads two ways, the expectation to report; `undefined` when it
 * reads one way. `::1:5353` is the address `::1:5353`, or `::1` with port 5353 written without
 * brackets: taken as the first, the server asked would be one nobody meant, so brackets are
 * required (`[::1]:5353`, or `[::1:5353]:53`), as `host:port` parsers require them for IPv6.
 */
export function ambiguousIPv6(value: string): string | undefined {
  if (!isIPv6(value)) return undefined;
  const cut = value.lastIndexOf(':');
  const head = value.slice(0, cut);
  const port = value.slice(cut + 1);
  if (!/^[0-9]{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535 || !isIPv6(head))
    return undefined;
  return `brackets around an IPv6 address that could end in a port: [${head}]:${port} for port ${port}, or [${value}]:53 for the address ${value}`;
}
