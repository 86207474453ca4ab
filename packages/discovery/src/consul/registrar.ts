/**
 * Self-registration with the local Consul agent (`PUT /v1/agent/service/register`).
 *
 * - Registration uses `?replace-existing-checks=true`, then sets the intended state (TTL check
 *   passing, or failing/maintenance when marked unhealthy). Without it Consul keeps every check
 *   of that service ID the body does not list, `_service_maintenance:<id>` included, and the
 *   previous status of re-listed checks (`agent/agent.go` `addServiceInternal`): an instance
 *   restarted with its deterministic ID after maintenance or a failure stayed out of rotation.
 * - No check given: a TTL check ({@link DEFAULT_CONSUL_CHECK}); `defaultCheck: false` opts out.
 * - HTTP and TCP checks are run by the agent; a TTL check is kept passing by a heartbeat every
 *   `ttl / 3` on the injected clock.
 * - When the agent has forgotten the instance (restart without persistence: a TTL update answers
 *   404, or 500 "does not have associated TTL"; or `GET /v1/agent/service/:id` answers 404 for
 *   instances without a TTL check, every `resyncIntervalMs`), the registrar registers it again.
 * - `markUnhealthy` fails the TTL check, or puts the service in maintenance mode for other checks.
 * - `deregister` / `close` remove the instance; a 404 (already gone) counts as success. The agent
 *   calls of one instance run one at a time, so a deregistration never overtakes a
 *   re-registration in flight (which would leave the instance registered after shutdown).
 */
import {
  type Clock,
  type HealthCheckDefinition,
  type Logger,
  MeshError,
  noopLogger,
  type RegisteredInstance,
  type Registrar,
  type Registration,
  systemClock,
  type Timer,
} from '@proxyless/core';
import { type ConsulConnectionOptions, ConsulHttp } from './http.js';
import {
  consulServiceDefinition,
  DEFAULT_CONSUL_CHECK,
  ttlCheckId,
  validateRegistration,
} from './registration.js';

export { consulServiceDefinition, DEFAULT_CONSUL_CHECK } from './registration.js';

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
  /**
   * The check of a registration that names none, or `false` for none (the instance then stays
   * `passing` even after its process died). @defaultValue {@link DEFAULT_CONSUL_CHECK}: TTL 15 s,
   * deregistered 1 min after it goes critical
   */
  defaultCheck?: HealthCheckDefinition | false;
  clock?: Clock;
  logger?: Logger;
  onEvent?: (event: ConsulRegistrarEvent) => void;
}

/**
 * Create a registrar that registers instances with the local Consul agent.
 *
 * @example
 * const registrar = createConsulRegistrar({ address: '127.0.0.1:8500' });
 * const me = await registrar.register({ service: 'payments', address: '10.0.0.5', port: 8080 });
 */
