/**
 * The Consul double's config entries (consul-api.md §6) and discovery chain (§7):
 *
 * - `PUT /v1/config[?cas=<ModifyIndex>]` → `true`/`false`; 400 for a missing or unknown kind and
 *   unknown fields, 500 with Consul's text for validation and chain (graph) errors, which are
 *   checked by compiling every stored chain with the write applied (nothing is stored on error).
 * - `GET /v1/config/:kind/:name` (404 `Config entry not found for "<kind>" / "<name>"`, index
 *   headers set), `GET /v1/config/:kind` (array, `[]` when none), both blocking.
 * - `DELETE /v1/config/:kind/:name[?cas=]` → `{}` or `true`/`false`; deleting `service-defaults`
 *   that a router or splitter needs is refused like any write that breaks a chain.
 * - `GET|POST /v1/discovery-chain/:service` (POST body: `OverrideProtocol`,
 *   `OverrideConnectTimeout`), blocking, returning only when the compiled chain changes (Consul's
 *   hash check in `agent/consul/discovery_chain_endpoint.go`); 500 `Connect must be enabled in
 *   order to use this endpoint` when connect is off.
 *
 * Index: every write takes a new Raft index from the double (`nextIndex`); reads report the
 * config-entry table index (the last config write, deletes included), never 0.
 *
 * Wiring into `server.ts` (one line in `handle()`, after the fault/pause handling, with the body
 * it has read): `if (handleConfigRequest(req, res, { store: this.configEntries, body })) return;`
 * with `this.configEntries = new ConfigEntryStore({ datacenter: this.dc, nextIndex: () => this.bump() })`.
 *
 * Test tree only: never part of a published package.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type ConfigEntryStore, HttpError, KINDS } from './config-entry-store.js';
import type { ChainOverrides } from './discovery-chain.js';

export { ConfigEntryStore, type ConfigEntryStoreOptions } from './config-entry-store.js';

/** Context the double's server passes to {@link handleConfigRequest}. */
export interface ConfigRequestContext {
  store: ConfigEntryStore;
  /** The request body when the server has already read it; otherwise it is read here. */
  body?: Buffer;
  /** Headers added to every answer (e.g. `X-Consul-Default-ACL-Policy`). */
  headers?: Record<string, string>;
  /**
   * ACL check: return `undefined` to allow, else the 403 body (`ACL not found`, `Permission
   * denied: …`). `access` is `read` for GETs and chain reads, `write` for PUT and DELETE;
   * `name` is the entry or chain's service name (`undefined` for list reads and writes before
   * the body is parsed).
   */
  authorize?: (
    req: IncomingMessage,
    access: 'read' | 'write',
    kind: string,
    name: string | undefined,
  ) => string | undefined;
}

function indexHeaders(index: number): Record<string, string> {
  return {
    'X-Consul-Index': String(Math.max(1, index)),
    'X-Consul-KnownLeader': 'true',
    'X-Consul-LastContact': '0',
    'X-Consul-Effective-Consistency': 'leader',
    'X-Consul-Query-Backend': 'blocking-query',
  };
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

const WAIT = /^(?:(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h))+$/;

function blockingParams(url: URL, store: ConfigEntryStore): { index: number; waitMs: number } {
  const q = url.searchParams;
  const indexText = q.get('index');
  let index = 0;
  if (indexText !== null && indexText !== '') {
    if (!/^\d+$/.test(indexText)) throw new HttpError(400, 'Invalid index');
    index = Number(indexText);
  }
  let waitMs = store.options.defaultWaitMs ?? 300_000;
  const w = q.get('wait');
  if (w !== null && w !== '') {
    if (!WAIT.test(w)) throw new HttpError(400, 'Invalid wait time');
    const unit: Record<string, number> = {
      ns: 1e-6,
      us: 1e-3,
      µs: 1e-3,
      ms: 1,
      s: 1000,
      m: 60_000,
      h: 3_600_000,
    };
    let ms = 0;
    for (const m of w.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g))
      ms += Number(m[1]) * (unit[m[2] ?? ''] ?? 0);
    if (ms > 0) waitMs = ms;
  }
  return { index, waitMs: Math.min(waitMs, store.options.maxWaitMs ?? 600_000) };
}

type Answer = { status: number; body: unknown; index: number };

/**
 * Run a blocking read (consul-api.md §2.1): at once when `index` is absent/0 or behind the
 * current one; else wait for a change whose result is "new" (`changed(prev, next)`), or the
 * timeout, then answer with the current result and index.
 */
async function blocking(
  url: URL,
  res: ServerResponse,
  store: ConfigEntryStore,
  run: () => Answer,
  changed: (a: Answer, b: Answer) => boolean = (_a, b) => b.index > 0,
): Promise<Answer | undefined> {
  const { index, waitMs } = blockingParams(url, store);
  let answer = run();
  if (index === 0 || answer.index > index) return answer;
  const deadline = Date.now() + waitMs;
  const first = answer;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) return answer;
    if (!(await store.waitChange(left, res))) return undefined;
    answer = run();
    if (answer.index > index && changed(first, answer)) return answer;
  }
}

