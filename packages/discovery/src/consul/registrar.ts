/**
 * Self-registration with the local Consul agent (`PUT /v1/agent/service/register`).
 *
 * - HTTP and TCP checks are run by the agent; a TTL check is kept passing by a heartbeat every
 *   `ttl / 3` on the injected clock.
 * - When the agent has forgotten the instance (restart without persistence: a TTL update answers
 *   404, or 500 "does not have associated TTL"; or `GET /v1/agent/service/:id` answers 404 for
 *   instances without a TTL check, every `resyncIntervalMs`), the registrar registers it again.
 * - `markUnhealthy` fails the TTL check, or puts the service in maintenance mode for other checks.
 * - `deregister` / `close` remove the instance; a 404 (already gone) counts as success.
 */
import {
  type Clock,
  type HealthCheckDefinition,
  Issues,
  type Logger,
  MeshError,
  noopLogger,
  type RegisteredInstance,
  type Registrar,
  type Registration,
  systemClock,
  type Timer,
} from '@proxyless/core';
import { type ConsulConnectionOptions, ConsulHttp, consulStatusError } from './http.js';

/** Something the registrar did, for logs, metrics and tests. */
export interface ConsulRegistrarEvent {
  type: 'registered' | 'heartbeat' | 'reregistered' | 'heartbeat-failed' | 'unhealthy' | 'deregistered';
  id: string;
  error?: MeshError;
}

/** Options of {@link createConsulRegistrar}. */
export interface ConsulRegistrarOptions extends ConsulConnectionOptions {
  /** Service meta key that carries `Registration.zone`. @defaultValue 'zone' */
  zoneMetaKey?: string;
  /** How often an instance without a TTL check is checked for presence, in ms (0 = never). @defaultValue 30_000 */
  resyncIntervalMs?: number;
  clock?: Clock;
  logger?: Logger;
  onEvent?: (event: ConsulRegistrarEvent) => void;
}

const META_KEY = /^[A-Za-z0-9_-]{1,128}$/;

function goDuration(ms: number): string {
  return `${Math.max(1, Math.round(ms))}ms`;
}

/** The agent registration body for a registration (exported for documentation and tests). */
export function consulServiceDefinition(
  reg: Registration,
  id: string,
  zoneMetaKey = 'zone',
): Record<string, unknown> {
  const meta: Record<string, string> = { ...(reg.metadata ?? {}) };
  if (reg.zone !== undefined) meta[zoneMetaKey] = reg.zone;
  const body: Record<string, unknown> = {
    Name: reg.service,
    ID: id,
    Address: reg.address,
    Port: reg.port,
    Tags: [...(reg.tags ?? [])],
    Meta: meta,
  };
  if (reg.weights) body.Weights = { Passing: reg.weights.passing, Warning: reg.weights.warning };
  const check = reg.check ? checkDefinition(reg.check, id) : undefined;
  if (check) body.Check = check;
  return body;
}

function ttlCheckId(id: string): string {
  return `service:${id}:ttl`;
}

function checkDefinition(c: HealthCheckDefinition, id: string): Record<string, unknown> {
  const dereg =
    c.deregisterAfterMs !== undefined
      ? { DeregisterCriticalServiceAfter: goDuration(c.deregisterAfterMs) }
      : {};
  switch (c.kind) {
    case 'http':
      return {
        HTTP: c.url,
        Method: 'GET',
        Interval: goDuration(c.intervalMs),
        Timeout: goDuration(c.timeoutMs),
        ...dereg,
      };
    case 'tcp':
      return {
        TCP: c.address,
        Interval: goDuration(c.intervalMs),
        Timeout: goDuration(c.timeoutMs),
        ...dereg,
      };
    case 'ttl':
      return {
        CheckID: ttlCheckId(id),
        Name: 'proxyless heartbeat',
        TTL: goDuration(c.ttlMs),
        Status: 'passing',
        ...dereg,
      };
  }
}

