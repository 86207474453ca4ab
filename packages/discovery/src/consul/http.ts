/**
 * The one module that speaks HTTP to Consul (through undici). Handles the address forms of
 * `CONSUL_HTTP_ADDR` (`host:port`, `http(s)://host:port[/prefix]`, `unix:///path`), TLS options,
 * the ACL token and basic-auth headers, the common `dc`/`ns`/`partition` parameters (as the Go
 * client's `newRequest`: `ns` and `partition` on every request, agent writes included), a cap on
 * response size, per-request timeouts that start once the request is on a socket, and abort.
 * Blocking queries use their own connections ({@link LongPollSlots}).
 */
import { createHash } from 'node:crypto';
import { MeshError, processWide, quote, redactUserInfo, requestUrl, undiciAgent } from '@proxyless/core';
import type { Dispatcher } from 'undici';
import {
  DEFAULT_MAX_LONG_POLLS,
  type LongPollSlots,
  longPollSlots,
  releaseLongPollSlots,
} from './long-polls.js';
import { readTlsFiles } from './tls-files.js';

/** TLS settings for an `https` Consul address. Files are read when the client is created. */
export interface ConsulTlsOptions {
  /** PEM CA certificate(s), or a path to a PEM file with `caFile`. */
  ca?: string;
  caFile?: string;
  /** A directory of PEM CA files (`CONSUL_CAPATH`); every file in it (recursively) is trusted. */
  caPath?: string;
  /** Client certificate and key for mutual TLS (both or neither). */
  cert?: string;
  certFile?: string;
  key?: string;
  keyFile?: string;
  /** Server name for SNI and certificate verification (a port is stripped). */
  serverName?: string;
  /** `false` skips server certificate verification. @defaultValue true */
  verify?: boolean;
}

/** Where and how to reach the Consul HTTP API. */
export interface ConsulConnectionOptions {
  /**
   * `host:port`, `http://host:port[/prefix]`, `https://…` or `unix:///path/to/socket`.
   * @defaultValue '127.0.0.1:8500'
   */
  address?: string;
  /** Force `https` (as `CONSUL_HTTP_SSL=true`); an `http://` address is upgraded. */
  https?: boolean;
  /** ACL token, sent as `X-Consul-Token`. */
  token?: string;
  /** HTTP basic auth (`CONSUL_HTTP_AUTH=user[:pass]`), for a proxy in front of Consul. */
  basicAuth?: { username: string; password?: string };
  tls?: ConsulTlsOptions;
  /** Enterprise namespace (`?ns=` on every request). Consul CE refuses it. */
  namespace?: string;
  /** Enterprise admin partition (`?partition=` on every request). Consul CE refuses it. */
  partition?: string;
  /**
   * Largest accepted response body, in bytes. Consul has no cap: a service of a few thousand
   * instances answers several MB. @defaultValue 64 MiB
   */
  maxBodyBytes?: number;
  /** Most concurrent connections for requests other than blocking queries. @defaultValue 16 */
  maxConnections?: number;
  /**
   * Most concurrent blocking queries to one agent, for the whole process (each holds a
   * connection for its `wait`; Consul accepts 200 connections per client IP). Beyond it, watches
   * take turns with a shorter `wait` and a `long-poll-limit` event is raised. @defaultValue 128
   */
  maxLongPolls?: number;
}

/** A parsed Consul address. */
export interface ConsulTarget {
  /** Origin to send requests to (`http://localhost` for a unix socket). */
  origin: string;
  /** Path prefix put before `/v1/…` (no trailing slash; `''` for none). */
  prefix: string;
  https: boolean;
  socketPath?: string;
}

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;

/**
 * Parse a Consul address as the Go client does. Throws `MESH_CONFIG_INVALID` naming `field`.
 *
 * @example parseConsulAddress('https://consul.internal:8501/api') // origin https://consul.internal:8501, prefix /api
 */
