/// <reference path="./undici-lib.d.ts" />
/**
 * undici, loaded in the parts the mesh's data plane uses.
 *
 * `import 'undici'` loads all of undici — fetch and the WHATWG classes, the cache and mock
 * agents, proxies, WebSocket, EventSource — about 110 modules, which was the largest part of a
 * mesh's start-up. The data plane needs undici's dispatcher classes (`Dispatcher`, `Agent`,
 * `Pool`), its errors and its request API: about 30 modules, a third of the time. The rest of
 * undici is imported on first use: by `mesh.fetch` (fetch), and by `mesh.request` with the
 * options only undici's own URL handling reads (`path`, `agent`).
 *
 * undici is a peer dependency: these are the very modules a user's own `import 'undici'` loads
 * (its index requires the same files), so classes and the global dispatcher are shared. undici 7
 * publishes no `exports` map, so its `lib/` files are addressable; the files named here have had
 * these paths since undici 6.7 (every release of the peer range ^7), and a test checks that each
 * is what undici's index exports. They are required by one CommonJS file, `undici-parts.cjs`
 * (which makes the ESM import cheaper: see there), with literal paths so that bundlers (esbuild,
 * webpack) follow them; the connection classes at their first use.
 */
import { createRequire } from 'node:module';
import type * as Undici from 'undici';
import { MeshError } from './errors.js';
import parts from './undici-parts.cjs';

const { errors, symbols, Dispatcher } = parts;

/** undici's `Dispatcher` base class. */
export const UndiciDispatcher: typeof Undici.Dispatcher = Dispatcher;
/**
 * undici's `Agent`, loaded at the first call: undici's connection classes (`Client`, `Pool`,
 * `Agent`) load Node's `http`, `tls` and `http2` and undici's HTTP/1 and HTTP/2 clients, which a
 * mesh needs only once it opens its first connection (undici-parts.cjs).
 */
export function undiciAgent(): typeof Undici.Agent {
  return parts.agent();
}
/** undici's `Pool`, loaded at the first call (see {@link undiciAgent}). */
export function undiciPool(): typeof Undici.Pool {
  return parts.pool();
}
/** undici's error classes. */
export const undiciErrors: typeof Undici.errors = errors;
/**
 * undici's own checks of a request (`lib/core/util.js`): its method token, header values, the body
 * types its `Request` takes, and whether a path already has a query or a fragment.
 */
export interface UndiciChecks {
  isValidHTTPToken(s: string): boolean;
  isValidHeaderValue(s: string): boolean;
  readonly normalizedMethodRecords: Readonly<Record<string, string>>;
  isStream(v: unknown): boolean;
  isBuffer(v: unknown): boolean;
  isFormDataLike(v: unknown): boolean;
  isIterable(v: unknown): boolean;
  isBlobLike(v: unknown): boolean;
  pathHasQueryOrFragment(path: string): boolean;
}
/**
 * undici's request checks, {@link UndiciChecks} (undici's `lib/core/util.js`), loaded at the first
 * call (it loads Node's `http`).
 */
export function undiciChecks(): UndiciChecks {
  return parts.util() as UndiciChecks;
}

// What undici's index does when loaded: the request API (`request`, `stream`, `pipeline`,
// `upgrade`, `connect`) as methods of every dispatcher. Loaded at the first call of one of them:
// until then each method is a stand-in that loads undici's API, puts its methods in place (the
// very functions undici's index assigns, so loading the index later changes nothing) and calls
// it. A dispatcher that has them already (undici's index was loaded first) keeps them.
const API_METHODS = ['request', 'stream', 'pipeline', 'upgrade', 'connect'] as const;
const dispatcherMethods = Dispatcher.prototype as unknown as Record<string, unknown>;
for (const name of API_METHODS) {
  if (typeof dispatcherMethods[name] === 'function') continue;
  dispatcherMethods[name] = function apiMethod(this: unknown, ...args: unknown[]): unknown {
    const api = parts.api();
    Object.assign(Dispatcher.prototype, api);
    return (api[name] as (...a: unknown[]) => unknown).apply(this, args);
  };
}

/**
 * Whether `handler` is undici's own `request()` handler — this copy of undici's, which the mesh's
 * dispatchers' `request()` and `undici.request()` create: it reads a response's header lines only
 * to parse them (unless its `responseHeaders` is `'raw'`). Another copy's handler is not.
 */
export function isUndiciRequestHandler(handler: object): boolean {
  if ((handler as { constructor?: { name?: unknown } }).constructor?.name !== 'RequestHandler') return false;
  const RequestHandler = (parts.api().request as { RequestHandler?: unknown }).RequestHandler;
  return typeof RequestHandler === 'function' && handler instanceof RequestHandler;
}

