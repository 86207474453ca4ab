import { readFileSync } from 'node:fs';
import { configError, Issues, MeshError, quote, redactUserInfo } from '@proxyless/core';
import type { Etcd3, IOptions, WatchBuilder } from 'etcd3';
import { assertEtcd3Installed, loadEtcd3 } from './load.js';

/** How to reach an etcd cluster (shared by the etcd resolver and registrar). */
export interface EtcdConnectionOptions {
  /**
   * Client endpoints: `host:port` or `http(s)://host:port`.
   * @defaultValue `['127.0.0.1:2379']`
   */
  endpoints?: readonly string[];
  /** Username for etcd authentication (with `password`). */
  username?: string;
  password?: string;
  /** Path of a PEM CA bundle; turns TLS on. */
  caCert?: string;
  /** Path of a PEM client certificate (mutual TLS, with `key`). */
  cert?: string;
  /** Path of the PEM private key for `cert`. */
  key?: string;
  /**
   * Deadline of each unary call (range, put, lease grant/revoke), in ms. Streams (watch,
   * keep-alive) have none.
   * @defaultValue 5000
   */
  callTimeoutMs?: number;
}

/**
 * An etcd client: an `Etcd3` instance of the optional peer dependency `etcd3` (`new Etcd3(…)`).
 * Declared without etcd3's types so that an application without etcd3 type-checks too.
 */
export interface EtcdClient {
  close(): void;
}

/** The `etcd3` client behind an {@link EtcdClient}. */
export function asEtcd3(client: EtcdClient): Etcd3 {
  return client as Etcd3;
}

/** Default key prefix: an endpoint of service `s` with id `i` lives at `/proxyless/services/s/i`. */
export const DEFAULT_ETCD_PREFIX = '/proxyless/services/';

/** Default client endpoint (etcd's own default). */
export const DEFAULT_ETCD_ENDPOINTS: readonly string[] = Object.freeze(['127.0.0.1:2379']);

type Policy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;

/**
 * A policy that runs each call once: retries, back-off and outage handling belong to the
 * resolver and registrar (which keep the last good state and report errors), not to the client.
 */
function passThroughPolicy(): Policy {
  const noEvent = () => ({ dispose: () => undefined });
  const policy = {
    onSuccess: noEvent,
    onFailure: noEvent,
    execute: async <T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T, signal?: AbortSignal) =>
      fn({ signal: signal ?? new AbortController().signal }),
  };
  return policy as unknown as Policy;
}

/**
 * A unary call runs once per member at most: etcd3 walks its members in a shuffled order, and a
 * call that failed for the connection (a member down, refusing, timing out: etcd3's recoverable
 * errors) is tried on the next member at once. Without it, a call that drew a dead member failed
 * although a live one was listed, as clientv3 and etcd3's own default policy do not. Backing off,
 * and keeping the last good state while the whole cluster is away, stay with the resolver and
 * registrar.
 */
export function acrossMembersPolicy(members: number, isRecoverable: (error: Error) => boolean): Policy {
  const noEvent = () => ({ dispose: () => undefined });
  const policy = {
    onSuccess: noEvent,
    onFailure: noEvent,
    execute: async <T>(
      fn: (context: { signal: AbortSignal; attempt: number }) => PromiseLike<T> | T,
      signal?: AbortSignal,
    ) => {
      const s = signal ?? new AbortController().signal;
      for (let attempt = 0; ; attempt++) {
        try {
          return await fn({ signal: s, attempt });
        } catch (error) {
          const again = attempt + 1 < members && !s.aborted && error instanceof Error && isRecoverable(error);
          if (!again) throw error;
        }
      }
    },
  };
  return policy as unknown as Policy;
}

/** Normalise the prefix so it ends with one `/`. */
export function normalizePrefix(prefix: string | undefined): string {
  const p = prefix ?? DEFAULT_ETCD_PREFIX;
  return p.endsWith('/') ? p : `${p}/`;
}

/** A URL list with each password in user info replaced by `***` (see `@proxyless/core`). */
export { redactUserInfo };