export function parseConsulAddress(address: string, https = false, field = 'address'): ConsulTarget {
  const text = address.trim();
  const m = text.match(SCHEME);
  const scheme = m?.[1]?.toLowerCase();
  if (scheme === 'unix') {
    const path = text.slice('unix://'.length);
    if (!path.startsWith('/')) throw invalidAddress(field, address, 'unix:///absolute/path');
    return { origin: https ? 'https://localhost' : 'http://localhost', prefix: '', https, socketPath: path };
  }
  if (scheme !== undefined && scheme !== 'http' && scheme !== 'https') {
    throw new MeshError(
      'MESH_CONFIG_INVALID',
      `${field}: Unknown protocol scheme: ${scheme} (got ${quote(redactUserInfo(address))})`,
      {
        details: {
          field,
          value: redactUserInfo(address),
          issues: [
            {
              field,
              value: redactUserInfo(address),
              expected: 'an http://, https:// or unix:// address, or host:port',
            },
          ],
        },
      },
    );
  }
  const useHttps = https || scheme === 'https';
  let url: URL;
  try {
    url = new URL(scheme ? text : `http://${text}`);
  } catch {
    throw invalidAddress(field, address, 'host:port or a URL');
  }
  if (url.hostname === '' || url.search !== '' || url.hash !== '' || url.username !== '') {
    throw invalidAddress(field, address, 'host:port or a URL without query, fragment or credentials');
  }
  const port = url.port || (scheme ? (useHttps ? '443' : '80') : '8500');
  const host = url.hostname;
  const prefix = url.pathname.replace(/\/+$/, '');
  return { origin: `${useHttps ? 'https' : 'http'}://${host}:${port}`, prefix, https: useHttps };
}

function invalidAddress(field: string, address: string, expected: string): MeshError {
  // A password in the address (`http://user:secret@host`) is never quoted back.
  const value = redactUserInfo(address);
  return new MeshError('MESH_CONFIG_INVALID', `${field}: expected ${expected}, got ${quote(value)}`, {
    details: { field, value, issues: [{ field, value, expected }] },
  });
}

/** One answer from Consul, body read in full (within the size cap). */
export interface ConsulResponse {
  status: number;
  headers: Readonly<Record<string, string | string[] | undefined>>;
  body: Buffer;
  /** The body as text. */
  text(): string;
  /** The `X-Consul-Index` header, raw. */
  readonly index: string | undefined;
}

export interface ConsulRequestOptions {
  method?: 'GET' | 'PUT' | 'POST' | 'DELETE';
  query?: Record<string, string | readonly string[] | undefined>;
  /** A JSON body (serialised) or raw text. */
  json?: unknown;
  signal?: AbortSignal;
  /**
   * Time for the answer's headers, then between body chunks, in ms; counted from when the
   * request is written to a connection, not while it waits for one. @defaultValue 30_000
   */
  timeoutMs?: number;
  /** Agent-local call: no `dc` (still `ns`/`partition`, as the Go client). */
  local?: boolean;
  /** A blocking query: sent on the long-poll connections. */
  longPoll?: boolean;
  /** Datacenter for this call. */
  datacenter?: string;
}

/** @defaultValue 64 MiB */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024;

/** An HTTP client bound to one Consul agent. */
export class ConsulHttp {
  readonly target: ConsulTarget;
  /** The blocking-query slots of this agent, shared process-wide. */
  readonly longPolls: LongPollSlots;
  readonly namespace: string | undefined;
  readonly partition: string | undefined;
  readonly maxBodyBytes: number;
  private readonly dispatcher: Dispatcher;
  private readonly longDispatcher: Dispatcher;
  private readonly headers: Readonly<Record<string, string>>;
  private readonly slotsKey: string;
  private readonly longKey: string;
  private readonly slotsLimit: number;
  private closing: Promise<void> | undefined;

