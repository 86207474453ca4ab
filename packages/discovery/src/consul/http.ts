/**
 * The one module that speaks HTTP to Consul (through undici). Handles the address forms of
 * `CONSUL_HTTP_ADDR` (`host:port`, `http(s)://host:port[/prefix]`, `unix:///path`), TLS options,
 * the ACL token header, the common `dc`/`ns`/`partition` parameters, a cap on response size and
 * per-request timeouts and abort.
 */
import { readFileSync } from 'node:fs';
import { MeshError, quote } from '@proxyless/core';
import { Agent, type Dispatcher, request } from 'undici';

/** TLS settings for an `https` Consul address. Files are read when the client is created. */
export interface ConsulTlsOptions {
  /** PEM CA certificate(s), or a path to a PEM file with `caFile`. */
  ca?: string;
  caFile?: string;
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
  tls?: ConsulTlsOptions;
  /** Enterprise namespace (`?ns=`). */
  namespace?: string;
  /** Enterprise admin partition (`?partition=`). */
  partition?: string;
  /** Largest accepted response body, in bytes. @defaultValue 4 MiB */
  maxBodyBytes?: number;
  /**
   * Most concurrent connections to the agent. Each watched service holds one during its
   * blocking query; Consul refuses more than 200 per client IP. @defaultValue 64
   */
  maxConnections?: number;
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
      `${field}: Unknown protocol scheme: ${scheme} (got ${quote(address)})`,
      {
        details: {
          field,
          value: address,
          issues: [
            { field, value: address, expected: 'an http://, https:// or unix:// address, or host:port' },
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

function invalidAddress(field: string, value: string, expected: string): MeshError {
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
  /** Total time for headers and body, in ms. @defaultValue 30_000 */
  timeoutMs?: number;
  /** Leave out `dc`/`ns`/`partition` defaults (agent-local calls). */
  local?: boolean;
  /** Datacenter for this call. */
  datacenter?: string;
}

/** @defaultValue 4 MiB */
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

/** An HTTP client bound to one Consul agent. */
export class ConsulHttp {
  readonly target: ConsulTarget;
  private readonly dispatcher: Dispatcher;
  private readonly token: string | undefined;
  private readonly namespace: string | undefined;
  private readonly partition: string | undefined;
  readonly maxBodyBytes: number;

  constructor(options: ConsulConnectionOptions = {}) {
    this.target = parseConsulAddress(options.address ?? '127.0.0.1:8500', options.https ?? false);
    this.token = options.token;
    this.namespace = options.namespace;
    this.partition = options.partition;
    this.maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    const tls = options.tls ?? {};
    const read = (
      inline: string | undefined,
      file: string | undefined,
      field: string,
    ): string | undefined => {
      if (inline !== undefined || !file) return inline;
      try {
        return readFileSync(file, 'utf8');
      } catch (error) {
        const expected = `a readable PEM file (${(error as NodeJS.ErrnoException).code ?? 'error'})`;
        throw new MeshError('MESH_CONFIG_INVALID', `${field}: expected ${expected}, got ${quote(file)}`, {
          cause: error,
          details: { field, value: file, issues: [{ field, value: file, expected }] },
        });
      }
    };
    const ca = read(tls.ca, tls.caFile, 'tls.caFile');
    const cert = read(tls.cert, tls.certFile, 'tls.certFile');
    const key = read(tls.key, tls.keyFile, 'tls.keyFile');
    if ((cert === undefined) !== (key === undefined)) {
      const field = cert === undefined ? 'tls.cert' : 'tls.key';
      throw new MeshError(
        'MESH_CONFIG_INVALID',
        `${field}: both client cert and client key must be provided`,
        {
          details: {
            field,
            value: undefined,
            issues: [{ field, value: undefined, expected: 'client cert and key together' }],
          },
        },
      );
    }
    const servername = tls.serverName?.replace(/:\d+$/, '');
    this.dispatcher = new Agent({
      connections: options.maxConnections ?? 64,
      keepAliveTimeout: 4_000,
      connect: {
        ...(this.target.socketPath ? { socketPath: this.target.socketPath } : {}),
        ...(ca ? { ca } : {}),
        ...(cert ? { cert } : {}),
        ...(key ? { key } : {}),
        ...(servername ? { servername } : {}),
        ...(tls.verify === false ? { rejectUnauthorized: false } : {}),
      },
    });
  }

  /** The URL a path (`/v1/…`) is sent to, without query. */
  url(path: string): string {
    return `${this.target.origin}${this.target.prefix}${path}`;
  }

  /**
   * Send one request. Network failures, timeouts and an oversized body reject with a
   * `MeshError` (`MESH_REGISTRY_UNAVAILABLE`, `MESH_ABORTED`, `MESH_REGISTRY_PAYLOAD_INVALID`);
   * any HTTP status resolves.
   */
  async request(path: string, options: ConsulRequestOptions = {}): Promise<ConsulResponse> {
    const params = new URLSearchParams();
    if (!options.local) {
      if (options.datacenter) params.set('dc', options.datacenter);
      if (this.namespace) params.set('ns', this.namespace);
      if (this.partition) params.set('partition', this.partition);
    }
    for (const [k, v] of Object.entries(options.query ?? {})) {
      if (v === undefined) continue;
      if (typeof v === 'string') params.append(k, v);
      else for (const x of v) params.append(k, x);
    }
    const qs = params.toString();
    const url = `${this.url(path)}${qs ? `?${qs}` : ''}`;
    const headers: Record<string, string> = {};
    if (this.token) headers['x-consul-token'] = this.token;
    let body: string | undefined;
    if (options.json !== undefined) {
      body = typeof options.json === 'string' ? options.json : JSON.stringify(options.json);
      headers['content-type'] = 'application/json';
    }
    const timeoutMs = options.timeoutMs ?? 30_000;
    const ac = new AbortController();
    const onAbort = (): void => ac.abort(options.signal?.reason);
    if (options.signal?.aborted) throw aborted(options.signal.reason);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    // Real time on purpose: this bounds a socket, not a policy.
    const timer = setTimeout(() => ac.abort(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
    const method = options.method ?? 'GET';
    try {
      const res = await request(url, {
        dispatcher: this.dispatcher,
        method,
        headers,
        ...(body !== undefined ? { body } : {}),
        signal: ac.signal,
      });
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        const b = chunk as Buffer;
        size += b.length;
        if (size > this.maxBodyBytes) {
          res.body.destroy();
          throw new MeshError(
            'MESH_REGISTRY_PAYLOAD_INVALID',
            `consul ${method} ${path}: response body exceeds ${this.maxBodyBytes} bytes`,
            {
              details: {
                field: 'body',
                value: `more than ${this.maxBodyBytes} bytes`,
                issues: [{ field: 'body', value: size, expected: `at most ${this.maxBodyBytes} bytes` }],
              },
            },
          );
        }
        chunks.push(b);
      }
      const buf = Buffer.concat(chunks);
      const rawIndex = res.headers['x-consul-index'];
      return {
        status: res.statusCode,
        headers: res.headers,
        body: buf,
        text: () => buf.toString('utf8'),
        index: Array.isArray(rawIndex) ? rawIndex[0] : rawIndex,
      };
    } catch (error) {
      if (MeshError.is(error)) throw error;
      if (options.signal?.aborted) throw aborted(options.signal.reason);
      throw new MeshError(
        'MESH_REGISTRY_UNAVAILABLE',
        `consul ${method} ${path}: ${describe(error, ac.signal)}`,
        {
          cause: error,
          details: { address: this.target.socketPath ?? this.target.origin },
        },
      );
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Close pooled connections. */
  async close(): Promise<void> {
    await this.dispatcher.close().catch(() => undefined);
  }
}

function aborted(reason: unknown): MeshError {
  if (MeshError.is(reason)) return reason;
  return new MeshError('MESH_ABORTED', 'consul request aborted', { cause: reason });
}

function describe(error: unknown, signal: AbortSignal): string {
  if (signal.aborted && signal.reason instanceof Error) return signal.reason.message;
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
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

/**
 * The `MeshError` for a non-2xx answer. 403 (ACL), 429 and 5xx are `MESH_REGISTRY_UNAVAILABLE`
 * with `details.status` and the plain-text body Consul sent.
 */
export function consulStatusError(what: string, res: ConsulResponse): MeshError {
  const body = res.text().trim().slice(0, 300);
  const hint =
    res.status === 403
      ? ' (ACL: check CONSUL_HTTP_TOKEN and its policy)'
      : res.status === 429
        ? ' (rate limited)'
        : '';
  return new MeshError(
    'MESH_REGISTRY_UNAVAILABLE',
    `consul ${what}: HTTP ${res.status}${body ? ` ${quote(body)}` : ''}${hint}`,
    { details: { status: res.status, body } },
  );
}