/** `host:port` → `http(s)://host:port`; a URL is kept as its scheme and host (it may have no user info or path). */
export function normalizeEtcdEndpoint(value: string, tls: boolean, field = 'endpoints'): string {
  const v = value.trim();
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v)) {
    let url: URL;
    try {
      url = new URL(v);
    } catch {
      throw configError(field, 'host:port or an http(s):// URL', value);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw configError(field, 'an http:// or https:// URL', value);
    if (url.port === '') throw configError(field, 'a URL with a port', value);
    // etcd's gRPC endpoint has no path, and credentials go in `username` / `password`: a URL that
    // carries either would have them dropped silently.
    if (url.username !== '' || url.password !== '')
      throw configError(
        field,
        'a URL without user info (set username and password instead)',
        redactUserInfo(value),
      );
    if (url.pathname !== '/' || url.search !== '' || url.hash !== '')
      throw configError(field, 'a URL with no path, query or fragment', value);
    return `${url.protocol}//${url.host}`;
  }
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]/\s]+):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || port < 1 || port > 65535) throw configError(field, 'host:port or an http(s):// URL', value);
  return `${tls ? 'https' : 'http'}://${m[1]}:${port}`;
}

function readPem(path: string, field: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new MeshError(
      'MESH_CONFIG_INVALID',
      `${field}: cannot read ${quote(path)}: ${(error as Error).message}`,
      {
        cause: error,
        details: { field, value: path, issues: [{ field, value: path, expected: 'a readable PEM file' }] },
      },
    );
  }
}

/**
 * Build an `etcd3` client from connection options. Throws `MESH_CONFIG_INVALID` at once for bad
 * options (every problem named, with its value) and when the optional peer dependency `etcd3` is
 * not installed (`npm install etcd3`); it is imported here, on first use, never when the package
 * loads. With `issues`, problems are added there instead (the caller throws with its own).
 */
export function createEtcdClient(options: EtcdConnectionOptions, issues?: Issues): Promise<EtcdClient> {
  const etcdOptions = issues === undefined ? etcdClientOptions(options) : etcdClientOptions(options, issues);
  if (etcdOptions === undefined) {
    // The problems are in `issues`, which the caller throws: no client is built.
    const refused = Promise.reject(new MeshError('MESH_CONFIG_INVALID', 'etcd connection options'));
    refused.catch(() => undefined);
    return refused;
  }
  assertEtcd3Installed();
  return loadEtcd3().then(
    ({ Etcd3, isRecoverableError }) =>
      new Etcd3({
        ...etcdOptions,
        faultHandling: {
          ...etcdOptions.faultHandling,
          global: acrossMembersPolicy(etcdOptions.hosts?.length ?? 1, isRecoverableError),
        },
      }),
  );
}

/**
 * Validate connection options and turn them into `etcd3` client options (no I/O but PEM reads).
 * Every problem is collected — a bad endpoint, a URL with user info or a path (which would be
 * dropped silently), endpoints of both schemes, an unpaired cert/key or username/password, a
 * call timeout that is not a positive number of ms, an unreadable PEM file — and thrown at once as
 * `MESH_CONFIG_INVALID`, or added to `issues` when given (then `undefined` is returned).
 */
