/**
 * A Consul HTTP API double for tests: a real HTTP server on 127.0.0.1 (port 0) that follows
 * `consul-api.md` for the endpoints the mesh uses (agent service/check writes, catalog
 * register/reads, `health/service` with blocking queries, ACL tokens, CE-mode errors).
 *
 * Test controls: `setHealthy`, `setNodeHealth`/`failNode` (node checks, `ServiceID ""`),
 * `restartAgent`, `failNext`, `dropNext`, `holdNext`, `garbage`, `pause`/`resume`, `restoreIndex`
 * (index goes backwards), `touch` (spurious wake-up), `close`. Route modules (config entries, …)
 * are added beside this file with `use()`.
 *
 * Test tree only: never part of a published package.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { handleConfigRequest } from './config-entries.js';
import { ConfigEntryStore } from './config-entry-store.js';
import {
  compileFilter,
  decodeFail,
  GO_FALSE,
  GO_TRUE,
  HttpError,
  IPV4,
  isObject,
  numField,
  parseGoDuration,
  readBody,
  strArray,
  strField,
  strMap,
  validateCheck,
} from './util.js';

export { parseGoDuration } from './util.js';

export type CheckStatus = 'passing' | 'warning' | 'critical';

/** ACL mode: tokens by secret. `read` may read services, `write` may also register. */
export interface DoubleAclOptions {
  defaultPolicy: 'allow' | 'deny';
  tokens: Record<string, { accessorId?: string; policy: 'read' | 'write' }>;
}

export interface ConsulDoubleOptions {
  /** Datacenter of the agent. @defaultValue 'dc1' */
  datacenter?: string;
  /** Name of the agent's node. @defaultValue 'node-1' */
  nodeName?: string;
  /** Address of the agent's node. @defaultValue '127.0.0.1' */
  nodeAddress?: string;
  /** Meta of the agent's node. */
  nodeMeta?: Record<string, string>;
  /** First Raft-like index (≥ 2). @defaultValue 10 */
  startIndex?: number;
  /** Upper bound on a blocking query's wait, in ms (Consul's is 10m). @defaultValue 600_000 */
  maxWaitMs?: number;
  /** Wait when `wait` is absent, in ms (Consul's is 5m). @defaultValue 300_000 */
  defaultWaitMs?: number;
  /** Add Consul's `[0, wait/16)` jitter to blocking timeouts. @defaultValue false (predictable tests) */
  jitter?: boolean;
  acl?: DoubleAclOptions;
  /** Port to listen on (to restart a double on the address of a closed one). @defaultValue 0 */
  port?: number;
  /** Listen on this unix socket instead of TCP (`address` becomes `unix://<path>`). */
  socketPath?: string;
  /**
   * Smallest honoured `DeregisterCriticalServiceAfter`, in ms (Consul's is 1 minute; tests may
   * lower it). @defaultValue 60_000
   */
  minDeregisterCriticalMs?: number;
  /** Serve HTTPS with this PEM key and certificate (`address` becomes `https://127.0.0.1:<port>`). */
  tls?: { key: string; cert: string; ca?: string; requestCert?: boolean };
  /**
   * Consul Enterprise: `ns` and `partition` are accepted and scope services and checks (a read
   * sees only its own namespace); `/v1/agent/self` reports a `+ent` version. @defaultValue false (CE: 400)
   */
  enterprise?: boolean;
  /**
   * Concurrent connections accepted from one client IP; the next one gets go-connlimit's 429
   * and is closed (`limits.http_max_conns_per_client`). @defaultValue 200
   */
  maxConnsPerClient?: number;
}

/** What a route module sees of one request. */
export interface DoubleRequest {
  method: string;
  url: URL;
  body: Buffer;
  req: IncomingMessage;
  res: ServerResponse;
}

/** What a route module answers: JSON (or raw text), a status and headers. */
export interface DoubleResult {
  status?: number;
  json?: unknown;
  headers?: Record<string, string>;
}

/** The state helpers a route module may use. */
export interface DoubleApi {
  /** Bump the Raft-like index and return it. */
  bump(): number;
  /** Wake blocked queries so they re-check their index. */
  wake(): void;
  /** The index and leader headers of a server-backed read. */
  indexHeaders(index: number): Record<string, string>;
  /** Throw Consul's 403 unless the request's token may write `service`. */
  requireWrite(req: IncomingMessage, url: URL, service: string): void;
}

/**
 * A route module beside the core (agent, catalog, health): answers the requests it knows, or
 * `undefined` to pass. Added with {@link ConsulDouble.use}; modules run before the 404.
 */
export type DoubleRoute = (
  request: DoubleRequest,
  api: DoubleApi,
) => DoubleResult | undefined | Promise<DoubleResult | undefined>;

/** One request the double saw (for assertions on what the client sent). */
export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  at: number;
}

interface NodeRec {
  ID: string;
  Node: string;
  Address: string;
  Datacenter: string;
  TaggedAddresses: Record<string, string>;
  Meta: Record<string, string>;
  CreateIndex: number;
  ModifyIndex: number;
}

interface ServiceRec {
  node: string;
  /** `''` for the default namespace and partition, else `<partition>/<ns>/` (Enterprise). */
  scope: string;
  ID: string;
  Service: string;
  Tags: string[];
  Address: string;
  Port: number;
  Meta: Record<string, string>;
  Weights: { Passing: number; Warning: number };
  EnableTagOverride: boolean;
  CreateIndex: number;
  ModifyIndex: number;
}

interface CheckRec {
  node: string;
  /** As {@link ServiceRec.scope}; node checks (`ServiceID ''`) belong to every scope. */
  scope: string;
  CheckID: string;
  Name: string;
  Status: CheckStatus;
  Notes: string;
  Output: string;
  ServiceID: string;
  ServiceName: string;
  Type: string;
  ttlMs?: number;
  interval?: string;
  deregisterAfterMs?: number;
  CreateIndex: number;
  ModifyIndex: number;
  /** Set for checks held by the agent (forgotten by `restartAgent`). */
  agent: boolean;
}

interface Fault {
  status: number;
  remaining: number;
  body: string;
  pathPrefix?: string;
  closeConnection?: boolean;
  /** Send 200 headers and half a JSON body, then destroy the socket. */
  drop?: boolean;
  headers?: Record<string, string>;
}

interface Hold {
  pathPrefix: string;
  released: Promise<void>;
}

interface Waiter {
  /** The service a blocked `health/service` query waits on. */
  service: string;
  wake: (abandon: boolean) => void;
}

/** The Consul double. Create with {@link startConsulDouble}. */
export class ConsulDouble {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** `127.0.0.1:<port>` (the `CONSUL_HTTP_ADDR` form). */
  readonly address: string;
  readonly requests: RecordedRequest[] = [];

