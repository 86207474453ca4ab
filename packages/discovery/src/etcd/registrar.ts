import {
  type Clock,
  formatHostPort,
  Issues,
  isValidHost,
  type Logger,
  MeshError,
  noopLogger,
  type Random,
  type RegisteredInstance,
  type Registrar,
  type Registration,
  systemClock,
  systemRandom,
} from '@proxyless/core';
import type { Etcd3 } from 'etcd3';
import type { BackoffOptions } from '../backoff.js';
import { ENDPOINT_ADDRESS_EXPECTED, zoneIdProblem } from '../endpoint-doc.js';
import {
  asEtcd3,
  createEtcdClient,
  type EtcdClient,
  type EtcdConnectionOptions,
  normalizePrefix,
} from './client.js';
import { EtcdInstance, type InstanceContext } from './instance.js';

/** Options of {@link createEtcdRegistrar}. */
export interface EtcdRegistrarOptions extends EtcdConnectionOptions {
  /** An existing client; it belongs to the caller (`close()` does not close it). */
  client?: EtcdClient;
  /** Key prefix (the resolver's). @defaultValue `/proxyless/services/` */
  prefix?: string;
  /**
   * Lease TTL in seconds: an instance whose process dies disappears this long after its last
   * keep-alive (sent every TTL/3). etcd raises TTLs below its minimum (2 s by default).
   * @defaultValue 10
   */
  leaseTtlSeconds?: number;
  /** Back-off between attempts to re-create a lost lease. @defaultValue `{ baseMs: 200, capMs: 10000 }` */
  backoff?: BackoffOptions;
  clock?: Clock;
  random?: Random;
  logger?: Logger;
}

/** A registered etcd instance. */
export interface EtcdRegisteredInstance extends RegisteredInstance {
  /** The etcd key holding the instance's endpoint document. */
  readonly key: string;
  /** The current lease id (it changes when a lost lease is re-created), or `undefined` while there is none. */
  readonly leaseId: string | undefined;
  /** How many times the lease was lost and the key written again under a new lease. */
  readonly reRegistrations: number;
}

const SERVICE_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9])?$/;

/** Validate a registration; throws `MESH_CONFIG_INVALID` listing every bad field. */
export function validateEtcdRegistration(reg: Registration): string {
  const issues = new Issues();
  issues.string(reg.service, 'service', {
    pattern: SERVICE_NAME,
    patternText:
      'a service name of letters, digits, ".", "-" and "_" that starts and ends with a letter or digit',
  });
  if (typeof reg.address !== 'string' || !isValidHost(reg.address))
    issues.add('address', ENDPOINT_ADDRESS_EXPECTED, reg.address);
  else {
    // Resolvers refuse a value with a zone id (undici cannot dial it): do not write one.
    const zone = zoneIdProblem(reg.address);
    if (zone !== undefined) issues.add('address', zone, reg.address);
  }
  issues.integer(reg.port, 'port', { min: 1, max: 65535 });
  if (reg.id !== undefined)
    issues.string(reg.id, 'id', { pattern: /^[^/\s]+$/, patternText: 'an id without "/" or spaces' });
  if (reg.tags !== undefined) issues.stringArray(reg.tags, 'tags');
  if (reg.metadata !== undefined) issues.stringRecord(reg.metadata, 'metadata');
  if (reg.zone !== undefined) issues.string(reg.zone, 'zone');
  if (reg.weights !== undefined) {
    issues.number(reg.weights.passing, 'weights.passing', { min: 0, max: 1_000_000 });
    issues.number(reg.weights.warning, 'weights.warning', { min: 0, max: 1_000_000 });
  }
  issues.throwIfAny('etcd registration');
  return reg.id ?? formatHostPort(reg.address, reg.port);
}

/**
 * Registers instances in etcd: the endpoint document is written under
 * `<prefix><service>/<id>` attached to a lease kept alive every TTL/3. `markUnhealthy` rewrites
 * the value with `health: "critical"`; `deregister` (and `close`) revokes the lease, which deletes
 * the key. When the lease is lost (expired during an outage, revoked by someone else), a new one
 * is granted and the key written again, retrying with back-off until it works.
 *
 * etcd runs no health checks: a `check` in the registration is not sent; liveness is the lease.
 */
export class EtcdRegistrar implements Registrar {
  readonly name = 'etcd';
  /** Settles once `etcd3` is loaded (it is an optional peer dependency, imported on first use). */
  readonly #client: Promise<Etcd3>;
  readonly #ownsClient: boolean;
  readonly #prefix: string;
  readonly #ttl: number;
  readonly #backoff: BackoffOptions;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #logger: Logger;
  readonly #instances = new Set<EtcdInstance>();
  readonly #context: InstanceContext;
  #closing: Promise<void> | undefined;

  constructor(options: EtcdRegistrarOptions = {}) {
    // Every problem of the options at once: the registrar's own and the connection's.
    const issues = new Issues();
    const ttl = options.leaseTtlSeconds ?? 10;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 86_400)
      issues.add('leaseTtlSeconds', 'an integer 1..86400', ttl);
    const client = options.client ? Promise.resolve(options.client) : createEtcdClient(options, issues);
    issues.throwIfAny('etcd registrar options');
    this.#ttl = ttl;
    this.#prefix = normalizePrefix(options.prefix);
    this.#backoff = options.backoff ?? { baseMs: 200, capMs: 10_000 };
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? systemRandom;
    this.#logger = options.logger ?? noopLogger;
    this.#ownsClient = options.client === undefined;
    this.#client = client.then(asEtcd3);
    // A failed load is reported by `register()`.
    this.#client.catch(() => undefined);
    this.#context = {
      client: this.#client,
      ttl: this.#ttl,
      backoff: this.#backoff,
      clock: this.#clock,
      random: this.#random,
      logger: this.#logger,
      forget: (i) => this.#instances.delete(i),
    };
  }

  /**
   * Write the instance under a new lease. Rejects with `MESH_CONFIG_INVALID` for a bad
   * registration and `MESH_REGISTRY_UNAVAILABLE` when etcd cannot be reached (nothing is left behind).
   */
  async register(registration: Registration): Promise<EtcdRegisteredInstance> {
    if (this.#closing) throw new MeshError('MESH_CLOSED', 'etcd registrar is closed');
    const id = validateEtcdRegistration(registration);
    const instance = new EtcdInstance(
      this.#context,
      registration,
      id,
      `${this.#prefix}${registration.service}/${id}`,
    );
    await instance.start();
    this.#instances.add(instance);
    return instance;
  }

  /** Deregister every instance (revoking their leases), then release the client if owned. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.all(
        [...this.#instances].map((i) =>
          i
            .deregister()
            .catch((error: unknown) =>
              this.#logger.warn('etcd deregistration failed', { key: i.key, error }),
            ),
        ),
      );
      if (this.#ownsClient)
        await this.#client.then(
          (c) => c.close(),
          () => undefined,
        );
    })();
    return this.#closing;
  }
}

/** Create an {@link EtcdRegistrar}. Throws `MESH_CONFIG_INVALID` for bad options. */
export function createEtcdRegistrar(options: EtcdRegistrarOptions = {}): EtcdRegistrar {
  return new EtcdRegistrar(options);
}
