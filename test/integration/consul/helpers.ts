import type { Resolver, ResolverUpdate } from '@proxyless/core';
import { ConsulHttp } from '../../../packages/discovery/src/consul/http.js';
import type { ConsulDouble } from '../../consul-double/server.js';

/** What the shared cases need from a Consul (the double or a real agent). */
export interface ConsulTarget {
  kind: 'double' | 'real';
  /** `CONSUL_HTTP_ADDR` form. */
  address: string;
  /** Token for writes and reads (real agents with ACLs). */
  token?: string;
  /** Double-only controls; `undefined` against a real agent. */
  double?: ConsulDouble;
}

/** Collects a watch's updates and lets a test wait for one matching a predicate (bounded). */
export class Watcher {
  readonly updates: ResolverUpdate[] = [];
  private waiters: Array<{ pred: (u: ResolverUpdate) => boolean; resolve: (u: ResolverUpdate) => void }> = [];
  readonly dispose: () => void;

  constructor(resolver: Resolver, service: string) {
    const d = resolver.watch(service, (u) => {
      this.updates.push(u);
      for (const w of [...this.waiters]) {
        if (w.pred(u)) {
          this.waiters = this.waiters.filter((x) => x !== w);
          w.resolve(u);
        }
      }
    });
    this.dispose = () => d.dispose();
  }

  /** The next update (after the `after`-th) satisfying `pred`; rejects after `timeoutMs` of real time. */
  next(
    pred: (u: ResolverUpdate) => boolean = () => true,
    after = this.updates.length,
    timeoutMs = 10_000,
  ): Promise<ResolverUpdate> {
    const seen = this.updates.slice(after).find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x.resolve !== done);
        reject(
          new Error(
            `no matching update within ${timeoutMs} ms; got ${JSON.stringify(this.updates.map(summary))}`,
          ),
        );
      }, timeoutMs);
      const done = (u: ResolverUpdate): void => {
        clearTimeout(timer);
        resolve(u);
      };
      this.waiters.push({ pred, resolve: done });
    });
  }

  /** The first endpoints update (from the `after`-th, default all) whose sorted ids satisfy `pred`. */
  endpoints(pred: (ids: string[]) => boolean, after = 0): Promise<ResolverUpdate & { kind: 'endpoints' }> {
    return this.next(
      (u) => u.kind === 'endpoints' && pred(u.set.endpoints.map((e) => e.id).sort()),
      after,
    ) as Promise<ResolverUpdate & { kind: 'endpoints' }>;
  }

  /** The first error update (from the `after`-th, default all) satisfying `pred`. */
  error(
    pred: (u: ResolverUpdate & { kind: 'error' }) => boolean = () => true,
    after = 0,
  ): Promise<ResolverUpdate & { kind: 'error' }> {
    return this.next((u) => u.kind === 'error' && pred(u), after) as Promise<
      ResolverUpdate & { kind: 'error' }
    >;
  }
}

export function summary(u: ResolverUpdate): unknown {
  return u.kind === 'endpoints'
    ? { kind: u.kind, ids: u.set.endpoints.map((e) => e.id), stale: u.set.stale }
    : { kind: u.kind, code: u.error.code, message: u.error.message.slice(0, 200), stale: u.lastGood?.stale };
}

/** Agent/catalog writes used to set up cases, through the same HTTP client the mesh uses. */
export class Agent {
  readonly http: ConsulHttp;
  private readonly services = new Set<string>();
  private readonly nodes = new Set<string>();

  constructor(target: ConsulTarget) {
    this.http = new ConsulHttp({ address: target.address, ...(target.token ? { token: target.token } : {}) });
  }

  private async put(path: string, json?: unknown): Promise<void> {
    const res = await this.http.request(path, {
      method: 'PUT',
      local: true,
      ...(json !== undefined ? { json } : {}),
    });
    if (res.status !== 200) throw new Error(`PUT ${path}: ${res.status} ${res.text()}`);
  }

  async register(body: Record<string, unknown>): Promise<void> {
    await this.put('/v1/agent/service/register', body);
    this.services.add(String(body.ID ?? body.Name));
  }

  async deregister(id: string): Promise<void> {
    this.services.delete(id);
    await this.put(`/v1/agent/service/deregister/${encodeURIComponent(id)}`);
  }

  async check(op: 'pass' | 'warn' | 'fail', checkId: string): Promise<void> {
    await this.put(`/v1/agent/check/${op}/${encodeURIComponent(checkId)}`);
  }

  /** `PUT /v1/agent/service/maintenance/:id?enable=…` (what `consul maint -service` does). */
  async maintenance(id: string, enable: boolean): Promise<void> {
    await this.put(`/v1/agent/service/maintenance/${encodeURIComponent(id)}?enable=${enable}`);
  }

  async catalogRegister(body: Record<string, unknown>): Promise<void> {
    await this.put('/v1/catalog/register', body);
    this.nodes.add(String(body.Node));
  }

  async agentService(id: string): Promise<number> {
    const res = await this.http.request(`/v1/agent/service/${encodeURIComponent(id)}`, { local: true });
    return res.status;
  }

  async checkStatus(checkId: string): Promise<string | undefined> {
    const res = await this.http.request('/v1/agent/checks', { local: true });
    if (res.status === 200) {
      const all = JSON.parse(res.text()) as Record<string, { Status: string }>;
      return all[checkId]?.Status;
    }
    return undefined;
  }

  /** Remove everything this helper registered. */
  async cleanup(): Promise<void> {
    for (const id of [...this.services]) await this.deregister(id).catch(() => undefined);
    for (const node of [...this.nodes])
      await this.put('/v1/catalog/deregister', { Node: node }).catch(() => undefined);
    this.nodes.clear();
    await this.http.close();
  }
}

let counter = 0;
/** A service name no other case uses (real agents keep state between runs). */
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}-${Math.floor(Math.random() * 1e6)}`;
}