  private readonly dc: string;
  private readonly agentNode: string;
  private readonly opts: ConsulDoubleOptions;
  private raftIndex: number;
  private extinctionIndex = 0;
  private readonly nodes = new Map<string, NodeRec>();
  private readonly services = new Map<string, ServiceRec>(); // key node/scope+ID
  private readonly checks = new Map<string, CheckRec>(); // key node/scope+CheckID
  /** Index of each service, by scope + lower-cased name (Consul's name index is lower-cased). */
  private readonly serviceIndex = new Map<string, number>();
  private readonly routes: DoubleRoute[] = [];
  /** Config entries (`/v1/config`) and compiled discovery chains (`/v1/discovery-chain`). */
  readonly configEntries: ConfigEntryStore;
  private readonly holds: Hold[] = [];
  private readonly waiters = new Set<Waiter>();
  private readonly faults: Fault[] = [];
  private readonly garbageBodies = new Map<string, string | Buffer>();
  private readonly indexOverrides = new Map<string, string | null>();
  private readonly held = new Set<ServerResponse>();
  private readonly sockets = new Set<Socket>();
  private readonly ttlTimers = new Map<string, NodeJS.Timeout>();
  private readonly reapTimers = new Map<string, NodeJS.Timeout>();
  private paused = false;
  private closed = false;
  private readonly overLimit = new Set<Socket>();
  private readonly api: DoubleApi = {
    bump: () => this.bump(),
    wake: () => this.wakeAll(),
    indexHeaders: (index) => this.indexHeaders(index),
    requireWrite: (req, url, service) => this.requireWrite(req, url, service),
  };

