import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireBinary } from './require-binary.js';

/**
 * A real etcd server for integration tests: started on free loopback ports (client + peer) with a
 * temporary data directory, waited on until `/health` answers, stopped and removed by `stop()`.
 *
 *   const bin = etcdBinary();
 *   describe.skipIf(!bin.available)(`etcd ${bin.skipReason}`, () => { … startEtcd() … });
 */
export interface EtcdServer {
  /** `http://127.0.0.1:<clientPort>`, what a client is given. */
  readonly endpoint: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  /** Client TLS material when started with `tls: true`. */
  readonly tls: EtcdTls | undefined;
  /** Whether the process is currently running. */
  readonly running: boolean;
  /** Stop the process (SIGTERM, then SIGKILL after a bound); the data dir is kept. */
  halt(): Promise<void>;
  /** Start again on the same ports and data dir (after `halt()`), waiting until healthy. */
  resume(): Promise<void>;
  /** `halt()` then `resume()`. */
  restart(): Promise<void>;
  /** Current store revision (through the v3 JSON gateway). */
  revision(): Promise<number>;
  /** Compact the key-value history up to the current revision (or `revision` when given). */
  compact(revision?: number): Promise<number>;
  /** Write `key` (optionally under a lease), through the JSON gateway (not the client under test). */
  put(key: string, value: string | Buffer, lease?: string): Promise<number>;
  /** Delete `key`; returns the number of keys deleted. */
  del(key: string): Promise<number>;
  /** Read `key`: its value and lease id (`'0'` when none), or `undefined`. */
  get(key: string): Promise<{ value: string; lease: string } | undefined>;
  /** Keys under a prefix (sorted). */
  keys(prefix: string): Promise<string[]>;
  /** Grant a lease of `ttl` seconds; returns its id. */
  grantLease(ttl: number): Promise<string>;
  /**
   * Remaining and granted TTL of a lease in seconds. `granted` is 0 once the lease is gone
   * (expired or revoked); `ttl` already reads -1 in the last second before expiry.
   */
  leaseTtl(id: string): Promise<{ ttl: number; granted: number }>;
  /** Revoke a lease (deleting its keys). */
  revokeLease(id: string): Promise<void>;
  /** Create user `root` with `password` and turn authentication on; later helper calls authenticate. */
  enableAuth(password: string): Promise<void>;
  /** Add user `name` with a role of its own that may read the keys under each of `readPrefixes` only. */
  addReader(name: string, password: string, readPrefixes: readonly string[]): Promise<void>;
  /** Stop the process and remove the data dir. */
  stop(): Promise<void>;
}

const b64 = (v: string | Buffer): string => Buffer.from(v).toString('base64');
const unb64 = (v: unknown): string => Buffer.from(String(v ?? ''), 'base64').toString();

/** The end of the key range that holds every key starting with `prefix`. */
function prefixEnd(prefix: string): string {
  const buf = Buffer.from(prefix);
  for (let i = buf.length - 1; i >= 0; i--) {
    if (buf[i]! < 0xff) {
      buf[i]!++;
      return buf.subarray(0, i + 1).toString('base64');
    }
  }
  return Buffer.from([0]).toString('base64');
}

