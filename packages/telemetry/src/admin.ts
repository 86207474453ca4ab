import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MeshError } from '@proxyless/core';
import type { Registry } from 'prom-client';
import { ADMIN_PAGE } from './admin-page.js';
import { register } from './prom.js';
import type { EventView, ServiceView } from './views.js';

/** Options of {@link createAdminServer}: where to listen and where the data comes from. */
export interface AdminServerOptions {
  /** Served at `/metrics`. @defaultValue prom-client's global `register` */
  registry?: Registry;
  /** Services and endpoints with their state, for `/clusters` and the page. */
  services(): readonly ServiceView[];
  /** The effective config per service with the layer and version each setting came from. */
  configDump(): unknown;
  /** True once every configured service has resolved at least once. */
  ready(): boolean;
  /** Recent events, oldest first. */
  events(): readonly EventView[];
  /** @defaultValue `127.0.0.1`: the admin server shows the whole config, so loopback unless asked */
  host?: string;
  /** @defaultValue 0 (any free port) */
  port?: number;
  /**
   * The settings that gave `host` and `port`, for the error when they cannot be bound.
   * @defaultValue `{ host: 'MESH_ADMIN_HOST', port: 'MESH_ADMIN_PORT' }`
   */
  fields?: { readonly host: string; readonly port: string };
}

/** A listening admin server. */
export interface AdminServer extends AsyncDisposable {
  /** `http://host:port` */
  readonly url: string;
  readonly port: number;
  /** Stop listening and close idle connections. Idempotent. */
  close(): Promise<void>;
}

const JSON_TYPE = 'application/json; charset=utf-8';

/** `listen` errors that mean the bind address is wrong: not local, unresolvable, wrong family. */
const HOST_ERRORS: ReadonlySet<string> = new Set([
  'EADDRNOTAVAIL',
  'EAFNOSUPPORT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_FAIL',
  'EAI_NONAME',
  'EAI_NODATA',
]);

/**
 * Start the admin server (Envoy's admin interface, reduced): `/metrics` (also
 * `/stats/prometheus`), `/healthz`, `/readyz`, `/config_dump`, `/clusters`, `/events` and an HTML
 * page at `/` that needs no build step and no network beyond this server.
 *
 * @throws MeshError `MESH_CONFIG_INVALID` when the address cannot be bound; `details.field` is
 * `MESH_ADMIN_HOST` when the host is at fault (not local, does not resolve), else `MESH_ADMIN_PORT`
 * (in use, privileged).
 * @example
 * const admin = await createAdminServer({ port: 9901, services, configDump, ready, events });
 */
export async function createAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const registry = options.registry ?? register;
  const host = options.host ?? '127.0.0.1';
  // Once the server is closing, every answer ends its connection: a client that keeps one open (a
  // scraper, the admin page polling /readyz) would otherwise hold the server — and the mesh's
  // close() — open, and go on being answered by a server that is gone.
  let stopping = false;
  const answering = new Set<ServerResponse>();
  // `node:http` when an admin server starts, not when the mesh is imported.
  const server = process.getBuiltinModule('node:http').createServer((req, res) => {
    if (stopping) res.setHeader('connection', 'close');
    answering.add(res);
    res.once('close', () => answering.delete(res));
    res.once('finish', () => {
      if (stopping) server.closeIdleConnections();
    });
    handle(req, res, options, registry).catch((error: unknown) => {
      if (!res.headersSent) send(res, 500, JSON_TYPE, JSON.stringify({ error: String(error) }));
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      const port = options.port ?? 0;
      // The address, not the port, is at fault when it is not this machine's or does not resolve.
      const hostAtFault = error.code !== undefined && HOST_ERRORS.has(error.code);
      const fields = options.fields ?? { host: 'MESH_ADMIN_HOST', port: 'MESH_ADMIN_PORT' };
      reject(
        new MeshError(
          'MESH_CONFIG_INVALID',
          `cannot listen on ${host}:${port} (${fields.host} / ${fields.port}): ${error.code ?? error.message}`,
          {
            cause: error,
            details: hostAtFault ? { field: fields.host, value: host } : { field: fields.port, value: port },
          },
        ),
      );
    };
    server.once('error', onError);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      stopping = true;
      for (const res of answering) if (!res.headersSent) res.setHeader('connection', 'close');
      server.close(() => resolve());
      server.closeIdleConnections();
    });
    return closing;
  };
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    close,
    [Symbol.asyncDispose]: close,
  };
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  o: AdminServerOptions,
  registry: Registry,
): Promise<void> {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    return send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
  }
  switch (path) {
    case '/':
      return send(res, 200, 'text/html; charset=utf-8', ADMIN_PAGE);
    case '/metrics':
    case '/stats/prometheus':
      return send(res, 200, registry.contentType, await registry.metrics());
    case '/healthz':
      return send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
    case '/readyz': {
      const ready = o.ready();
      return send(res, ready ? 200 : 503, JSON_TYPE, JSON.stringify({ ready }));
    }
    case '/config_dump':
      return send(res, 200, JSON_TYPE, JSON.stringify(o.configDump(), null, 2));
    case '/clusters':
      return send(res, 200, JSON_TYPE, JSON.stringify({ services: o.services() }, null, 2));
    case '/events':
      return send(res, 200, JSON_TYPE, JSON.stringify({ events: o.events() }, null, 2));
    default:
      return send(res, 404, 'text/plain; charset=utf-8', `not found: ${path}\n`);
  }
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.statusCode = status;
  res.setHeader('content-type', type);
  // HEAD answers with the headers GET would send, its length included.
  res.setHeader('content-length', Buffer.byteLength(body));
  res.setHeader('cache-control', 'no-store');
  res.end(body);
}