function validate(reg: Registration, zoneMetaKey: string): void {
  const issues = new Issues();
  const r = reg as unknown as Record<string, unknown>;
  issues.string(r.service, 'registration.service', {
    pattern: /^[A-Za-z0-9_.-]+$/,
    patternText: 'a service name',
  });
  if (reg.id !== undefined) issues.string(r.id, 'registration.id');
  issues.string(r.address, 'registration.address', {
    pattern: /^[^\s/?#@]+$/,
    patternText: 'an IP address or host name',
  });
  if (reg.address === '0.0.0.0' || reg.address === '::')
    issues.add('registration.address', 'an address other peers can dial (not 0.0.0.0 or ::)', reg.address);
  issues.integer(r.port, 'registration.port', { min: 1, max: 65535 });
  if (reg.tags !== undefined) issues.stringArray(reg.tags, 'registration.tags');
  if (reg.metadata !== undefined) {
    const m = issues.stringRecord(reg.metadata, 'registration.metadata');
    for (const k of Object.keys(m ?? {})) {
      if (!META_KEY.test(k) || k.startsWith('consul-'))
        issues.add(
          `registration.metadata.${k}`,
          'a key of letters, digits, - and _ (≤ 128, no consul- prefix)',
          k,
        );
    }
  }
  if (reg.weights !== undefined) {
    issues.integer(reg.weights.passing, 'registration.weights.passing', { min: 1, max: 65535 });
    issues.integer(reg.weights.warning, 'registration.weights.warning', { min: 0, max: 65535 });
  }
  const c = reg.check;
  if (c !== undefined) {
    if (c.kind === 'http') {
      try {
        const u = new URL(c.url);
        if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
      } catch {
        issues.add('registration.check.url', 'an http:// or https:// URL', c.url);
      }
    }
    if (c.kind === 'tcp')
      issues.string(c.address, 'registration.check.address', {
        pattern: /^\S+:\d+$/,
        patternText: 'host:port',
      });
    if (c.kind === 'http' || c.kind === 'tcp') {
      issues.integer(c.intervalMs, 'registration.check.intervalMs', { min: 1 });
      issues.integer(c.timeoutMs, 'registration.check.timeoutMs', { min: 1 });
    } else if (c.kind === 'ttl') {
      issues.integer(c.ttlMs, 'registration.check.ttlMs', { min: 3 });
    } else {
      issues.add('registration.check.kind', 'one of http, tcp, ttl', (c as { kind?: unknown }).kind);
    }
    if (c.deregisterAfterMs !== undefined)
      issues.integer(c.deregisterAfterMs, 'registration.check.deregisterAfterMs', { min: 60_000 });
  }
  if (reg.zone !== undefined) issues.string(reg.zone, 'registration.zone');
  if (!META_KEY.test(zoneMetaKey)) issues.add('zoneMetaKey', 'a meta key', zoneMetaKey);
  issues.throwIfAny('invalid Consul registration');
}

/**
 * Create a registrar that registers instances with the local Consul agent.
 *
 * @example
 * const registrar = createConsulRegistrar({ address: '127.0.0.1:8500' });
 * const me = await registrar.register({ service: 'payments', address: '10.0.0.5', port: 8080,
 *   check: { kind: 'ttl', ttlMs: 15_000 } });
 */
export function createConsulRegistrar(options: ConsulRegistrarOptions = {}): Registrar {
  const http = new ConsulHttp(options);
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? noopLogger;
  const zoneKey = options.zoneMetaKey ?? 'zone';
  const resyncMs = options.resyncIntervalMs ?? 30_000;
  const instances = new Set<ConsulInstance>();
  let closed: Promise<void> | undefined;

  const emit = (event: ConsulRegistrarEvent): void => {
    try {
      options.onEvent?.(event);
    } catch (error) {
      logger.error('consul registrar event listener threw', { error });
    }
  };

  async function put(path: string, what: string, json?: unknown): Promise<number> {
    const res = await http.request(path, {
      method: 'PUT',
      local: true,
      ...(json !== undefined ? { json } : {}),
    });
    if (res.status === 200) return 200;
    if (res.status === 404 || (res.status === 500 && /does not have associated TTL/.test(res.text())))
      return 404;
    throw consulStatusError(what, res);
  }

  class ConsulInstance implements RegisteredInstance {
    readonly id: string;
    private timer: Timer | undefined;
    private unhealthy: string | undefined;
    private gone = false;
    private ticking = false;

    constructor(
      private readonly reg: Registration,
      private readonly body: Record<string, unknown>,
    ) {
      this.id = String(body.ID);
    }

    private get ttlMs(): number | undefined {
      return this.reg.check?.kind === 'ttl' ? this.reg.check.ttlMs : undefined;
    }

    async register(): Promise<void> {
      await put('/v1/agent/service/register', `register ${this.id}`, this.body);
      if (this.unhealthy !== undefined) await this.applyUnhealthy(this.unhealthy);
    }

    schedule(): void {
      if (this.gone) return;
      const ttl = this.ttlMs;
      const every = ttl !== undefined ? Math.max(1, Math.floor(ttl / 3)) : resyncMs;
      if (every <= 0) return;
      this.timer = clock.setTimer(every, () => {
        void this.tick().finally(() => this.schedule());
      });
    }

    private async tick(): Promise<void> {
      if (this.gone || this.ticking) return;
      this.ticking = true;
      try {
        let status: number;
        if (this.ttlMs !== undefined) {
          const op = this.unhealthy !== undefined ? 'fail' : 'pass';
          const note = this.unhealthy ?? 'proxyless heartbeat';
          status = await put(
            `/v1/agent/check/${op}/${encodeURIComponent(ttlCheckId(this.id))}?note=${encodeURIComponent(note)}`,
            `heartbeat ${this.id}`,
          );
        } else {
          const res = await http.request(`/v1/agent/service/${encodeURIComponent(this.id)}`, { local: true });
          status = res.status === 404 ? 404 : res.status;
          if (status !== 200 && status !== 404) throw consulStatusError(`read ${this.id}`, res);
        }
        if (this.gone) return;
        if (status === 404) {
          logger.warn('consul agent forgot the instance; registering again', { id: this.id });
          await this.register();
          emit({ type: 'reregistered', id: this.id });
        } else {
          emit({ type: 'heartbeat', id: this.id });
        }
      } catch (error) {
        const e = MeshError.is(error)
          ? error
          : new MeshError('MESH_INTERNAL', String(error), { cause: error });
        logger.warn('consul heartbeat failed', { id: this.id, error: e.message });
        emit({ type: 'heartbeat-failed', id: this.id, error: e });
      } finally {
        this.ticking = false;
      }
    }

    private async applyUnhealthy(note: string): Promise<void> {
      if (this.ttlMs !== undefined) {
        await put(
          `/v1/agent/check/fail/${encodeURIComponent(ttlCheckId(this.id))}?note=${encodeURIComponent(note)}`,
          `mark ${this.id} unhealthy`,
        );
      } else {
        await put(
          `/v1/agent/service/maintenance/${encodeURIComponent(this.id)}?enable=true&reason=${encodeURIComponent(note)}`,
          `mark ${this.id} unhealthy`,
        );
      }
    }

    async markUnhealthy(note = 'draining'): Promise<void> {
      if (this.gone) return;
      this.unhealthy = note;
      await this.applyUnhealthy(note);
      emit({ type: 'unhealthy', id: this.id });
    }

    async deregister(): Promise<void> {
      if (this.gone) return;
      this.gone = true;
      this.timer?.cancel();
      instances.delete(this);
      await put(`/v1/agent/service/deregister/${encodeURIComponent(this.id)}`, `deregister ${this.id}`);
      emit({ type: 'deregistered', id: this.id });
    }
  }

  return {
    name: 'consul',
    async register(registration: Registration): Promise<RegisteredInstance> {
      if (closed) throw new MeshError('MESH_CLOSED', 'consul registrar is closed');
      validate(registration, zoneKey);
      const id = registration.id ?? `${registration.service}-${registration.address}-${registration.port}`;
      const instance = new ConsulInstance(registration, consulServiceDefinition(registration, id, zoneKey));
      await instance.register();
      instances.add(instance);
      emit({ type: 'registered', id });
      instance.schedule();
      return instance;
    },
    close(): Promise<void> {
      closed ??= (async () => {
        const errors: unknown[] = [];
        await Promise.all(
          [...instances].map((i) =>
            i.deregister().catch((error: unknown) => {
              errors.push(error);
            }),
          ),
        );
        await http.close();
        if (errors.length) logger.warn('consul deregistration failed on close', { errors });
      })();
      return closed;
    },
  };
}