/** Checks whether the etcd binary is installed (see `requireBinary`). */
export function etcdBinary() {
  return requireBinary('etcd', 'Debian package etcd-server');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Client-side TLS material for a TLS etcd (PEM contents and file paths). */
export interface EtcdTls {
  caFile: string;
  certFile: string;
  keyFile: string;
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

function request(
  url: string,
  body: unknown,
  tls: EtcdTls | undefined,
  token?: string,
): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const options = {
      method: payload === undefined ? 'GET' : 'POST',
      headers: {
        ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
        ...(token ? { authorization: token } : {}),
      },
      timeout: 5000,
      ...(tls ? { ca: tls.ca, cert: tls.cert, key: tls.key } : {}),
    };
    const req = (url.startsWith('https:') ? https : http).request(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve({
            status: res.statusCode ?? 0,
            json: JSON.parse(Buffer.concat(chunks).toString() || '{}'),
          });
        } catch (error) {
          reject(error);
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`etcd request to ${url} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

async function healthy(endpoint: string, tls: EtcdTls | undefined): Promise<boolean> {
  try {
    const res = await request(`${endpoint}/health`, undefined, tls);
    return res.status === 200 && res.json.health === 'true';
  } catch {
    return false;
  }
}

async function gateway(
  endpoint: string,
  path: string,
  body: unknown,
  tls: EtcdTls | undefined,
  token?: string,
): Promise<Record<string, unknown>> {
  const res = await request(`${endpoint}${path}`, body, tls, token);
  if (res.status !== 200) throw new Error(`etcd ${path} answered ${res.status}: ${JSON.stringify(res.json)}`);
  return res.json;
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl in `dir`. */
function makeCertificates(dir: string): { server: { cert: string; key: string }; client: EtcdTls } {
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ext = join(dir, 'san.cnf');
  execFileSync('sh', [
    '-c',
    `printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' > ${ext}`,
  ]);
  run([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=proxyless-test-ca',
    '-keyout',
    'ca-key.pem',
    '-out',
    'ca.pem',
  ]);
  for (const name of ['server', 'client']) {
    run([
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      `/CN=${name === 'client' ? 'root' : '127.0.0.1'}`,
      '-keyout',
      `${name}-key.pem`,
      '-out',
      `${name}.csr`,
    ]);
    run([
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca-key.pem',
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      ext,
      '-out',
      `${name}.pem`,
    ]);
  }
  const f = (n: string) => join(dir, n);
  return {
    server: { cert: f('server.pem'), key: f('server-key.pem') },
    client: {
      caFile: f('ca.pem'),
      certFile: f('client.pem'),
      keyFile: f('client-key.pem'),
      ca: readFileSync(f('ca.pem')),
      cert: readFileSync(f('client.pem')),
      key: readFileSync(f('client-key.pem')),
    },
  };
}

/** Options of {@link startEtcd}. */
export interface StartEtcdOptions {
  /** Serve clients over TLS with client-certificate authentication (certificates made with openssl). */
  tls?: boolean;
}

