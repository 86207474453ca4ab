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
import { EntryIssues } from '../../packages/mesh/src/routing/entry-issues.js';
import { validateConfigEntry } from '../../packages/mesh/src/routing/validate.js';
import {
  ChainError,
  type ChainOverrides,
  compileDiscoveryChain,
  type EntryLookup,
} from './discovery-chain.js';

type Json = Record<string, unknown>;

/** Kinds the double stores; the discovery-chain kinds are validated, the others kept as written. */
const KINDS = [
  'service-defaults',
  'proxy-defaults',
  'service-router',
  'service-splitter',
  'service-resolver',
  'service-intentions',
] as const;
const VALIDATED = ['service-defaults', 'service-router', 'service-splitter', 'service-resolver'];

export interface ConfigEntryStoreOptions {
  /** @defaultValue 'dc1' */
  datacenter?: string;
  /** Takes the next Raft index of the double (shared with its other tables). */
  nextIndex: () => number;
  /** `connect.enabled` on the servers; off → the discovery chain answers 500. @defaultValue true */
  connectEnabled?: boolean;
  /** Cluster ID used in SNI names. @defaultValue a fixed UUID */
  clusterId?: string;
  /** @defaultValue 300_000 (Consul's 5 m) */
  defaultWaitMs?: number;
  /** @defaultValue 600_000 (Consul's 10 m) */
  maxWaitMs?: number;
}

interface Stored {
  entry: Json;
  CreateIndex: number;
  ModifyIndex: number;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(body);
  }
}

/** The double's config-entry table, its index and its blocked readers. */
export class ConfigEntryStore implements EntryLookup {
  readonly datacenter: string;
  readonly clusterId: string;
  connectEnabled: boolean;
  private readonly entries = new Map<string, Stored>(); // key kind/name
  private tableIndex = 0;
  private readonly waiters = new Set<() => void>();

  constructor(readonly options: ConfigEntryStoreOptions) {
    this.datacenter = options.datacenter ?? 'dc1';
    this.clusterId = options.clusterId ?? '11111111-2222-3333-4444-555555555555';
    this.connectEnabled = options.connectEnabled ?? true;
  }

  /** Index reads report: the last config write, at least 1. */
  get index(): number {
    return Math.max(1, this.tableIndex);
  }

  get(kind: string, name: string): Json | undefined {
    return this.entries.get(`${kind}/${name}`)?.entry;
  }

  list(kind: string): Json[] {
    return [...this.entries.values()]
      .filter((s) => s.entry.Kind === kind)
      .sort((a, b) => String(a.entry.Name).localeCompare(String(b.entry.Name)))
      .map((s) => this.view(s));
  }

  read(kind: string, name: string): Json | undefined {
    const s = this.entries.get(`${kind}/${name}`);
    return s ? this.view(s) : undefined;
  }

  private view(s: Stored): Json {
    return { ...s.entry, CreateIndex: s.CreateIndex, ModifyIndex: s.ModifyIndex };
  }