async function serve(
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  ctx: ConfigRequestContext,
): Promise<void> {
  const { store } = ctx;
  const method = req.method ?? 'GET';
  const path = url.pathname;
  const base = { ...(ctx.headers ?? {}) };
  const send = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
    if (res.destroyed) return;
    const text = typeof body === 'string' && status >= 400 ? body : JSON.stringify(body);
    const type = typeof body === 'string' && status >= 400 ? 'text/plain; charset=utf-8' : 'application/json';
    res.writeHead(status, { 'Content-Type': type, ...base, ...headers });
    res.end(text);
  };
  try {
    const q = url.searchParams;
    if (q.get('ns'))
      throw new HttpError(400, 'Invalid query parameter: "ns" - Namespaces are a Consul Enterprise feature');
    if (q.get('partition')) {
      throw new HttpError(
        400,
        'Invalid query parameter: "partition" - Partitions are a Consul Enterprise feature',
      );
    }
    const body = ctx.body ?? (method === 'PUT' || method === 'POST' ? await readBody(req) : Buffer.alloc(0));
    const cas = q.has('cas') ? Number(q.get('cas')) : undefined;
    if (cas !== undefined && !Number.isInteger(cas)) throw new HttpError(400, 'Invalid cas index');
    const deny = (access: 'read' | 'write', kind: string, name: string | undefined): void => {
      const denied = ctx.authorize?.(req, access, kind, name);
      if (denied !== undefined) throw new HttpError(403, denied);
    };
    const chain = /^\/v1\/discovery-chain\/(.+)$/.exec(path);
    if (chain) {
      if (method !== 'GET' && method !== 'POST') throw new HttpError(405, `method ${method} not allowed`);
      if (!store.connectEnabled)
        throw new HttpError(500, 'Connect must be enabled in order to use this endpoint');
      const service = decodeURIComponent(chain[1] ?? '');
      deny('read', 'discovery-chain', service);
      let overrides: ChainOverrides = {};
      if (method === 'POST' && body.length > 0) {
        try {
          overrides = JSON.parse(body.toString('utf8')) as ChainOverrides;
        } catch (error) {
          throw new HttpError(400, `Request decode failed: ${(error as Error).message}`);
        }
      }
      const run = (): Answer => ({
        status: 200,
        body: { Chain: store.chain(service, overrides) },
        index: store.index,
      });
      // Consul returns a blocked chain read only when the compiled chain's hash changes.
      const a = await blocking(
        url,
        res,
        store,
        run,
        (x, y) => JSON.stringify(x.body) !== JSON.stringify(y.body),
      );
      if (a) send(a.status, a.body, indexHeaders(a.index));
      return;
    }
    if (path === '/v1/config' || path === '/v1/config/') {
      if (method !== 'PUT') throw new HttpError(405, `method ${method} not allowed`);
      let doc: unknown;
      try {
        doc = JSON.parse(body.toString('utf8'));
      } catch (error) {
        throw new HttpError(400, `Request decoding failed: ${(error as Error).message}`);
      }
      const d = (typeof doc === 'object' && doc !== null ? doc : {}) as Record<string, unknown>;
      deny('write', String(d.Kind ?? d.kind ?? ''), typeof d.Name === 'string' ? d.Name : undefined);
      send(200, store.write(doc, cas));
      return;
    }
    const m = /^\/v1\/config\/([^/]+)(?:\/(.+))?$/.exec(path);
    if (!m) throw new HttpError(404, 'Invalid URL path: not a recognized HTTP API endpoint\n');
    const kind = decodeURIComponent(m[1] ?? '');
    const name = m[2] === undefined ? undefined : decodeURIComponent(m[2]);
    if (!(KINDS as readonly string[]).includes(kind))
      throw new HttpError(500, `invalid config entry kind: ${kind}`);
    if (method === 'DELETE') {
      if (name === undefined) throw new HttpError(405, 'method DELETE not allowed');
      deny('write', kind, name);
      const ok = store.delete(kind, name, cas);
      send(200, cas === undefined ? {} : ok);
      return;
    }
    if (method !== 'GET') throw new HttpError(405, `method ${method} not allowed`);
    deny('read', kind, name);
    const run = (): Answer => {
      if (name === undefined) return { status: 200, body: store.list(kind), index: store.index };
      const e = store.read(kind, name);
      return e
        ? { status: 200, body: e, index: store.index }
        : { status: 404, body: `Config entry not found for "${kind}" / "${name}"`, index: store.index };
    };
    const a = await blocking(url, res, store, run);
    if (a) send(a.status, a.body, indexHeaders(a.index));
  } catch (error) {
    if (error instanceof HttpError) {
      send(
        error.status,
        error.body,
        error.status === 404 || error.status === 500 ? indexHeaders(store.index) : {},
      );
      return;
    }
    send(500, (error as Error).message);
  }
}

/**
 * Serve `req` when its path is a config-entry or discovery-chain endpoint and return true;
 * return false (touching nothing) for any other path.
 */
export function handleConfigRequest(
  req: IncomingMessage,
  res: ServerResponse,
  ctx: ConfigRequestContext,
): boolean {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (!/^\/v1\/(config(\/|$)|discovery-chain\/)/.test(url.pathname)) return false;
  void serve(req, res, url, ctx);
  return true;
}