export function createConsulRegistrar(options: ConsulRegistrarOptions = {}): Registrar {
  const http = new ConsulHttp(options);
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? noopLogger;
  const zoneKey = options.zoneMetaKey ?? 'zone';
  const resyncMs = options.resyncIntervalMs ?? 30_000;
  const defaultCheck = options.defaultCheck === undefined ? DEFAULT_CONSUL_CHECK : options.defaultCheck;
  const instances = new Set<ConsulInstance>();
  let closed: Promise<void> | undefined;

  const emit = (event: ConsulRegistrarEvent): void => {
    try {
      options.onEvent?.(event);
    } catch (error) {
      logger.error('consul registrar event listener threw', { error });
    }
  };

  /** One agent write; 404 (and the old "does not have associated TTL" 500) means "forgotten". */
  async function put(
    path: string,
    what: string,
    query: Record<string, string> = {},
    json?: unknown,
  ): Promise<number> {
    const res = await http.request(path, {
      method: 'PUT',
      local: true,
      query,
      ...(json !== undefined ? { json } : {}),
    });
    if (res.status === 200) return 200;
    if (res.status === 404 || (res.status === 500 && /does not have associated TTL/.test(res.text())))
      return 404;
    throw http.statusError(what, res);
  }

  class ConsulInstance implements RegisteredInstance {
    readonly id: string;
    private timer: Timer | undefined;
    private unhealthy: string | undefined;
    private gone = false;
    /** The agent calls of this instance, one at a time. */
    private queue: Promise<unknown> = Promise.resolve();

    constructor(
      private readonly reg: Registration,
      private readonly body: Record<string, unknown>,
    ) {
      this.id = String(body.ID);
    }

    private get ttlMs(): number | undefined {
      const c = this.reg.check;
      return c?.kind === 'ttl' ? c.ttlMs : undefined;
    }

    /** Run `fn` after every call queued before it (whatever their outcome). */
    private serial<T>(fn: () => Promise<T>): Promise<T> {
      const next = this.queue.then(fn, fn);
      this.queue = next.catch(() => undefined);
      return next;
    }

    /** Register (replacing stale checks), then set the intended state. Queued by the caller. */
    async register(): Promise<void> {
      await put(
        `/v1/agent/service/register`,
        `register ${this.id}`,
        { 'replace-existing-checks': 'true' },
        this.body,
      );
      // A re-listed check keeps its previous status: set it to what this process intends.
      if (this.unhealthy !== undefined) await this.applyUnhealthy(this.unhealthy);
      else if (this.ttlMs !== undefined) await this.ttl('pass', 'proxyless heartbeat');
    }

    registerQueued(): Promise<void> {
      return this.serial(() => this.register());
    }

    private ttl(op: 'pass' | 'fail', note: string): Promise<number> {
      return put(`/v1/agent/check/${op}/${encodeURIComponent(ttlCheckId(this.id))}`, `heartbeat ${this.id}`, {
        note,
      });
    }

    schedule(): void {
      if (this.gone) return;
      const ttl = this.ttlMs;
      const every = ttl !== undefined ? Math.max(1, Math.floor(ttl / 3)) : resyncMs;
      if (every <= 0) return;
      this.timer = clock.setTimer(every, () => {
        void this.serial(() => this.tick()).finally(() => this.schedule());
      });
    }

    private async tick(): Promise<void> {
      if (this.gone) return;
      try {
        let status: number;
        if (this.ttlMs !== undefined) {
          status =
            this.unhealthy !== undefined
              ? await this.ttl('fail', this.unhealthy)
              : await this.ttl('pass', 'proxyless heartbeat');
        } else {
          const res = await http.request(`/v1/agent/service/${encodeURIComponent(this.id)}`, { local: true });
          status = res.status;
          if (status !== 200 && status !== 404) throw http.statusError(`read ${this.id}`, res);
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
      }
    }

    private async applyUnhealthy(note: string): Promise<void> {
      if (this.ttlMs !== undefined) {
        await put(
          `/v1/agent/check/fail/${encodeURIComponent(ttlCheckId(this.id))}`,
          `mark ${this.id} unhealthy`,
          {
            note,
          },
        );
      } else {
        await put(
          `/v1/agent/service/maintenance/${encodeURIComponent(this.id)}`,
          `mark ${this.id} unhealthy`,
          {
            enable: 'true',
            reason: note,
          },
        );
      }
    }

    async markUnhealthy(note = 'draining'): Promise<void> {
      if (this.gone) return;
      this.unhealthy = note;
      await this.serial(() => this.applyUnhealthy(note));
      emit({ type: 'unhealthy', id: this.id });
    }

    async deregister(): Promise<void> {
      if (this.gone) return;
      this.gone = true;
      this.timer?.cancel();
      instances.delete(this);
      // After any call in flight: a re-registration still on its way would otherwise land after
      // the deregistration and leave the instance registered.
      await this.serial(() =>
        put(`/v1/agent/service/deregister/${encodeURIComponent(this.id)}`, `deregister ${this.id}`),
      );
      emit({ type: 'deregistered', id: this.id });
    }
  }

  return {
    name: 'consul',
    async register(registration: Registration): Promise<RegisteredInstance> {
      if (closed) throw new MeshError('MESH_CLOSED', 'consul registrar is closed');
      const reg: Registration =
        registration.check === undefined && defaultCheck !== false
          ? { ...registration, check: defaultCheck }
          : registration;
      validateRegistration(reg, zoneKey);
      const id = reg.id ?? `${reg.service}-${reg.address}-${reg.port}`;
      const instance = new ConsulInstance(reg, consulServiceDefinition(reg, id, zoneKey));
      // Known before the first call, so a close() meanwhile deregisters it after that call.
      instances.add(instance);
      try {
        await instance.registerQueued();
      } catch (error) {
        instances.delete(instance);
        throw error;
      }
      // close() ran meanwhile: it deregisters this instance too, so the caller is told it is gone
      // rather than handed an instance that no longer exists.
      if (closed)
        throw new MeshError('MESH_CLOSED', `consul registrar closed while ${id} was being registered`);
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