  constructor(options: ConsulConnectionOptions = {}) {
    this.target = parseConsulAddress(options.address ?? '127.0.0.1:8500', options.https ?? false);
    this.namespace = options.namespace;
    this.partition = options.partition;
    this.maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    const headers: Record<string, string> = {};
    if (options.token) headers['x-consul-token'] = options.token;
    if (options.basicAuth) {
      const { username, password = '' } = options.basicAuth;
      headers.authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    }
    this.headers = headers;
    const tls = options.tls ?? {};
    const material = readTlsFiles(tls);
    const servername = tls.serverName?.replace(/:\d+$/, '');
    const connect = {
      ...(this.target.socketPath ? { socketPath: this.target.socketPath } : {}),
      ...material,
      ...(servername ? { servername } : {}),
      ...(tls.verify === false ? { rejectUnauthorized: false } : {}),
    };
    this.slotsLimit = options.maxLongPolls ?? DEFAULT_MAX_LONG_POLLS;
    const Agent = undiciAgent();
    this.dispatcher = new Agent({
      connections: options.maxConnections ?? 16,
      keepAliveTimeout: 4_000,
      connect,
    });
    this.slotsKey = this.target.socketPath ?? this.target.origin;
    // One connection per blocking query in flight; the slots keep them under the cap. The pool is
    // shared by every client of the agent (same address and TLS settings): with a pool per client,
    // idle keep-alive connections of one client add to the busy ones of another at the agent,
    // which counts both against its 200 per client IP. Its connections are capped too: a slot
    // freed and taken again in one tick would otherwise open a new connection beside the old one.
    this.longKey = `${this.slotsKey}\n${createHash('sha256').update(JSON.stringify(connect)).digest('hex')}`;
    this.longDispatcher = sharedLongDispatcher(
      this.longKey,
      () => new Agent({ connections: this.slotsLimit, keepAliveTimeout: 4_000, connect }),
    );
    this.longPolls = longPollSlots(this.slotsKey, this.slotsLimit);
  }

  /** The URL a path (`/v1/…`) is sent to, without query. */
  url(path: string): string {
    return `${this.target.origin}${this.target.prefix}${path}`;
  }

