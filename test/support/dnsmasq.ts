import { type ChildProcess, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BinaryCheck, requireBinary } from './require-binary.js';

/**
 * A real dnsmasq on 127.0.0.1 for DNS discovery tests: foreground, no upstream servers, no
 * `/etc/hosts`, one config file written by the test. Every domain listed in `localDomains` is
 * answered from local data only (a missing name is NXDOMAIN, never forwarded or refused).
 *
 *   const bin = dnsmasqBinary();
 *   describe.skipIf(!bin.available)(`dns ${bin.skipReason}`, () => { … startDnsmasq({ … }) … });
 */

/** One `--srv-host` line: `_http._tcp.api.mesh.test` → `target:port` with priority and weight. */
export interface SrvRecord {
  name: string;
  target: string;
  port: number;
  priority?: number;
  weight?: number;
}

/** One `--host-record` line: a name with any mix of IPv4 and IPv6 addresses. */
export interface HostRecord {
  name: string;
  addresses: readonly string[];
}

export interface DnsmasqRecords {
  srv?: readonly SrvRecord[];
  hosts?: readonly HostRecord[];
  /** TTL (seconds) of local answers (`--local-ttl`, `--auth-ttl`). @defaultValue 1 */
  ttl?: number;
  /** Domains answered from local data only. @defaultValue ['mesh.test'] */
  localDomains?: readonly string[];
  /** Extra raw config lines. */
  extra?: readonly string[];
}

export interface Dnsmasq {
  readonly port: number;
  /** `127.0.0.1:<port>` as a DNS server address. */
  readonly server: string;
  /** True while the process runs. */
  readonly running: boolean;
  /** The config file text last written. */
  readonly config: string;
  /** Write new records and restart on the same port (SIGHUP does not re-read `srv-host`). */
  update(records: DnsmasqRecords): Promise<void>;
  /** Stop the process (port becomes silent); `start()` brings it back on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stop and remove the temp directory. Idempotent. */
  close(): Promise<void>;
}

/** The dnsmasq binary check, for `describe.skipIf`. */
export function dnsmasqBinary(): BinaryCheck {
  return requireBinary('dnsmasq', 'Debian package dnsmasq-base');
}

/** Render the config file for `records`. */
export function dnsmasqConfig(records: DnsmasqRecords): string {
  const ttl = records.ttl ?? 1;
  const lines = [`local-ttl=${ttl}`, `auth-ttl=${ttl}`, 'domain-needed', 'bogus-priv', 'log-facility=-'];
  for (const d of records.localDomains ?? ['mesh.test']) lines.push(`local=/${d}/`);
  for (const s of records.srv ?? []) {
    lines.push(`srv-host=${s.name},${s.target},${s.port},${s.priority ?? 0},${s.weight ?? 0}`);
  }
  // One line per address: a host-record line holds at most one IPv4 and one IPv6 address.
  for (const h of records.hosts ?? []) for (const a of h.addresses) lines.push(`host-record=${h.name},${a}`);
  lines.push(...(records.extra ?? []));
  return `${lines.join('\n')}\n`;
}

/** Start dnsmasq on a free loopback port (UDP and TCP) serving `records`. */
export async function startDnsmasq(records: DnsmasqRecords = {}): Promise<Dnsmasq> {
  const check = dnsmasqBinary();
  if (!check.path) throw new Error(`dnsmasq is not available ${check.skipReason}`);
  const binary = check.path;
  const dir = mkdtempSync(join(tmpdir(), 'proxyless-dnsmasq-'));
  const confFile = join(dir, 'dnsmasq.conf');
  let config = dnsmasqConfig(records);
  writeFileSync(confFile, config);
  let child: ChildProcess | undefined;
  let closed = false;
  let port = 0;

  const launch = async (p: number): Promise<void> => {
    const args = [
      '--keep-in-foreground',
      '--no-resolv',
      '--no-hosts',
      '--no-poll',
      `--conf-file=${confFile}`,
      `--port=${p}`,
      '--listen-address=127.0.0.1',
      '--bind-interfaces',
      '--user=root',
      '--group=root',
      '--pid-file=',
    ];
    const proc = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer): void => {
        output += chunk.toString('utf8');
        if (/started, version/.test(output)) {
          cleanup();
          resolve();
        }
      };
      const onExit = (code: number | null): void => {
        cleanup();
        reject(new Error(`dnsmasq exited (${code}) before it started: ${output.trim()}`));
      };
      const onError = (error: Error): void => {
        cleanup();
        reject(error);
      };
      const cleanup = (): void => {
        proc.stderr?.off('data', onData);
        proc.stdout?.off('data', onData);
        proc.off('exit', onExit);
        proc.off('error', onError);
      };
      proc.stderr?.on('data', onData);
      proc.stdout?.on('data', onData);
      proc.once('exit', onExit);
      proc.once('error', onError);
    });
    // keep draining its log so the pipe never fills
    proc.stderr?.resume();
    proc.stdout?.resume();
    child = proc;
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
    });
  };

  const startOnSamePort = async (): Promise<void> => {
    if (closed) throw new Error('dnsmasq helper is closed');
    if (child) return;
    await launch(port);
  };

  // A free port can be taken between probing and binding: try a bounded number of ports.
  let lastError: unknown;
  for (let attempt = 0; attempt < 5 && port === 0; attempt++) {
    const candidate = await freeUdpTcpPort();
    try {
      await launch(candidate);
      port = candidate;
    } catch (error) {
      lastError = error;
    }
  }
  if (port === 0) {
    rmSync(dir, { recursive: true, force: true });
    throw lastError instanceof Error ? lastError : new Error('could not start dnsmasq');
  }

  return {
    get port() {
      return port;
    },
    get server() {
      return `127.0.0.1:${port}`;
    },
    get running() {
      return child !== undefined;
    },
    get config() {
      return config;
    },
    async update(next) {
      config = dnsmasqConfig(next);
      writeFileSync(confFile, config);
      await stop();
      await startOnSamePort();
    },
    stop,
    start: startOnSamePort,
    async close() {
      if (closed) return;
      closed = true;
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A port free for both TCP and UDP on 127.0.0.1 (bounded attempts). */
export async function freeUdpTcpPort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const tcp = net.createServer();
    const port = await new Promise<number>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(0, '127.0.0.1', () => resolve((tcp.address() as net.AddressInfo).port));
    });
    const udp = dgram.createSocket('udp4');
    const udpOk = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, '127.0.0.1', () => resolve(true));
    });
    await new Promise<void>((resolve) => tcp.close(() => resolve()));
    if (udpOk) await new Promise<void>((resolve) => udp.close(() => resolve()));
    else {
      try {
        udp.close();
      } catch {
        // never bound
      }
    }
    if (udpOk) return port;
  }
  throw new Error('no free UDP+TCP port on 127.0.0.1 after 20 attempts');
}