/** Start a real etcd on loopback; throws when the binary is missing or it does not become healthy within 20 s. */
export async function startEtcd(options: StartEtcdOptions = {}): Promise<EtcdServer> {
  const bin = etcdBinary();
  if (!bin.path) throw new Error(`etcd not available ${bin.skipReason}`);
  const binPath = bin.path;
  const dataDir = await mkdtemp(join(tmpdir(), 'proxyless-etcd-'));
  const clientPort = await freePort();
  let peerPort = await freePort();
  while (peerPort === clientPort) peerPort = await freePort();
  const certDir = options.tls ? await mkdtemp(join(tmpdir(), 'proxyless-etcd-tls-')) : undefined;
  const certs = certDir ? makeCertificates(certDir) : undefined;
  const tls = certs?.client;
  const endpoint = `${certs ? 'https' : 'http'}://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  let child: ChildProcess | undefined;
  let output = '';

  const launch = async (): Promise<void> => {
    output = '';
    const proc = spawn(
      binPath,
      [
        '--name',
        'proxyless-test',
        '--data-dir',
        dataDir,
        '--listen-client-urls',
        endpoint,
        '--advertise-client-urls',
        endpoint,
        '--listen-peer-urls',
        peerUrl,
        '--initial-advertise-peer-urls',
        peerUrl,
        '--initial-cluster',
        `proxyless-test=${peerUrl}`,
        '--initial-cluster-state',
        'new',
        '--logger',
        'zap',
        '--log-level',
        'error',
        ...(certs
          ? [
              '--cert-file',
              certs.server.cert,
              '--key-file',
              certs.server.key,
              '--trusted-ca-file',
              certs.client.caFile,
              '--client-cert-auth',
            ]
          : []),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = proc;
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-4000);
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    const deadline = Date.now() + 20_000;
    let exitCode: number | null | undefined;
    void exited.then((c) => {
      exitCode = c;
    });
    for (let i = 0; i < 400 && Date.now() < deadline; i++) {
      if (exitCode !== undefined) throw new Error(`etcd exited with ${exitCode} while starting:\n${output}`);
      if (await healthy(endpoint, tls)) return;
      await new Promise<void>((resolve) => {
        // wait for either the process to exit or a short poll interval
        const t = setTimeout(resolve, 50);
        void exited.then(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    proc.kill('SIGKILL');
    throw new Error(`etcd did not become healthy at ${endpoint} within 20 s:\n${output}`);
  };

  const halt = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };

  await launch();

  let credentials: { name: string; password: string } | undefined;
  const call = async (path: string, body: unknown): Promise<Record<string, unknown>> => {
    let token: string | undefined;
    if (credentials)
      token = String((await gateway(endpoint, '/v3/auth/authenticate', credentials, tls)).token);
    return gateway(endpoint, path, body, tls, token);
  };

  const server: EtcdServer = {
    endpoint,
    clientPort,
    peerPort,
    dataDir,
    tls,
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    halt,
    resume: async () => {
      if (server.running) return;
      await launch();
    },
    restart: async () => {
      await halt();
      await launch();
    },
    revision: async () => {
      const res = await call('/v3/kv/range', { key: Buffer.from('\0').toString('base64') });
      const header = res.header as { revision?: string } | undefined;
      return Number(header?.revision ?? 0);
    },
    compact: async (revision?: number) => {
      const rev = revision ?? (await server.revision());
      await call('/v3/kv/compaction', { revision: String(rev), physical: true });
      return rev;
    },
    put: async (key, value, lease) => {
      const res = await call('/v3/kv/put', {
        key: b64(key),
        value: b64(value),
        ...(lease ? { lease } : {}),
      });
      return Number((res.header as { revision?: string } | undefined)?.revision ?? 0);
    },
    del: async (key) => {
      const res = await call('/v3/kv/deleterange', { key: b64(key) });
      return Number(res.deleted ?? 0);
    },
    get: async (key) => {
      const res = await call('/v3/kv/range', { key: b64(key) });
      const kv = (res.kvs as Array<{ value?: string; lease?: string }> | undefined)?.[0];
      return kv ? { value: unb64(kv.value), lease: kv.lease ?? '0' } : undefined;
    },
    keys: async (prefix) => {
      const res = await call('/v3/kv/range', {
        key: b64(prefix),
        range_end: prefixEnd(prefix),
        keys_only: true,
      });
      return ((res.kvs as Array<{ key: string }> | undefined) ?? []).map((kv) => unb64(kv.key)).sort();
    },
    grantLease: async (ttl) => {
      const res = await call('/v3/lease/grant', { TTL: String(ttl) });
      return String(res.ID);
    },
    leaseTtl: async (id) => {
      const res = await call('/v3/lease/timetolive', { ID: id });
      return { ttl: Number(res.TTL ?? -1), granted: Number(res.grantedTTL ?? 0) };
    },
    revokeLease: async (id) => {
      await call('/v3/lease/revoke', { ID: id });
    },
    enableAuth: async (password) => {
      await call('/v3/auth/user/add', { name: 'root', password });
      await call('/v3/auth/role/add', { name: 'root' });
      await call('/v3/auth/user/grant', { user: 'root', role: 'root' });
      await call('/v3/auth/enable', {});
      credentials = { name: 'root', password };
    },
    addReader: async (name, password, readPrefixes) => {
      const role = `${name}-role`;
      await call('/v3/auth/role/add', { name: role });
      for (const prefix of readPrefixes)
        await call('/v3/auth/role/grant', {
          name: role,
          perm: { permType: 'READ', key: b64(prefix), range_end: prefixEnd(prefix) },
        });
      await call('/v3/auth/user/add', { name, password });
      await call('/v3/auth/user/grant', { user: name, role });
    },
    stop: async () => {
      await halt();
      await rm(dataDir, { recursive: true, force: true });
      if (certDir) await rm(certDir, { recursive: true, force: true });
    },
  };
  return server;
}