  constructor(
    private readonly server: Server,
    options: ConsulDoubleOptions,
  ) {
    if (options.socketPath) {
      this.url = 'http://localhost';
      this.address = `unix://${options.socketPath}`;
    } else {
      const port = (server.address() as AddressInfo).port;
      this.url = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
      this.address = options.tls ? this.url : `127.0.0.1:${port}`;
    }
    this.opts = options;
    this.dc = options.datacenter ?? 'dc1';
    this.configEntries = new ConfigEntryStore({ datacenter: this.dc, nextIndex: () => this.bump() });
    this.agentNode = options.nodeName ?? 'node-1';
    this.raftIndex = Math.max(2, options.startIndex ?? 10);
    const addr = options.nodeAddress ?? '127.0.0.1';
    this.nodes.set(this.agentNode, {
      ID: randomUUID(),
      Node: this.agentNode,
      Address: addr,
      Datacenter: this.dc,
      TaggedAddresses: { lan: addr, wan: addr },
      Meta: { ...(options.nodeMeta ?? {}) },
      CreateIndex: this.raftIndex,
      ModifyIndex: this.raftIndex,
    });
    // The agent's own node carries Serf's node check; catalog-only nodes have none.
    this.checks.set(`${this.agentNode}/serfHealth`, {
      node: this.agentNode,
      scope: '',
      CheckID: 'serfHealth',
      Name: 'Serf Health Status',
      Status: 'passing',
      Notes: '',
      Output: 'Agent alive and reachable',
      ServiceID: '',
      ServiceName: '',
      Type: '',
      CreateIndex: this.raftIndex,
      ModifyIndex: this.raftIndex,
      agent: false,
    });
    const limit = options.maxConnsPerClient ?? 200;
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      // go-connlimit counts open connections per client IP (all of ours are one IP).
      if (this.sockets.size > limit) this.overLimit.add(s);
      s.on('close', () => {
        this.sockets.delete(s);
        this.overLimit.delete(s);
      });
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) {
          res.writeHead(500, { 'Content-Type': 'text/plain' });
          res.end(String(error));
        }
      });
    });
  }

  // ---------------------------------------------------------------- controls

  /** Current Raft-like index. */
  get index(): number {
    return this.raftIndex;
  }

  /** The modify index `health/service/<name>` reports now. */
  indexOf(service: string): number {
    return this.reportedIndex(service);
  }

  /**
   * Set the status of every check of a service instance (by service ID or name; all instances
   * of a name). `true` = passing, `false` = critical, or an explicit status.
   */
  setHealthy(idOrName: string, healthy: boolean | CheckStatus, output = ''): void {
    const status: CheckStatus = healthy === true ? 'passing' : healthy === false ? 'critical' : healthy;
    const idx = this.bump();
    const touched = new Map<string, [string, string]>();
    for (const [key, c] of this.checks) {
      if (c.ServiceID !== '' && (c.ServiceID === idOrName || c.ServiceName === idOrName)) {
        c.Status = status;
        c.Output = output;
        c.ModifyIndex = idx;
        touched.set(`${c.scope}${c.ServiceName}`, [c.ServiceName, c.scope]);
        this.syncReap(key);
      }
    }
    for (const s of this.services.values()) {
      if ((s.ID === idOrName || s.Service === idOrName) && !this.hasChecks(s)) {
        // A service without checks gets one so its health can be controlled.
        const id = `service:${s.ID}`;
        this.checks.set(
          `${s.node}/${id}`,
          this.newCheck(s, id, `Service '${s.Service}' check`, status, idx, 'ttl'),
        );
        touched.set(`${s.scope}${s.Service}`, [s.Service, s.scope]);
      }
    }
    for (const [name, scope] of touched.values()) this.markService(name, idx, scope);
    this.wakeAll();
  }

  /** Simulate an agent restart without persistence: services and checks it held are forgotten. */
  restartAgent(): void {
    const idx = this.bump();
    for (const [key, s] of this.services) {
      if (s.node === this.agentNode) {
        this.services.delete(key);
        this.markService(s.Service, idx, s.scope);
        if (!this.instancesOf(s.Service, s.scope).length) this.extinctionIndex = idx;
      }
    }
    for (const [key, c] of this.checks) {
      if (c.agent) {
        this.checks.delete(key);
        this.clearTtl(key);
      }
    }
    this.wakeAll();
  }

  /**
   * Set every node-level check (`ServiceID ""`, e.g. `serfHealth`) of `node` to `status`, with one
   * index bump: every instance on the node takes that status in `health/service` at once. A
   * node without node checks (catalog-only) gets a `serfHealth` check.
   */
  setNodeHealth(node: string, status: CheckStatus, output = ''): void {
    if (!this.nodes.has(node)) throw new Error(`unknown node ${node}`);
    const idx = this.bump();
    let found = false;
    for (const c of this.checks.values()) {
      if (c.node !== node || c.ServiceID !== '') continue;
      found = true;
      c.Status = status;
      c.Output = output;
      c.ModifyIndex = idx;
    }
    if (!found) {
      this.checks.set(`${node}/serfHealth`, {
        node,
        scope: '',
        CheckID: 'serfHealth',
        Name: 'Serf Health Status',
        Status: status,
        Notes: '',
        Output: output,
        ServiceID: '',
        ServiceName: '',
        Type: '',
        CreateIndex: idx,
        ModifyIndex: idx,
        agent: false,
      });
    }
    for (const s of this.services.values()) if (s.node === node) this.markService(s.Service, idx, s.scope);
    this.wakeAll();
  }

  /** A whole node dies: its node checks go critical (Serf: `Agent not live or unreachable`). */
  failNode(node: string): void {
    this.setNodeHealth(node, 'critical', 'Agent not live or unreachable');
  }

  /**
   * Hold the next request whose path starts with `pathPrefix` before it is handled, until the
   * returned function is called (then it is handled normally). For ordering races.
   */
  holdNext(pathPrefix: string): () => void {
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.holds.push({ pathPrefix, released });
    return release;
  }

  /** Add a route module (e.g. config entries) beside the built-in endpoints. */
  use(route: DoubleRoute): this {
    this.routes.push(route);
    return this;
  }

  /**
   * The next `n` requests (optionally only those whose path starts with `pathPrefix`) fail with
   * `status`. Default bodies: 500 `No cluster leader`, 429 empty, 503 `rate limit exceeded`.
   * `connLimit: true` with 429 sends the go-connlimit text and closes the connection.
   */
  failNext(
    status: number,
    n = 1,
    options: { body?: string; pathPrefix?: string; connLimit?: boolean; retryAfter?: string } = {},
  ): void {
    const body =
      options.body ??
      (options.connLimit
        ? 'Your IP is issuing too many concurrent connections, please rate limit your calls\n'
        : status === 500
          ? 'No cluster leader'
          : status === 503
            ? 'rate limit exceeded'
            : '');
    this.faults.push({
      status,
      remaining: n,
      body,
      ...(options.pathPrefix !== undefined ? { pathPrefix: options.pathPrefix } : {}),
      ...(options.connLimit ? { closeConnection: true } : {}),
      ...(options.retryAfter !== undefined ? { headers: { 'Retry-After': options.retryAfter } } : {}),
    });
  }

  /** The next `n` requests (optionally by path prefix) get 200 headers and half a body, then the connection drops. */
  dropNext(n = 1, options: { pathPrefix?: string } = {}): void {
    this.faults.push({
      status: 200,
      remaining: n,
      body: '',
      drop: true,
      ...(options.pathPrefix !== undefined ? { pathPrefix: options.pathPrefix } : {}),
    });
  }

  /** Serve `body` (200, with a valid index) for `health/service/<service>` until cleared with `undefined`. */
  garbage(service: string, body: string | Buffer | undefined): void {
    if (body === undefined) this.garbageBodies.delete(service);
    else this.garbageBodies.set(service, body);
    this.markService(service, this.bump());
    this.wakeAll();
  }

  /**
   * Send `value` as `X-Consul-Index` of `health/service/<service>` (`null`: leave the header
   * out; `undefined`: back to the real index). Answers never block while overridden.
   */
  overrideIndex(service: string, value: string | null | undefined): void {
    if (value === undefined) this.indexOverrides.delete(service);
    else this.indexOverrides.set(service, value);
    this.wakeAll(true);
  }

  /** Hold every request open (no answer) until {@link resume} or {@link close}. */
  pause(): void {
    this.paused = true;
  }

  /** Answer requests again; held requests are dropped (their sockets destroyed). */
  resume(): void {
    this.paused = false;
    for (const res of this.held) res.socket?.destroy();
    this.held.clear();
  }

  /** A write that changes nothing visible but moves the service's index (spurious wake-up). */
  touch(service: string): void {
    this.markService(service, this.bump());
    this.wakeAll();
  }

  /**
   * Simulate a snapshot restore: the Raft index goes back to `to` (≥ 2), service indexes above
   * it are clamped, and every blocked query returns.
   */
  restoreIndex(to: number): void {
    this.raftIndex = Math.max(2, to);
    for (const [name, idx] of this.serviceIndex)
      if (idx > this.raftIndex) this.serviceIndex.set(name, this.raftIndex);
    for (const s of this.services.values()) {
      s.ModifyIndex = Math.min(s.ModifyIndex, this.raftIndex);
      s.CreateIndex = Math.min(s.CreateIndex, this.raftIndex);
    }
    if (this.extinctionIndex > this.raftIndex) this.extinctionIndex = this.raftIndex;
    this.wakeAll(true);
  }

  /** Number of requests held by {@link pause}. */
  get heldRequests(): number {
    return this.held.size;
  }

  /** Number of blocking queries currently waiting. */
  get blockedQueries(): number {
    return this.waiters.size;
  }

  /** The services that have a blocking query waiting now (as requested, one entry per query). */
  blockedServices(): string[] {
    return [...this.waiters].map((w) => w.service);
  }

  /** Agent-held services (ID → record), as `GET /v1/agent/services` shows them. */
  agentServices(): Record<string, { Service: string; Tags: string[]; Port: number; Address: string }> {
    const out: Record<string, { Service: string; Tags: string[]; Port: number; Address: string }> = {};
    for (const s of this.services.values()) if (s.node === this.agentNode) out[s.ID] = s;
    return out;
  }

  /** Checks of the agent, by check ID (with the TTL and reap delay they were registered with). */
  agentChecks(): Record<
    string,
    {
      Status: CheckStatus;
      Output: string;
      ServiceID: string;
      Type: string;
      ttlMs?: number;
      deregisterAfterMs?: number;
    }
  > {
    const out: ReturnType<ConsulDouble['agentChecks']> = {};
    for (const c of this.checks.values()) if (c.agent) out[c.CheckID] = c;
    return out;
  }

  /** Connections open to the double now. */
  get openConnections(): number {
    return this.sockets.size;
  }

  /** Stop the server: held and blocked requests are dropped, sockets destroyed. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.ttlTimers.values()) clearTimeout(t);
    this.ttlTimers.clear();
    for (const t of this.reapTimers.values()) clearTimeout(t);
    this.reapTimers.clear();
    this.wakeAll(true);
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
  }

  // ---------------------------------------------------------------- state helpers

  private bump(): number {
    this.raftIndex += 1;
    return this.raftIndex;
  }

  /** Wake blocked queries; `abandon` (snapshot restore, close) makes all of them return. */
  private wakeAll(abandon = false): void {
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w.wake(abandon);
  }

  /** Instances of a service: names match case-insensitively (Consul's lower-cased name index). */
  private instancesOf(name: string, scope = ''): ServiceRec[] {
    const lower = name.toLowerCase();
    return [...this.services.values()].filter((s) => s.scope === scope && s.Service.toLowerCase() === lower);
  }

  /** Record a write to a service (by any case of its name) at `idx`. */
  private markService(name: string, idx: number, scope = ''): void {
    this.serviceIndex.set(`${scope}${name.toLowerCase()}`, idx);
  }

  private hasChecks(s: ServiceRec): boolean {
    for (const c of this.checks.values())
      if (c.node === s.node && c.scope === s.scope && c.ServiceID === s.ID) return true;
    return false;
  }

  private reportedIndex(name: string, scope = ''): number {
    // The service's last write; a never-seen service reports the last extinction, else the max.
    const idx = this.serviceIndex.get(`${scope}${name.toLowerCase()}`);
    if (idx !== undefined) return Math.max(1, idx);
    return Math.max(1, this.extinctionIndex || this.raftIndex);
  }

  private newCheck(
    s: ServiceRec,
    id: string,
    name: string,
    status: CheckStatus,
    idx: number,
    type: string,
  ): CheckRec {
    return {
      node: s.node,
      scope: s.scope,
      CheckID: id,
      Name: name,
      Status: status,
      Notes: '',
      Output: '',
      ServiceID: s.ID,
      ServiceName: s.Service,
      Type: type,
      CreateIndex: idx,
      ModifyIndex: idx,
      agent: s.node === this.agentNode,
    };
  }

  private clearTtl(key: string): void {
    const t = this.ttlTimers.get(key);
    if (t) clearTimeout(t);
    this.ttlTimers.delete(key);
    const r = this.reapTimers.get(key);
    if (r) clearTimeout(r);
    this.reapTimers.delete(key);
  }

  /** Start or stop the `DeregisterCriticalServiceAfter` timer of a check after a status change. */
  private syncReap(key: string): void {
    const c = this.checks.get(key);
    const running = this.reapTimers.get(key);
    if (c?.Status !== 'critical' || c.deregisterAfterMs === undefined) {
      if (running) clearTimeout(running);
      this.reapTimers.delete(key);
      return;
    }
    if (running) return;
    const ms = Math.max(this.opts.minDeregisterCriticalMs ?? 60_000, c.deregisterAfterMs);
    const t = setTimeout(() => {
      this.reapTimers.delete(key);
      const cur = this.checks.get(key);
      if (cur?.Status === 'critical') this.removeService(cur.node, cur.ServiceID, cur.scope);
    }, ms);
    t.unref();
    this.reapTimers.set(key, t);
  }

  private armTtl(key: string): void {
    this.clearTtl(key);
    const c = this.checks.get(key);
    if (!c?.ttlMs) return;
    const t = setTimeout(() => {
      this.ttlTimers.delete(key);
      const cur = this.checks.get(key);
      if (!cur || cur.Status === 'critical') return;
      const idx = this.bump();
      cur.Status = 'critical';
      cur.Output = `TTL expired (last output before timeout follows): ${cur.Output}`;
      cur.ModifyIndex = idx;
      this.syncReap(key);
      this.markService(cur.ServiceName, idx, cur.scope);
      this.wakeAll();
    }, c.ttlMs);
    t.unref();
    this.ttlTimers.set(key, t);
  }

  // ---------------------------------------------------------------- HTTP

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    this.requests.push({
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.searchParams,
      headers: req.headers,
      at: Date.now(),
    });
    if (req.socket && this.overLimit.has(req.socket)) {
      // go-connlimit answers the connection over the limit itself and closes it.
      res.writeHead(429, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' });
      res.end('Your IP is issuing too many concurrent connections, please rate limit your calls\n');
      return;
    }
    const body = await readBody(req);
    const hold = this.holds.find((h) => url.pathname.startsWith(h.pathPrefix));
    if (hold) {
      this.holds.splice(this.holds.indexOf(hold), 1);
      await hold.released;
    }
    if (this.paused) {
      this.held.add(res);
      res.on('close', () => this.held.delete(res));
      return;
    }
    const fault = this.faults.find(
      (f) => f.remaining > 0 && (!f.pathPrefix || url.pathname.startsWith(f.pathPrefix)),
    );
    if (fault) {
      fault.remaining -= 1;
      if (fault.remaining <= 0) this.faults.splice(this.faults.indexOf(fault), 1);
      if (fault.drop) {
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': '1000' });
        res.write('[{"Node":{"Node":"node-1",');
        setImmediate(() => res.socket?.destroy());
        return;
      }
      const headers: Record<string, string> = {
        'Content-Type': 'text/plain; charset=utf-8',
        ...fault.headers,
      };
      if (fault.closeConnection) headers.Connection = 'close';
      res.writeHead(fault.status, headers);
      res.end(fault.body);
      return;
    }
    const baseHeaders: Record<string, string> = {
      'X-Consul-Default-ACL-Policy': this.opts.acl?.defaultPolicy ?? 'allow',
    };
    if (handleConfigRequest(req, res, { store: this.configEntries, body, headers: baseHeaders })) return;
    try {
      const result = await this.route(req.method ?? 'GET', url, body, req, res);
      if (result === undefined) return; // connection dropped while waiting
      const headers = { ...baseHeaders, ...result.headers };
      if (result.json !== undefined) {
        const text =
          typeof result.json === 'string' || Buffer.isBuffer(result.json)
            ? result.json
            : JSON.stringify(result.json);
        res.writeHead(result.status ?? 200, { 'Content-Type': 'application/json', ...headers });
        res.end(text);
      } else {
        res.writeHead(result.status ?? 200, headers);
        res.end();
      }
    } catch (error) {
      if (error instanceof HttpError) {
        res.writeHead(error.status, {
          'Content-Type': 'text/plain; charset=utf-8',
          ...baseHeaders,
          ...error.headers,
        });
        res.end(error.body);
        return;
      }
      throw error;
    }
  }

  private token(req: IncomingMessage, url: URL): string | undefined {
    const q = url.searchParams.get('token');
    if (q) return q;
    const x = req.headers['x-consul-token'];
    if (typeof x === 'string' && x !== '') return x;
    const auth = req.headers.authorization;
    if (typeof auth === 'string' && auth.startsWith('Bearer ')) return auth.slice(7).trim() || undefined;
    return undefined;
  }

  /** `undefined` = anonymous; throws 403 for an unknown token. Returns the effective policy. */
  private aclPolicy(
    req: IncomingMessage,
    url: URL,
  ): { policy: 'none' | 'read' | 'write'; accessor: string; sent: boolean } {
    const acl = this.opts.acl;
    const token = this.token(req, url);
    if (!acl)
      return { policy: 'write', accessor: '00000000-0000-0000-0000-000000000002', sent: token !== undefined };
    if (token === undefined) {
      return {
        policy: acl.defaultPolicy === 'allow' ? 'write' : 'none',
        accessor: '00000000-0000-0000-0000-000000000002',
        sent: false,
      };
    }
    const t = acl.tokens[token];
    if (!t) throw new HttpError(403, 'ACL not found');
    return { policy: t.policy, accessor: t.accessorId ?? '11111111-2222-3333-4444-555555555555', sent: true };
  }

  private requireWrite(req: IncomingMessage, url: URL, service: string): void {
    const p = this.aclPolicy(req, url);
    if (p.policy !== 'write') {
      throw new HttpError(
        403,
        `Permission denied: token with AccessorID '${p.accessor}' lacks permission 'service:write' on ${JSON.stringify(service)}`,
      );
    }
  }

  /** The Enterprise scope a request addresses: `''` for default/default, else `<partition>/<ns>/`. */
  private scopeOf(url: URL): string {
    if (!this.opts.enterprise) return '';
    const ns = url.searchParams.get('ns') || 'default';
    const partition = url.searchParams.get('partition') || 'default';
    return ns === 'default' && partition === 'default' ? '' : `${partition}/${ns}/`;
  }

  private checkCommonParams(url: URL): void {
    const q = url.searchParams;
    if (this.opts.enterprise) {
      // Enterprise accepts both; nothing to reject.
    } else if (q.has('ns') && q.get('ns') !== '')
      throw new HttpError(400, 'Invalid query parameter: "ns" - Namespaces are a Consul Enterprise feature');
    if (!this.opts.enterprise && q.has('partition') && q.get('partition') !== '')
      throw new HttpError(
        400,
        'Invalid query parameter: "partition" - Partitions are a Consul Enterprise feature',
      );
    if (q.has('stale') && q.has('consistent'))
      throw new HttpError(400, 'Cannot specify ?stale with ?consistent, conflicting semantics.');
    if (q.has('cached') && q.has('consistent'))
      throw new HttpError(400, 'Cannot specify ?cached with ?consistent, conflicting semantics.');
    const dc = q.get('dc');
    if (dc && dc !== this.dc) throw new HttpError(500, 'No path to datacenter');
  }

  private async route(
    method: string,
    url: URL,
    body: Buffer,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<{ status?: number; json?: unknown; headers?: Record<string, string> } | undefined> {
    const path = url.pathname;
    const putOnly = (): void => {
      if (method !== 'PUT')
        throw new HttpError(405, `method ${method} not allowed`, { Allow: 'OPTIONS,PUT' });
    };
    const getOnly = (): void => {
      if (method !== 'GET' && method !== 'HEAD')
        throw new HttpError(405, `method ${method} not allowed`, { Allow: 'GET,HEAD,OPTIONS' });
    };
    let m: RegExpMatchArray | null;
    this.checkCommonParams(url);
    const scope = this.scopeOf(url);

    m = path.match(/^\/v1\/health\/service\/?(.*)$/);
    if (m) {
      getOnly();
      return this.healthService(decodeURIComponent(m[1] ?? ''), url, req, res);
    }
    if (path === '/v1/agent/service/register') {
      putOnly();
      return this.agentRegister(body, url, req);
    }
    m = path.match(/^\/v1\/agent\/service\/deregister\/(.+)$/);
    if (m) {
      putOnly();
      return this.agentDeregister(decodeURIComponent(m[1] ?? ''), req, url);
    }
    m = path.match(/^\/v1\/agent\/check\/(pass|warn|fail|update)\/(.+)$/);
    if (m) {
      putOnly();
      return this.agentCheckUpdate(m[1] ?? '', decodeURIComponent(m[2] ?? ''), body, url, req);
    }
    m = path.match(/^\/v1\/agent\/service\/maintenance\/(.+)$/);
    if (m) {
      putOnly();
      return this.agentMaintenance(decodeURIComponent(m[1] ?? ''), url, req);
    }
    if (path === '/v1/agent/checks') {
      getOnly();
      const out: Record<string, unknown> = {};
      for (const c of this.checks.values()) {
        if (!c.agent) continue;
        const { node, agent: _agent, ttlMs: _ttl, interval: _i, deregisterAfterMs: _d, ...view } = c;
        out[c.CheckID] = { Node: node, ...view };
      }
      return { json: out };
    }
    if (path === '/v1/agent/services') {
      getOnly();
      const out: Record<string, unknown> = {};
      for (const s of this.services.values())
        if (s.node === this.agentNode && s.scope === scope) out[s.ID] = this.agentServiceView(s);
      return { json: out };
    }
    m = path.match(/^\/v1\/agent\/service\/(.+)$/);
    if (m) {
      getOnly();
      const id = decodeURIComponent(m[1] ?? '');
      const s = this.services.get(`${this.agentNode}/${scope}${id}`);
      if (!s) throw new HttpError(404, `unknown service ID: ${id}`);
      return { json: { ...this.agentServiceView(s), ContentHash: String(s.ModifyIndex) } };
    }
    if (path === '/v1/agent/self') {
      getOnly();
      const n = this.nodes.get(this.agentNode);
      return {
        json: {
          Config: {
            Datacenter: this.dc,
            PrimaryDatacenter: this.dc,
            NodeName: this.agentNode,
            NodeID: n?.ID ?? '',
            Revision: 'double',
            Server: true,
            Version: this.opts.enterprise ? '1.15.0+ent' : '1.15.0',
            BuildDate: '2023-01-01T00:00:00Z',
          },
          Member: { Name: this.agentNode, Addr: n?.Address ?? '' },
          Meta: n?.Meta ?? {},
        },
      };
    }
    if (path === '/v1/catalog/register') {
      putOnly();
      return this.catalogRegister(body, req, url);
    }
    if (path === '/v1/catalog/deregister') {
      putOnly();
      return this.catalogDeregister(body, req, url);
    }
    if (path === '/v1/catalog/services') {
      getOnly();
      const out: Record<string, string[]> = { consul: [] };
      for (const s of this.services.values()) {
        const tags = new Set(out[s.Service] ?? []);
        for (const t of s.Tags) tags.add(t);
        out[s.Service] = [...tags];
      }
      return { json: out, headers: this.indexHeaders(this.raftIndex) };
    }
    if (path === '/v1/status/leader') {
      getOnly();
      return { json: '"127.0.0.1:8300"' };
    }
    if (path === '/v1/agent/maintenance') {
      putOnly();
      return this.nodeMaintenance(url, req);
    }
    for (const r of this.routes) {
      const out = await r({ method, url, body, req, res }, this.api);
      if (out !== undefined) return out;
    }
    throw new HttpError(404, 'Invalid URL path: not a recognized HTTP API endpoint\n');
  }

  private indexHeaders(index: number): Record<string, string> {
    return {
      'X-Consul-Index': String(Math.max(1, index)),
      'X-Consul-KnownLeader': 'true',
      'X-Consul-LastContact': '0',
      'X-Consul-Effective-Consistency': 'leader',
      'X-Consul-Query-Backend': 'blocking-query',
    };
  }

  private agentServiceView(s: ServiceRec): Record<string, unknown> {
    return {
      ID: s.ID,
      Service: s.Service,
      Tags: s.Tags,
      Meta: s.Meta,
      ...(s.Port ? { Port: s.Port } : { Port: 0 }),
      Address: s.Address,
      Weights: s.Weights,
      EnableTagOverride: s.EnableTagOverride,
      Datacenter: this.dc,
    };
  }

  // ---------------------------------------------------------------- health/service

  private async healthService(
    name: string,
    url: URL,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<{ json: unknown; headers: Record<string, string> } | undefined> {
    if (name === '') throw new HttpError(400, 'Missing service name');
    const q = url.searchParams;
    const indexText = q.get('index');
    let requested = 0;
    if (indexText !== null && indexText !== '') {
      if (!/^\d+$/.test(indexText)) throw new HttpError(400, 'Invalid index');
      requested = Number(indexText);
    }
    let waitMs = this.opts.defaultWaitMs ?? 300_000;
    const waitText = q.get('wait');
    if (waitText !== null && waitText !== '') {
      const w = parseGoDuration(waitText);
      if (w === undefined) throw new HttpError(400, 'Invalid wait time');
      if (w > 0) waitMs = w;
    }
    waitMs = Math.min(waitMs, this.opts.maxWaitMs ?? 600_000);
    if (this.opts.jitter) waitMs += Math.random() * (waitMs / 16);
    const passingText = q.get('passing');
    let passing = false;
    if (passingText !== null) {
      // strconv.ParseBool; a bare `?passing` means true.
      if (passingText === '' || GO_TRUE.has(passingText)) passing = true;
      else if (GO_FALSE.has(passingText)) passing = false;
      else throw new HttpError(400, 'Invalid value for ?passing');
    }
    const acl = this.aclPolicy(req, url);
    const scope = this.scopeOf(url);

    if (requested > 0 && !this.indexOverrides.has(name) && this.reportedIndex(name, scope) <= requested) {
      const changed = await new Promise<boolean>((resolve) => {
        let done = false;
        const waiter: Waiter = {
          service: name,
          wake: (abandon) => {
            if (done) return;
            if (abandon || this.closed || this.reportedIndex(name, scope) > requested) {
              finish(true);
            } else {
              this.waiters.add(waiter);
            }
          },
        };
        const finish = (v: boolean): void => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          this.waiters.delete(waiter);
          res.off('close', onClose);
          resolve(v);
        };
        const timer = setTimeout(() => finish(true), waitMs);
        const onClose = (): void => finish(false);
        res.on('close', onClose);
        this.waiters.add(waiter);
      });
      if (!changed || this.closed || res.destroyed) {
        if (!res.destroyed) res.socket?.destroy();
        return undefined;
      }
    }

    const index = this.reportedIndex(name, scope);
    const headers = this.indexHeaders(index);
    const override = this.indexOverrides.get(name);
    if (override === null) delete headers['X-Consul-Index'];
    else if (override !== undefined) headers['X-Consul-Index'] = override;
    const garbage = this.garbageBodies.get(name);
    if (garbage !== undefined) return { json: garbage, headers };

    let entries = this.instancesOf(name, scope).map((s) => this.healthEntry(s));
    const total = entries.length;
    if (acl.policy === 'none') entries = [];
    if (passing) entries = entries.filter((e) => e.Checks.every((c) => c.Status === 'passing'));
    const tags = q.getAll('tag');
    // Tags match case-insensitively (`strings.EqualFold` in Consul's tag filter).
    const folded = (list: string[]) => list.map((t) => t.toLowerCase());
    if (tags.length)
      entries = entries.filter((e) => {
        const have = folded(e.Service.Tags);
        return folded(tags).every((t) => have.includes(t));
      });
    const filter = q.get('filter');
    if (filter) entries = entries.filter(compileFilter(filter));
    if (acl.sent && acl.policy === 'none' && total > 0) headers['X-Consul-Results-Filtered-By-ACLs'] = 'true';
    return { json: entries, headers };
  }

  private healthEntry(s: ServiceRec): {
    Node: NodeRec;
    Service: Record<string, unknown> & { Tags: string[]; Meta: Record<string, string> };
    Checks: Array<Record<string, unknown> & { Status: CheckStatus }>;
  } {
    const node = this.nodes.get(s.node);
    const n: NodeRec = node ?? {
      ID: '',
      Node: s.node,
      Address: '',
      Datacenter: this.dc,
      TaggedAddresses: {},
      Meta: {},
      CreateIndex: 1,
      ModifyIndex: 1,
    };
    const tagged: Record<string, { Address: string; Port: number }> = {};
    if (s.Address && IPV4.test(s.Address)) {
      tagged.lan_ipv4 = { Address: s.Address, Port: s.Port };
      tagged.wan_ipv4 = { Address: s.Address, Port: s.Port };
    } else if (s.Address.includes(':')) {
      tagged.lan_ipv6 = { Address: s.Address, Port: s.Port };
      tagged.wan_ipv6 = { Address: s.Address, Port: s.Port };
    }
    const service: Record<string, unknown> & { Tags: string[]; Meta: Record<string, string> } = {
      ID: s.ID,
      Service: s.Service,
      Tags: [...s.Tags],
      Address: s.Address,
      ...(Object.keys(tagged).length ? { TaggedAddresses: tagged } : {}),
      Meta: { ...s.Meta },
      ...(s.Port ? { Port: s.Port } : {}),
      Weights: { ...s.Weights },
      EnableTagOverride: s.EnableTagOverride,
      Proxy: { Mode: '', MeshGateway: {}, Expose: {} },
      Connect: {},
      PeerName: '',
      ...(this.opts.enterprise ? this.scopeFields(s.scope) : {}),
      CreateIndex: s.CreateIndex,
      ModifyIndex: s.ModifyIndex,
    };
    const checks: Array<Record<string, unknown> & { Status: CheckStatus }> = [];
    // Node checks (`ServiceID ""`, e.g. serfHealth) come first and belong to every service of the node.
    const own = [...this.checks.values()].filter(
      (c) => c.node === s.node && (c.ServiceID === '' || (c.scope === s.scope && c.ServiceID === s.ID)),
    );
    own.sort((a, b) => Number(a.ServiceID !== '') - Number(b.ServiceID !== ''));
    for (const c of own) {
      checks.push({
        Node: c.node,
        CheckID: c.CheckID,
        Name: c.Name,
        Status: c.Status,
        Notes: c.Notes,
        Output: c.Output,
        ServiceID: c.ServiceID,
        ServiceName: c.ServiceName,
        ServiceTags: c.ServiceID ? [...s.Tags] : [],
        Type: c.Type,
        ...(c.interval ? { Interval: c.interval } : {}),
        CreateIndex: c.CreateIndex,
        ModifyIndex: c.ModifyIndex,
      });
    }
    return { Node: { ...n }, Service: service, Checks: checks };
  }

  private scopeFields(scope: string): { Namespace: string; Partition: string } {
    const [partition = 'default', ns = 'default'] = scope === '' ? [] : scope.split('/');
    return { Namespace: ns, Partition: partition };
  }

  // ---------------------------------------------------------------- agent writes

  private parseJson(body: Buffer): unknown {
    try {
      return JSON.parse(body.toString('utf8') || 'null');
    } catch (error) {
      throw decodeFail((error as Error).message);
    }
  }

  private parseServiceBody(
    raw: unknown,
    node: string,
    scope = '',
  ): { svc: ServiceRec; checks: Array<Record<string, unknown>> } {
    if (!isObject(raw))
      throw decodeFail('json: cannot unmarshal into Go value of type structs.ServiceDefinition');
    const name = strField(raw, 'Name') ?? strField(raw, 'Service');
    if (!name) throw new HttpError(400, 'Missing service name');
    const address = strField(raw, 'Address') ?? '';
    if (address === '0.0.0.0' || address === '::' || address === '[::]')
      throw new HttpError(400, 'Invalid service address');
    const port = numField(raw, 'Port') ?? 0;
    let weights = { Passing: 1, Warning: 1 };
    if (raw.Weights !== undefined && raw.Weights !== null) {
      if (!isObject(raw.Weights)) throw decodeFail('json: cannot unmarshal into Go struct field .Weights');
      const p = numField(raw.Weights, 'Passing') ?? 0;
      const w = numField(raw.Weights, 'Warning') ?? 0;
      if (p < 1) throw new HttpError(400, 'Invalid Weights: Passing must be greater than 0');
      if (w < 0) throw new HttpError(400, 'Invalid Weights: Warning must be greater or equal than 0');
      if (p > 65535 || w > 65535)
        throw new HttpError(400, 'Invalid Weights: Passing and Warning must be less than 65536');
      weights = { Passing: p, Warning: w };
    }
    const meta = strMap(raw, 'Meta');
    if (Object.keys(meta).length > 64)
      throw new HttpError(
        400,
        'Invalid Service Meta: Node metadata cannot contain more than 64 key/value pairs',
      );
    for (const [k, v] of Object.entries(meta)) {
      if (!/^[A-Za-z0-9_-]+$/.test(k))
        throw new HttpError(400, `Invalid Service Meta: Key contains invalid characters`);
      if (k.length > 128)
        throw new HttpError(400, `Invalid Service Meta: Key is too long (limit: 128 characters)`);
      if (v.length > 512)
        throw new HttpError(400, `Invalid Service Meta: Value is too long (limit: 512 characters)`);
      if (k.startsWith('consul-'))
        throw new HttpError(400, "Invalid Service Meta: Key prefix 'consul-' is reserved for internal use");
    }
    const checks: Array<Record<string, unknown>> = [];
    if (raw.Check !== undefined && raw.Check !== null) {
      if (!isObject(raw.Check)) throw decodeFail('json: cannot unmarshal into Go struct field .Check');
      checks.push(raw.Check);
    }
    if (raw.Checks !== undefined && raw.Checks !== null) {
      if (!Array.isArray(raw.Checks) || raw.Checks.some((c) => !isObject(c)))
        throw decodeFail('json: cannot unmarshal into Go struct field .Checks');
      checks.push(...(raw.Checks as Array<Record<string, unknown>>));
    }
    for (const c of checks) validateCheck(c);
    const id = strField(raw, 'ID') || name;
    return {
      svc: {
        node,
        scope,
        ID: id,
        Service: name,
        Tags: strArray(raw, 'Tags'),
        Address: address,
        Port: port,
        Meta: meta,
        Weights: weights,
        EnableTagOverride: raw.EnableTagOverride === true,
        CreateIndex: 0,
        ModifyIndex: 0,
      },
      checks,
    };
  }

  private storeService(
    svc: ServiceRec,
    checks: Array<Record<string, unknown>>,
    replaceChecks: boolean,
  ): void {
    const idx = this.bump();
    const key = `${svc.node}/${svc.scope}${svc.ID}`;
    const prev = this.services.get(key);
    if (prev && prev.Service !== svc.Service) this.markService(prev.Service, idx, prev.scope);
    svc.CreateIndex = prev?.CreateIndex ?? idx;
    svc.ModifyIndex = idx;
    this.services.set(key, svc);
    const keep = new Set<string>();
    checks.forEach((c, i) => {
      const explicit = typeof c.CheckID === 'string' && c.CheckID !== '' ? c.CheckID : undefined;
      const id = explicit ?? (checks.length > 1 ? `service:${svc.ID}:${i + 1}` : `service:${svc.ID}`);
      const ckey = `${svc.node}/${svc.scope}${id}`;
      keep.add(ckey);
      const old = this.checks.get(ckey);
      const status = (typeof c.Status === 'string' && c.Status !== '' ? c.Status : undefined) as
        | CheckStatus
        | undefined;
      const ttl = typeof c.TTL === 'string' ? parseGoDuration(c.TTL) : undefined;
      const dereg =
        typeof c.DeregisterCriticalServiceAfter === 'string'
          ? parseGoDuration(c.DeregisterCriticalServiceAfter)
          : undefined;
      const type = ttl ? 'ttl' : c.HTTP ? 'http' : c.TCP ? 'tcp' : c.GRPC ? 'grpc' : 'script';
      const rec: CheckRec = {
        node: svc.node,
        scope: svc.scope,
        CheckID: id,
        Name: typeof c.Name === 'string' && c.Name !== '' ? c.Name : `Service '${svc.Service}' check`,
        Status: old ? old.Status : (status ?? 'critical'),
        Notes: typeof c.Notes === 'string' ? c.Notes : '',
        Output: old ? old.Output : '',
        ServiceID: svc.ID,
        ServiceName: svc.Service,
        Type: type,
        ...(ttl ? { ttlMs: ttl } : {}),
        ...(typeof c.Interval === 'string' ? { interval: c.Interval } : {}),
        ...(dereg ? { deregisterAfterMs: dereg } : {}),
        CreateIndex: old?.CreateIndex ?? idx,
        ModifyIndex: idx,
        agent: svc.node === this.agentNode,
      };
      this.checks.set(ckey, rec);
      if (rec.ttlMs && !old) this.armTtl(ckey);
      this.syncReap(ckey);
    });
    if (replaceChecks) {
      for (const [ckey, c] of this.checks) {
        if (c.node === svc.node && c.scope === svc.scope && c.ServiceID === svc.ID && !keep.has(ckey)) {
          this.checks.delete(ckey);
          this.clearTtl(ckey);
        }
      }
    }
    this.markService(svc.Service, idx, svc.scope);
    this.wakeAll();
  }

  private removeService(node: string, id: string, scope = ''): boolean {
    const key = `${node}/${scope}${id}`;
    const s = this.services.get(key);
    if (!s) return false;
    const idx = this.bump();
    this.services.delete(key);
    for (const [ckey, c] of this.checks) {
      if (c.node === node && c.scope === scope && c.ServiceID === id) {
        this.checks.delete(ckey);
        this.clearTtl(ckey);
      }
    }
    this.markService(s.Service, idx, scope);
    if (!this.instancesOf(s.Service, scope).length) this.extinctionIndex = idx;
    this.wakeAll();
    return true;
  }

  private agentRegister(body: Buffer, url: URL, req: IncomingMessage): { status: number } {
    const raw = this.parseJson(body);
    const name = isObject(raw) && typeof raw.Name === 'string' ? raw.Name : '';
    this.requireWrite(req, url, name);
    const { svc, checks } = this.parseServiceBody(raw, this.agentNode, this.scopeOf(url));
    const rec = url.searchParams.get('replace-existing-checks');
    const replace = url.searchParams.has('replace-existing-checks') && (rec === '' || rec === 'true');
    this.storeService(svc, checks, replace);
    return { status: 200 };
  }

  private agentDeregister(id: string, req: IncomingMessage, url: URL): { status: number } {
    const scope = this.scopeOf(url);
    const s = this.services.get(`${this.agentNode}/${scope}${id}`);
    this.requireWrite(req, url, s?.Service ?? id);
    if (!this.removeService(this.agentNode, id, scope)) {
      throw new HttpError(
        404,
        `Unknown service ID ${JSON.stringify(id)}. Ensure that the service ID is passed, not the service name.`,
      );
    }
    return { status: 200 };
  }

  private agentCheckUpdate(
    op: string,
    id: string,
    body: Buffer,
    url: URL,
    req: IncomingMessage,
  ): { status: number } {
    const key = `${this.agentNode}/${this.scopeOf(url)}${id}`;
    const c = this.checks.get(key);
    this.requireWrite(req, url, c?.ServiceName ?? id);
    let status: CheckStatus;
    let output = url.searchParams.get('note') ?? '';
    if (op === 'update') {
      const raw = this.parseJson(body);
      if (!isObject(raw)) throw decodeFail('json: cannot unmarshal into Go value of type checkUpdate');
      const s = raw.Status;
      if (s !== 'passing' && s !== 'warning' && s !== 'critical')
        throw new HttpError(400, `Invalid check status: '${String(s)}'`);
      status = s;
      output = typeof raw.Output === 'string' ? raw.Output : '';
    } else {
      status = op === 'pass' ? 'passing' : op === 'warn' ? 'warning' : 'critical';
    }
    if (!c)
      throw new HttpError(
        404,
        `Unknown check ID ${JSON.stringify(id)}. Ensure that the check ID is passed, not the check name.`,
      );
    if (!c.ttlMs) throw new HttpError(500, `CheckID ${JSON.stringify(id)} does not have associated TTL`);
    this.armTtl(key);
    if (c.Status !== status || c.Output !== output) {
      const idx = this.bump();
      c.Status = status;
      c.Output = output;
      c.ModifyIndex = idx;
      this.markService(c.ServiceName, idx, c.scope);
      this.syncReap(key);
      this.wakeAll();
    }
    return { status: 200 };
  }

  private agentMaintenance(id: string, url: URL, req: IncomingMessage): { status: number } {
    const scope = this.scopeOf(url);
    const s = this.services.get(`${this.agentNode}/${scope}${id}`);
    this.requireWrite(req, url, s?.Service ?? id);
    const enable = url.searchParams.get('enable');
    if (enable === null) throw new HttpError(400, 'Missing value for enable');
    if (enable !== 'true' && enable !== 'false')
      throw new HttpError(400, `Invalid value for enable: "${enable}"`);
    if (!s)
      throw new HttpError(
        404,
        `Unknown service ID ${JSON.stringify(id)}. Ensure that the service ID is passed, not the service name.`,
      );
    const key = `${this.agentNode}/${scope}_service_maintenance:${id}`;
    const idx = this.bump();
    if (enable === 'true') {
      const c = this.newCheck(
        s,
        `_service_maintenance:${id}`,
        'Service Maintenance Mode',
        'critical',
        idx,
        'maintenance',
      );
      c.Notes =
        url.searchParams.get('reason') ||
        'Maintenance mode is enabled for this service, but no reason was provided. This is a default message.';
      this.checks.set(key, c);
    } else {
      this.checks.delete(key);
    }
    this.markService(s.Service, idx, scope);
    this.wakeAll();
    return { status: 200 };
  }

  /** `PUT /v1/agent/maintenance?enable=…`: the `_node_maintenance` check on the agent's node. */
  private nodeMaintenance(url: URL, req: IncomingMessage): { status: number } {
    this.requireWrite(req, url, this.agentNode);
    const enable = url.searchParams.get('enable');
    if (enable === null) throw new HttpError(400, 'Missing value for enable');
    if (enable !== 'true' && enable !== 'false')
      throw new HttpError(400, `Invalid value for enable: "${enable}"`);
    const key = `${this.agentNode}/_node_maintenance`;
    const idx = this.bump();
    if (enable === 'true') {
      this.checks.set(key, {
        node: this.agentNode,
        scope: '',
        CheckID: '_node_maintenance',
        Name: 'Node Maintenance Mode',
        Status: 'critical',
        Notes:
          url.searchParams.get('reason') ||
          'Maintenance mode is enabled for this node, but no reason was provided. This is a default message.',
        Output: '',
        ServiceID: '',
        ServiceName: '',
        Type: 'maintenance',
        CreateIndex: idx,
        ModifyIndex: idx,
        agent: true,
      });
    } else {
      this.checks.delete(key);
    }
    for (const s of this.services.values())
      if (s.node === this.agentNode) this.markService(s.Service, idx, s.scope);
    this.wakeAll();
    return { status: 200 };
  }

  // ---------------------------------------------------------------- catalog writes

  private catalogRegister(body: Buffer, req: IncomingMessage, url: URL): { json: boolean } {
    const raw = this.parseJson(body);
    if (!isObject(raw))
      throw decodeFail('json: cannot unmarshal into Go value of type structs.RegisterRequest');
    const nodeName = strField(raw, 'Node');
    const address = strField(raw, 'Address');
    if (!nodeName) throw new HttpError(400, 'Must provide node');
    if (!address) throw new HttpError(400, 'Must provide address');
    const svcRaw = raw.Service;
    this.requireWrite(
      req,
      url,
      isObject(svcRaw) && typeof svcRaw.Service === 'string' ? svcRaw.Service : nodeName,
    );
    const parsed = isObject(svcRaw) ? this.parseServiceBody(svcRaw, nodeName) : undefined;
    const idx = this.bump();
    const prev = this.nodes.get(nodeName);
    const tagged = isObject(raw.TaggedAddresses)
      ? (raw.TaggedAddresses as Record<string, string>)
      : { lan: address, wan: address };
    this.nodes.set(nodeName, {
      ID: strField(raw, 'ID') ?? prev?.ID ?? randomUUID(),
      Node: nodeName,
      Address: address,
      Datacenter: this.dc,
      TaggedAddresses: tagged,
      Meta: strMap(raw, 'NodeMeta'),
      CreateIndex: prev?.CreateIndex ?? idx,
      ModifyIndex: idx,
    });
    for (const s of this.services.values())
      if (s.node === nodeName) this.markService(s.Service, idx, s.scope);
    const extraChecks: Array<Record<string, unknown>> = [];
    if (isObject(raw.Check)) extraChecks.push(raw.Check);
    if (Array.isArray(raw.Checks)) for (const c of raw.Checks) if (isObject(c)) extraChecks.push(c);
    // A check without ServiceID is a node check: it belongs to every service of the node.
    const nodeChecks = extraChecks.filter((c) => typeof c.ServiceID !== 'string' || c.ServiceID === '');
    for (const c of nodeChecks) this.storeNodeCheck(nodeName, c, idx);
    if (parsed) {
      // Catalog checks carry their own status and no TTL timer.
      const checks = extraChecks
        .filter((c) => !nodeChecks.includes(c))
        .map((c) => ({ ...c, TTL: undefined, Interval: undefined }));
      this.storeService(parsed.svc, checks, false);
    } else {
      this.wakeAll();
    }
    return { json: true };
  }

  private storeNodeCheck(node: string, c: Record<string, unknown>, idx: number): void {
    const id = typeof c.CheckID === 'string' && c.CheckID !== '' ? c.CheckID : String(c.Name ?? 'check');
    const key = `${node}/${id}`;
    const old = this.checks.get(key);
    const status = c.Status === 'passing' || c.Status === 'warning' ? c.Status : 'critical';
    this.checks.set(key, {
      node,
      scope: '',
      CheckID: id,
      Name: typeof c.Name === 'string' && c.Name !== '' ? c.Name : id,
      Status: status,
      Notes: typeof c.Notes === 'string' ? c.Notes : '',
      Output: typeof c.Output === 'string' ? c.Output : '',
      ServiceID: '',
      ServiceName: '',
      Type: '',
      CreateIndex: old?.CreateIndex ?? idx,
      ModifyIndex: idx,
      agent: false,
    });
  }

  private catalogDeregister(body: Buffer, req: IncomingMessage, url: URL): { json: boolean } {
    const raw = this.parseJson(body);
    if (!isObject(raw))
      throw decodeFail('json: cannot unmarshal into Go value of type structs.DeregisterRequest');
    const nodeName = strField(raw, 'Node');
    if (!nodeName) throw new HttpError(400, 'Must provide node');
    const serviceId = strField(raw, 'ServiceID');
    this.requireWrite(req, url, serviceId ?? nodeName);
    if (serviceId) {
      this.removeService(nodeName, serviceId);
    } else {
      for (const s of [...this.services.values()])
        if (s.node === nodeName) this.removeService(nodeName, s.ID, s.scope);
      if (nodeName !== this.agentNode) {
        this.nodes.delete(nodeName);
        for (const [key, c] of this.checks) if (c.node === nodeName) this.checks.delete(key);
      }
    }
    return { json: true };
  }
}

/**
 * Start a Consul double on 127.0.0.1, port 0. Keep-alive as Go's `net/http` server in Consul:
 * no `Keep-Alive: timeout=` header and no idle timeout, so a client keeps and reuses its
 * connections until it closes them itself (Node's default 5 s hint would make undici drop them).
 */
export async function startConsulDouble(options: ConsulDoubleOptions = {}): Promise<ConsulDouble> {
  const server: Server = options.tls
    ? createHttpsServer({
        keepAliveTimeout: 0,
        key: options.tls.key,
        cert: options.tls.cert,
        ...(options.tls.ca ? { ca: options.tls.ca } : {}),
        ...(options.tls.requestCert ? { requestCert: true, rejectUnauthorized: true } : {}),
      })
    : createServer({ keepAliveTimeout: 0 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if (options.socketPath) server.listen(options.socketPath, () => resolve());
    else server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  return new ConsulDouble(server, options);
}