export function etcdClientOptions(options: EtcdConnectionOptions, issues: Issues): IOptions | undefined;
export function etcdClientOptions(options: EtcdConnectionOptions): IOptions;
export function etcdClientOptions(options: EtcdConnectionOptions, issues?: Issues): IOptions | undefined {
  const own = issues ?? new Issues();
  const before = own.list.length;
  const tls = options.caCert !== undefined || options.cert !== undefined;
  let endpoints: readonly unknown[] = DEFAULT_ETCD_ENDPOINTS;
  if (options.endpoints !== undefined && !Array.isArray(options.endpoints)) {
    own.add('endpoints', 'a list of host:port or http(s):// URLs', options.endpoints);
  } else if (options.endpoints && options.endpoints.length > 0) endpoints = options.endpoints;
  const hosts: string[] = [];
  endpoints.forEach((e, i) => {
    const field = `endpoints[${i}]`;
    if (typeof e !== 'string') {
      own.add(field, 'host:port or an http(s):// URL', e);
      return;
    }
    const host = own.try(() => normalizeEtcdEndpoint(e, tls, field));
    if (host !== undefined) hosts.push(host);
  });
  if (new Set(hosts.map((h) => h.slice(0, h.indexOf(':')))).size > 1)
    own.add('endpoints', 'one scheme for every endpoint (all http:// or all https://)', endpoints);
  if ((options.cert === undefined) !== (options.key === undefined))
    own.add(
      options.cert === undefined ? 'cert' : 'key',
      'both cert and key, or neither',
      options.cert ?? options.key,
    );
  if (options.username !== undefined && options.password === undefined)
    own.add('password', 'a password when username is set', undefined);
  if (options.username === undefined && options.password !== undefined)
    own.add('username', 'a user name when password is set', undefined);
  const timeout = options.callTimeoutMs ?? 5000;
  if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout <= 0 || timeout > 2_147_483_647)
    own.add('callTimeoutMs', 'a number of milliseconds > 0', timeout);
  const pem = (path: string | undefined, field: string): Buffer | undefined =>
    path === undefined ? undefined : own.try(() => readPem(path, field));
  const rootCertificate = pem(options.caCert, 'caCert');
  const certChain = pem(options.cert, 'cert');
  const privateKey = pem(options.key, 'key');
  if (issues === undefined) own.throwIfAny('etcd connection options');
  if (own.list.length !== before) return undefined;
  const etcdOptions: IOptions = {
    hosts,
    dialTimeout: timeout,
    // Reconnect soon after an outage ends (gRPC's own default backs off up to two minutes).
    grpcOptions: {
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 5000,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
    },
    faultHandling: { host: () => passThroughPolicy(), global: passThroughPolicy() },
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
  };
  if (options.username !== undefined && options.password !== undefined)
    etcdOptions.auth = { username: options.username, password: options.password };
  if (tls) {
    // Without a CA file, gRPC uses the system roots (it treats a missing root bundle that way).
    etcdOptions.credentials = {
      rootCertificate: rootCertificate ?? (null as unknown as Buffer),
      ...(certChain !== undefined ? { certChain } : {}),
      ...(privateKey !== undefined ? { privateKey } : {}),
    };
  }
  return etcdOptions;
}

/** Wrap a client failure as `MESH_REGISTRY_UNAVAILABLE`. */
export function unavailable(what: string, error: unknown, details: Record<string, unknown> = {}): MeshError {
  if (MeshError.is(error)) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (ACCESS_DENIED.test(message))
    return new MeshError(
      'MESH_REGISTRY_UNAVAILABLE',
      `etcd: ${what}: ${message} (check MESH_ETCD_USERNAME / MESH_ETCD_PASSWORD and the user's roles)`,
      { cause: error, details: { ...details, reason: 'access_denied' } },
    );
  return new MeshError('MESH_REGISTRY_UNAVAILABLE', `etcd: ${what}: ${message}`, { cause: error, details });
}

/**
 * etcd refusing the credentials (a wrong password, an unknown user, none sent while auth is on) or
 * what the user may read (`ErrAuthFailed`, `ErrUserNotFound`, `ErrUserEmpty`,
 * `ErrPermissionDenied`, `ErrRoleNotGranted` of etcd's `api/v3rpc/rpctypes`).
 */
const ACCESS_DENIED =
  /etcdserver: (authentication failed|permission denied|user name (not found|is empty)|role is not granted)/;

/**
 * A watch builder with a gRPC watch stream of its own. etcd3 shares one stream among the watches of
 * a namespace, and when etcd cancels a watch as it is created (an etcd restarted with
 * authentication on refuses the token the stream was opened with: "invalid auth token"), etcd3
 * never creates another on that stream: every later watch there waits for good, with no event.
 * One stream per watch confines that to the watch the cancellation names (its `error` event); its
 * owner replaces it after a unary call, which has etcd3 take a new token.
 */
export function ownWatch(client: Etcd3): WatchBuilder {
  return client.namespace('').watch();
}
