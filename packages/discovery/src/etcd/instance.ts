/**
 * One registered etcd instance: its key under a kept-alive lease, a watch of that key (a delete
 * behind its back is written again), and the re-registration when the lease is lost.
 */
import {
  type Clock,
  type Logger,
  MeshError,
  quote,
  type Random,
  type Registration,
  type Timer,
} from '@proxyless/core';
import type { Etcd3, Lease, Watcher } from 'etcd3';
import { type BackoffOptions, backoffDelay } from '../backoff.js';
import { ownWatch, unavailable } from './client.js';
import { encodeRegistration } from './codec.js';
import type { EtcdRegisteredInstance } from './registrar.js';

/** What an instance needs from its registrar. */
export interface InstanceContext {
  readonly client: Promise<Etcd3>;
  readonly ttl: number;
  readonly backoff: BackoffOptions;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  forget(instance: EtcdInstance): void;
}

export class EtcdInstance implements EtcdRegisteredInstance {
  readonly id: string;
  readonly key: string;
  readonly #owner: InstanceContext;
  readonly #reg: Registration;
  #lease: Lease | undefined;
  #leaseId: string | undefined;
  #health: 'passing' | 'critical' = 'passing';
  #note: string | undefined;
  #stopped = false;
  #attempt = 0;
  #timer: Timer | undefined;
  #reRegistrations = 0;
  #deregistering: Promise<void> | undefined;
  /** Every lease this instance was granted: a key still under one of them is its own to take over. */
  readonly #leases = new Set<string>();
  /** The watch of the instance's own key (a delete behind its back is written again). */
  #watcher: Promise<Watcher | undefined> | undefined;
  /** The pending new watch of the key after etcd cancelled it ({@link #onWatchCancelled}). */
  #watchTimer: Timer | undefined;
  #watchAttempt = 0;

  constructor(owner: InstanceContext, reg: Registration, id: string, key: string) {
    this.#owner = owner;
    this.#reg = reg;
    this.id = id;
    this.key = key;
  }

  get leaseId(): string | undefined {
    return this.#leaseId;
  }

  get reRegistrations(): number {
    return this.#reRegistrations;
  }

  /** Grant a lease and write the key under it; on failure revoke what was granted and throw. */
  async start(): Promise<void> {
    const { ttl } = this.#owner;
    const client = await this.#owner.client; // rejects with MESH_CONFIG_INVALID without etcd3
    const lease = client.lease(ttl, { autoKeepAlive: true });
    try {
      const leaseId = await lease.grant();
      this.#leases.add(leaseId);
      await this.#claim(client, lease, leaseId);
      if (this.#stopped) {
        // deregistered while this lease was being granted
        await lease.revoke().catch(() => undefined);
        return;
      }
      this.#lease = lease;
      this.#leaseId = leaseId;
      // Watched only once the key is written: a failed grant or put is handled by the caller.
      lease.on('lost', (error) => this.#onLost(lease, error));
      if (lease.revoked()) this.#onLost(lease, new Error('lease lost while the key was written'));
      // Live before register() resolves: a delete right after it is seen.
      this.#watcher ??= this.#watchKey(client);
      await this.#watcher;
    } catch (error) {
      lease.revoke().catch(() => undefined);
      throw unavailable(`registering ${this.key}`, error, { key: this.key, service: this.#reg.service });
    }
  }

  /**
   * Write the key under `lease` if no one else holds it: free, or under a lease of this instance's
   * own (lost, its keys not yet expired). A key another live instance holds (the same id twice)
   * is refused: written over, the two would take each other's key, and the first to deregister
   * would delete the other's.
   */
  async #claim(client: Etcd3, lease: Lease, leaseId: string): Promise<void> {
    const value = this.#value();
    const created = await client
      .if(this.key, 'Create', '==', 0)
      .then(client.put(this.key).value(value).lease(leaseId))
      .commit();
    if (created.succeeded) return;
    const holder = (await client.get(this.key).exec()).kvs[0]?.lease;
    if (holder !== undefined && !this.#leases.has(String(holder))) {
      throw new MeshError(
        'MESH_CONFIG_INVALID',
        `etcd registration: id ${quote(this.id)} of service ${quote(this.#reg.service)} is held by another live instance (${this.key}, lease ${String(holder)})`,
        {
          details: {
            field: 'id',
            value: this.id,
            key: this.key,
            issues: [
              { field: 'id', value: this.id, expected: 'an id no other live instance of the service holds' },
            ],
          },
        },
      );
    }
    await lease.put(this.key).value(value);
  }

  /**
   * Watch the instance's own key: deleted behind its back (`etcdctl del`) while its lease lives,
   * it is written again; taken by another writer, that is logged. A lease that is gone is the
   * lease watch's to handle (`#onLost`).
   */
  async #watchKey(client: Etcd3): Promise<Watcher | undefined> {
    try {
      const watcher = await ownWatch(client).key(this.key).create();
      if (this.#stopped) {
        await watcher.cancel();
        return undefined;
      }
      watcher.on('delete', () => this.#onKeyDeleted());
      watcher.on('put', (kv) => {
        const holder = String(kv.lease);
        if (!this.#stopped && this.#leaseId !== undefined && holder !== this.#leaseId)
          this.#owner.logger.warn('etcd instance key written by another holder', {
            key: this.key,
            lease: holder,
          });
      });
      // etcd cancelled the watch (after a restart with authentication on, its token is refused:
      // "invalid auth token"): it is gone from the client, and no event comes any more.
      watcher.on('error', (error) => this.#onWatchCancelled(client, error));
      return watcher;
    } catch (error) {
      this.#owner.logger.warn('etcd watch of the instance key failed', { key: this.key, error });
      return undefined;
    }
  }

  #onWatchCancelled(client: Etcd3, error: unknown): void {
    if (this.#stopped) return;
    this.#owner.logger.warn('etcd watch of the instance key was cancelled; watching it again', {
      key: this.key,
      error,
    });
    this.#watcher = undefined;
    this.#scheduleRewatch(client);
  }