  /**
   * Send one request. Network failures, timeouts and an oversized body reject with a
   * `MeshError` (`MESH_REGISTRY_UNAVAILABLE`, `MESH_ABORTED`, `MESH_REGISTRY_PAYLOAD_INVALID`
   * with `details.index` of the answer); any HTTP status resolves.
   */
  async request(path: string, options: ConsulRequestOptions = {}): Promise<ConsulResponse> {
    const params = new URLSearchParams();
    if (!options.local && options.datacenter) params.set('dc', options.datacenter);
    // As the Go client's newRequest: on every request, agent writes and heartbeats included.
    if (this.namespace) params.set('ns', this.namespace);
    if (this.partition) params.set('partition', this.partition);
    for (const [k, v] of Object.entries(options.query ?? {})) {
      if (v === undefined) continue;
      if (typeof v === 'string') params.append(k, v);
      else for (const x of v) params.append(k, x);
    }
    const qs = params.toString();
    const url = `${this.url(path)}${qs ? `?${qs}` : ''}`;
    const headers: Record<string, string> = { ...this.headers };
    let body: string | undefined;
    if (options.json !== undefined) {
      body = typeof options.json === 'string' ? options.json : JSON.stringify(options.json);
      headers['content-type'] = 'application/json';
    }
    // undici starts these when the request is written to a socket: time spent waiting for a
    // free connection never counts (it used to, and queued watches timed out spuriously).
    const timeoutMs = options.timeoutMs ?? 30_000;
    if (options.signal?.aborted) throw aborted(options.signal.reason);
    const method = options.method ?? 'GET';
    try {
      const res = await requestUrl(url, {
        dispatcher: options.longPoll ? this.longDispatcher : this.dispatcher,
        method,
        headers,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        ...(body !== undefined ? { body } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
      const rawIndex = res.headers['x-consul-index'];
      const index = Array.isArray(rawIndex) ? rawIndex[0] : rawIndex;
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        const b = chunk as Buffer;
        size += b.length;
        if (size > this.maxBodyBytes) {
          res.body.destroy();
          throw new MeshError(
            'MESH_REGISTRY_PAYLOAD_INVALID',
            `consul ${method} ${path}: response body exceeds maxBodyBytes (${this.maxBodyBytes} bytes)`,
            {
              details: {
                field: 'body',
                value: `more than ${this.maxBodyBytes} bytes`,
                index,
                issues: [{ field: 'body', value: size, expected: `at most ${this.maxBodyBytes} bytes` }],
              },
            },
          );
        }
        chunks.push(b);
      }
      const buf = Buffer.concat(chunks);
      return {
        status: res.statusCode,
        headers: res.headers,
        body: buf,
        text: () => buf.toString('utf8'),
        index,
      };
    } catch (error) {
      if (MeshError.is(error)) throw error;
      if (options.signal?.aborted) throw aborted(options.signal.reason);
      throw new MeshError(
        'MESH_REGISTRY_UNAVAILABLE',
        `consul ${method} ${path}: ${describe(error, timeoutMs)}`,
        {
          cause: error,
          details: { address: this.target.socketPath ?? this.target.origin },
        },
      );
    }
  }

  /** The `MeshError` for a non-2xx answer ({@link consulStatusError} with this client's namespace). */
  statusError(what: string, res: ConsulResponse): MeshError {
    return consulStatusError(what, res, { namespace: this.namespace, partition: this.partition });
  }

  /** Close pooled connections. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      releaseLongPollSlots(this.slotsKey, this.slotsLimit);
      await Promise.all([
        this.dispatcher.close().catch(() => undefined),
        releaseLongDispatcher(this.longKey),
      ]);
    })();
    return this.closing;
  }
}

/** The blocking-query pools, by agent and TLS settings, with their number of clients. */
const longDispatchers = processWide(
  'proxyless.consulLongDispatchers.1',
  () => new Map<string, { dispatcher: Dispatcher; users: number }>(),
);

function sharedLongDispatcher(key: string, create: () => Dispatcher): Dispatcher {
  let entry = longDispatchers.get(key);
  if (!entry) {
    entry = { dispatcher: create(), users: 0 };
    longDispatchers.set(key, entry);
  }
  entry.users += 1;
  return entry.dispatcher;
}

async function releaseLongDispatcher(key: string): Promise<void> {
  const entry = longDispatchers.get(key);
  if (!entry) return;
  entry.users -= 1;
  if (entry.users > 0) return;
  longDispatchers.delete(key);
  await entry.dispatcher.close().catch(() => undefined);
}

function aborted(reason: unknown): MeshError {
  if (MeshError.is(reason)) return reason;
  return new MeshError('MESH_ABORTED', 'consul request aborted', { cause: reason });
}

function describe(error: unknown, timeoutMs: number): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT')
      return `timed out after ${timeoutMs} ms on the connection (${code})`;
    const causeCode = (error.cause as { code?: unknown } | undefined)?.code;
    return [
      error.message,
      typeof code === 'string' ? code : undefined,
      typeof causeCode === 'string' ? causeCode : undefined,
    ]
      .filter(Boolean)
      .join(' ');
  }
  return String(error);
}

const CE_FEATURE = /Invalid query parameter: "(ns|partition)" - \w+ are a Consul Enterprise feature/;

/**
 * The `MeshError` for a non-2xx answer. 401/403 (ACL), 429 and 5xx are `MESH_REGISTRY_UNAVAILABLE`
 * with `details.status` (and `details.reason` `access_denied` for 401/403), the plain-text body Consul sent and `details.retryAfter` (the raw
 * `Retry-After` header). Consul CE's 400 for `?ns=`/`?partition=` is `MESH_CONFIG_INVALID`
 * naming `CONSUL_NAMESPACE`/`CONSUL_PARTITION`: it answers so to every request, so no retry helps.
 */
export function consulStatusError(
  what: string,
  res: ConsulResponse,
  scope: { namespace?: string | undefined; partition?: string | undefined } = {},
): MeshError {
  const body = res.text().trim().slice(0, 300);
  const ce = res.status === 400 ? body.match(CE_FEATURE) : null;
  if (ce) {
    const isNs = ce[1] === 'ns';
    const field = isNs ? 'CONSUL_NAMESPACE' : 'CONSUL_PARTITION';
    const value = isNs ? scope.namespace : scope.partition;
    const expected = `unset: ${isNs ? 'namespaces' : 'admin partitions'} need Consul Enterprise, and this agent is Consul CE (it answers 400 to every request carrying ?${ce[1]}=)`;
    return new MeshError(
      'MESH_CONFIG_INVALID',
      `consul ${what}: ${field}: expected ${expected}, got ${quote(value)}`,
      {
        details: { field, value, status: 400, body, issues: [{ field, value, expected }] },
      },
    );
  }
  const denied = res.status === 401 || res.status === 403;
  const hint = denied
    ? ' (ACL: check CONSUL_HTTP_TOKEN and its policy)'
    : res.status === 429 || res.status === 503
      ? ' (rate limited)'
      : '';
  const retryAfter = res.headers['retry-after'];
  return new MeshError(
    'MESH_REGISTRY_UNAVAILABLE',
    `consul ${what}: HTTP ${res.status}${body ? ` ${quote(body)}` : ''}${hint}`,
    {
      details: {
        status: res.status,
        body,
        ...(denied ? { reason: 'access_denied' } : {}),
        ...(typeof retryAfter === 'string' ? { retryAfter } : {}),
      },
    },
  );
}