  /** Store an entry as `PUT /v1/config` does; returns false on a failed `cas`. @throws HttpError */
  write(raw: unknown, cas?: number): boolean {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new HttpError(
        400,
        'Request decoding failed: Payload does not contain a kind/Kind key at the top level',
      );
    }
    const body = { ...(raw as Json) };
    if (body.Kind === undefined && typeof body.kind === 'string') body.Kind = body.kind;
    if (body.Name === undefined && typeof body.name === 'string') body.Name = body.name;
    delete body.kind;
    delete body.name;
    delete body.CreateIndex;
    delete body.ModifyIndex;
    delete body.Hash;
    if (typeof body.Kind !== 'string' || body.Kind === '') {
      throw new HttpError(
        400,
        'Request decoding failed: Payload does not contain a kind/Kind key at the top level',
      );
    }
    if (!(KINDS as readonly string[]).includes(body.Kind)) {
      throw new HttpError(400, `Request decoding failed: invalid config entry kind: ${body.Kind}`);
    }
    let entry: Json = body;
    if (VALIDATED.includes(body.Kind)) {
      const issues = new EntryIssues();
      const valid = validateConfigEntry(body, issues);
      const unknownKey = issues.list.find((i) => i.message.startsWith('invalid config key'));
      if (unknownKey)
        throw new HttpError(400, `Request decoding failed: 1 error occurred:\n\t* ${unknownKey.message}\n\n`);
      if (!valid) throw new HttpError(500, issues.list[0]?.message ?? 'invalid config entry');
      entry = valid as unknown as Json;
    } else if (body.Kind === 'proxy-defaults' && body.Name !== 'global') {
      throw new HttpError(500, `invalid name ("${String(body.Name)}"), only "global" is supported`);
    } else if (typeof body.Name !== 'string' || body.Name === '') {
      throw new HttpError(500, 'Name is required');
    }
    const key = `${entry.Kind}/${entry.Name}`;
    const prev = this.entries.get(key);
    if (cas !== undefined && (cas === 0 ? prev !== undefined : prev?.ModifyIndex !== cas)) return false;
    this.checkChains(key, entry);
    const idx = this.options.nextIndex();
    this.entries.set(key, { entry, CreateIndex: prev?.CreateIndex ?? idx, ModifyIndex: idx });
    this.changed(idx);
    return true;
  }

  /** Delete as `DELETE /v1/config/:kind/:name` does; false on a failed `cas`. @throws HttpError */
  delete(kind: string, name: string, cas?: number): boolean {
    const key = `${kind}/${name}`;
    const prev = this.entries.get(key);
    if (cas !== undefined && prev?.ModifyIndex !== cas) return false;
    if (prev) this.checkChains(key, undefined);
    const idx = this.options.nextIndex();
    this.entries.delete(key);
    this.changed(idx);
    return true;
  }

  /** Compile every chain any stored entry names, with the change applied; 500 on the first error. */
  private checkChains(key: string, entry: Json | undefined): void {
    const view: EntryLookup = {
      get: (k, n) => (`${k}/${n}` === key ? entry : this.get(k, n)),
    };
    const names = new Set<string>();
    for (const [k, s] of this.entries) if (k !== key) names.add(String(s.entry.Name));
    if (entry) names.add(String(entry.Name));
    names.delete('global');
    for (const name of names) {
      try {
        compileDiscoveryChain(view, name, { datacenter: this.datacenter, clusterId: this.clusterId });
      } catch (error) {
        if (error instanceof ChainError) throw new HttpError(500, error.message);
        throw error;
      }
    }
  }

  private changed(idx: number): void {
    this.tableIndex = idx;
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w();
  }

  /** A write that changes nothing but moves the table index (spurious wake-up). */
  touch(): void {
    this.changed(this.options.nextIndex());
  }

  /** Wake every blocked reader (the double is closing). */
  close(): void {
    this.changed(this.tableIndex);
  }

  /** Resolve on the next change, or after `ms`; false when the response closed first. */
  waitChange(ms: number, res: ServerResponse): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (v: boolean): void => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        res.off('close', onClose);
        resolve(v);
      };
      const wake = (): void => done(true);
      const onClose = (): void => done(false);
      const timer = setTimeout(() => done(true), ms);
      res.on('close', onClose);
      this.waiters.add(wake);
    });
  }

  /** The compiled chain of `service`. @throws HttpError 500 */
  chain(service: string, overrides: ChainOverrides = {}): Json {
    try {
      return compileDiscoveryChain(this, service, {
        datacenter: this.datacenter,
        clusterId: this.clusterId,
        overrides,
      });
    } catch (error) {
      if (error instanceof ChainError) throw new HttpError(500, error.message);
      throw error;
    }
  }
}

/** Context the double's server passes to {@link handleConfigRequest}. */
export interface ConfigRequestContext {
  store: ConfigEntryStore;
  /** The request body when the server has already read it; otherwise it is read here. */
  body?: Buffer;
  /** Headers added to every answer (e.g. `X-Consul-Default-ACL-Policy`). */
  headers?: Record<string, string>;
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
    const chain = /^\/v1\/discovery-chain\/(.+)$/.exec(path);
    if (chain) {
      if (method !== 'GET' && method !== 'POST') throw new HttpError(405, `method ${method} not allowed`);
      if (!store.connectEnabled)
        throw new HttpError(500, 'Connect must be enabled in order to use this endpoint');
      const service = decodeURIComponent(chain[1] ?? '');
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
      const ok = store.delete(kind, name, cas);
      send(200, cas === undefined ? {} : ok);
      return;
    }
    if (method !== 'GET') throw new HttpError(405, `method ${method} not allowed`);
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