let loaded: typeof Undici | undefined;

/**
 * All of undici (its index), loaded now if it was not yet: for `mesh.fetch`, which must read its
 * arguments when it is called, as `fetch` does (a caller may change its headers or URL object
 * right after), not a turn later. undici is CommonJS, so this is the module `import 'undici'`
 * gives too; what it costs is undici's index, once, as Node's own `fetch` loads its copy of
 * undici on its first call.
 */
export function undiciSync(): typeof Undici {
  if (loaded === undefined) {
    try {
      // A bundle turned into CommonJS has no `import.meta.url` (esbuild leaves it empty): Node's
      // own `require` of the bundle is there, and finds an undici installed next to it.
      const url = import.meta.url as string | undefined;
      const load = url ? createRequire(url) : typeof require === 'function' ? require : undefined;
      if (load === undefined)
        throw Object.assign(new Error('no require to load undici with'), { code: 'MODULE_NOT_FOUND' });
      loaded = load('undici') as typeof Undici;
    } catch (error) {
      // Installed as a peer, so it is there unless the application was bundled without it: the
      // parts the mesh loads at start were bundled, this one (found at run time) was not.
      if ((error as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw error;
      throw new MeshError(
        'MESH_INTERNAL',
        'undici could not be loaded for mesh.fetch (or an undici request() option the mesh hands to undici): it is loaded at run time, at the first such call; an application bundled with esbuild or webpack keeps undici external (esbuild --external:undici) and installed next to the bundle',
        { cause: error },
      );
    }
  }
  return loaded;
}

/** All of undici once {@link undiciSync} has loaded it. */
export function undiciIfLoaded(): typeof Undici | undefined {
  return loaded;
}

/**
 * Undo what a pool does to one of its connections when that connection refuses a request locally
 * (undici's own checks: a bad method token, a header value with CR/LF, …). undici's `Pool` marks
 * the connection as needing a drain whenever its `dispatch()` returns `false`, and a refused
 * request returns `false` too; but the connection is not busy, so it never drains, and once every
 * connection of the pool has refused one request, every later request waits in the pool's queue
 * for ever (undici 7.30: `PoolBase[kDispatch]`). An Agent never shows it (its pools have no
 * connection limit); the mesh's pools do. Each connection so marked and not busy is told to
 * drain, as it would after a request that ended: it takes the pool's queued requests again.
 * Reads undici's internal marks (`lib/dispatcher/pool-base.js`, `lib/core/symbols.js`); a test
 * checks them on the undici in use.
 */
export function releaseRefusedConnections(pool: Undici.Dispatcher): void {
  const { kClients, kNeedDrain } = parts.poolBase();
  const { kBusy, kUrl } = symbols as Record<string, symbol>;
  const clients = (pool as unknown as Record<symbol, unknown>)[kClients];
  if (!Array.isArray(clients)) return;
  type Connection = Record<symbol, unknown> & {
    readonly destroyed: boolean;
    emit(event: 'drain', origin: unknown, targets: unknown[]): boolean;
  };
  for (const client of clients as Connection[]) {
    // The pool's own mark (not the connection's): the pool's drain listener clears it and hands
    // the connection the requests queued meanwhile.
    if (client[kNeedDrain] !== true || client[kBusy as symbol] || client.destroyed) continue;
    client.emit('drain', client[kUrl as symbol], [client]);
  }
}

/** undici's global dispatcher (`setGlobalDispatcher`, or the Agent undici installs by default). */
export function globalDispatcher(): Undici.Dispatcher {
  return parts.globals().getGlobalDispatcher();
}

/**
 * `request(url, options)` for URLs the caller built itself (a registry's or a health probe's):
 * what undici's top-level `request` does with them — origin and path from the URL, the method
 * from the body, the global dispatcher unless one is given.
 */
export function requestUrl(
  url: string,
  options: Omit<Undici.Dispatcher.RequestOptions, 'origin' | 'path' | 'method'> & {
    method?: Undici.Dispatcher.HttpMethod;
    dispatcher?: Undici.Dispatcher;
  },
): Promise<Undici.Dispatcher.ResponseData> {
  const u = new URL(url);
  const { dispatcher, ...rest } = options;
  return (dispatcher ?? globalDispatcher()).request({
    ...rest,
    origin: u.origin,
    path: u.search ? `${u.pathname}${u.search}` : u.pathname,
    method: options.method || (options.body ? 'PUT' : 'GET'),
  });
}