  /**
   * Watch the key again after a back-off, then read it: a unary call (which also has etcd3 take a
   * new auth token when the old one is refused) that sees a delete made while no watch was live.
   */
  #scheduleRewatch(client: Etcd3): void {
    if (this.#stopped || this.#watchTimer !== undefined) return;
    const { backoff, random, clock } = this.#owner;
    const delay = backoffDelay(this.#watchAttempt++, backoff, random);
    this.#watchTimer = clock.setTimer(delay, () => {
      this.#watchTimer = undefined;
      if (this.#stopped) return;
      void this.#rewatch(client);
    });
  }

  async #rewatch(client: Etcd3): Promise<void> {
    let present: boolean;
    try {
      // First: refreshes a refused token, so the watch below is created with a good one.
      present = (await client.get(this.key).exec()).kvs.length > 0;
    } catch (error) {
      this.#owner.logger.debug('etcd read of the instance key failed', { key: this.key, error });
      this.#scheduleRewatch(client);
      return;
    }
    // A re-registration after a lost lease (`start`) may have watched the key meanwhile.
    if (this.#stopped || this.#watcher !== undefined) return;
    const watching = this.#watchKey(client);
    this.#watcher = watching;
    if ((await watching) === undefined) {
      if (this.#watcher === watching) this.#watcher = undefined;
      this.#scheduleRewatch(client);
      return;
    }
    this.#watchAttempt = 0;
    // Deleted while the key was not watched (or between the read and the watch: read again).
    let still = present;
    try {
      still = (await client.get(this.key).exec()).kvs.length > 0;
    } catch {
      // The watch is live: a delete from now on is seen.
    }
    if (!still) this.#onKeyDeleted();
  }

  #onKeyDeleted(): void {
    const lease = this.#lease;
    if (this.#stopped || lease === undefined || lease.revoked()) return;
    const { logger } = this.#owner;
    logger.warn('etcd instance key deleted while its lease lives; writing it again', { key: this.key });
    lease
      .put(this.key)
      .value(this.#value())
      .then(
        () => {
          this.#reRegistrations++;
          logger.info('etcd instance registered again', { key: this.key, leaseId: this.#leaseId });
        },
        (error: unknown) => this.#onLost(lease, error),
      );
  }

  async markUnhealthy(note?: string): Promise<void> {
    this.#health = 'critical';
    this.#note = note;
    const lease = this.#lease;
    if (lease === undefined || this.#stopped) return; // written with the new lease when it is re-created
    try {
      await lease.put(this.key).value(this.#value());
    } catch (error) {
      throw unavailable(`marking ${this.key} critical`, error, { key: this.key });
    }
  }

  deregister(): Promise<void> {
    this.#deregistering ??= (async () => {
      this.#stopped = true;
      this.#timer?.cancel();
      this.#timer = undefined;
      this.#watchTimer?.cancel();
      this.#watchTimer = undefined;
      this.#owner.forget(this);
      const watcher = this.#watcher;
      this.#watcher = undefined;
      // Not waited for: etcd3's cancel of a watch that etcd already cancelled never settles, and
      // the revoke below does not need it (a delete seen meanwhile is ignored: stopped).
      if (watcher !== undefined)
        void watcher
          .then((w) => w?.cancel())
          .catch((error: unknown) => {
            this.#owner.logger.debug('etcd watch cancel failed', { key: this.key, error });
          });
      const lease = this.#lease;
      this.#lease = undefined;
      this.#leaseId = undefined;
      if (lease === undefined) return;
      try {
        await lease.revoke();
      } catch (error) {
        // The lease expires on its own after its TTL; report that the revoke did not reach etcd.
        throw unavailable(`revoking the lease of ${this.key} (it expires after its TTL)`, error, {
          key: this.key,
        });
      }
    })();
    return this.#deregistering;
  }

  #value(): string {
    return encodeRegistration(this.#reg, this.id, this.#health, this.#note);
  }

  #onLost(lease: Lease, error: unknown): void {
    if (this.#stopped || this.#lease !== lease) return;
    this.#lease = undefined;
    this.#leaseId = undefined;
    const { logger } = this.#owner;
    logger.warn('etcd lease lost; registering again', { key: this.key, error });
    this.#scheduleRecreate();
  }

  #scheduleRecreate(): void {
    if (this.#stopped || this.#timer !== undefined) return;
    const { backoff, random, clock, logger } = this.#owner;
    const delay = backoffDelay(this.#attempt, backoff, random);
    this.#attempt++;
    this.#timer = clock.setTimer(delay, () => {
      if (this.#stopped) {
        this.#timer = undefined;
        return;
      }
      this.start().then(
        () => {
          this.#timer = undefined;
          if (this.#stopped) return;
          this.#attempt = 0;
          this.#reRegistrations++;
          logger.info('etcd instance registered again', { key: this.key, leaseId: this.#leaseId });
        },
        (error: unknown) => {
          this.#timer = undefined;
          logger.warn('etcd re-registration failed; retrying', {
            key: this.key,
            error,
            attempt: this.#attempt,
          });
          this.#scheduleRecreate();
        },
      );
    });
  }
}
