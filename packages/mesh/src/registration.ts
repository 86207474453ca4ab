/**
 * Self-registration: the registrar of the shared registry in use (Consul or etcd), made on the
 * first `mesh.register()`, and the signal handlers that drain on SIGTERM. `close()` deregisters.
 */

import {
  type Clock,
  type Disposable,
  type Logger,
  MeshError,
  type Random,
  type RegisteredInstance,
  type Registrar,
  type Registration,
} from '@proxyless/core';
import { createConsulRegistrar, createEtcdRegistrar, manageSignals } from '@proxyless/discovery';
import type { RegisterOptions } from './api.js';
import type { RegistrySettings } from './resolvers.js';

export interface RegistrationsDeps {
  registries: RegistrySettings;
  /** `MESH_REGISTRY` as given (for the error when none supports registration). */
  registryName: string | undefined;
  clock: Clock;
  random: Random;
  logger: Logger;
  /** What `manageSignals` runs once drained, unless the caller gives its own (the mesh's close). */
  close(options: { timeout: number }): Promise<void>;
}

export class Registrations {
  readonly #deps: RegistrationsDeps;
  #registrar: Registrar | undefined;
  #signalHandlers: Disposable[] = [];

  constructor(deps: RegistrationsDeps) {
    this.#deps = deps;
  }

  async register(registration: Registration, options: RegisterOptions): Promise<RegisteredInstance> {
    const { clock, logger, random } = this.#deps;
    if (this.#registrar === undefined) {
      const r = this.#deps.registries;
      if (r.consul) this.#registrar = createConsulRegistrar({ ...r.consul, clock, logger });
      else if (r.etcd) this.#registrar = createEtcdRegistrar({ ...r.etcd, clock, random, logger });
      else
        throw new MeshError(
          'MESH_CONFIG_INVALID',
          'MESH_REGISTRY: registration needs a shared registry that supports it (etcd or consul); none is configured',
          { details: { field: 'MESH_REGISTRY', value: this.#deps.registryName } },
        );
    }
    const closeTimeoutMs = options.closeTimeoutMs ?? 5000;
    if (!(closeTimeoutMs >= 0))
      throw new TypeError(
        `register: closeTimeoutMs must be a number ≥ 0, got ${String(options.closeTimeoutMs)}`,
      );
    const instance = await this.#registrar.register(registration);
    if (options.manageSignals) {
      this.#signalHandlers.push(
        manageSignals(instance, {
          drainMs: options.drainMs ?? 5000,
          // A body still streaming (server-sent events, a long poll) must not hold the exit forever.
          onDrained: options.onDrained ?? (() => this.#deps.close({ timeout: closeTimeoutMs })),
          clock,
          logger,
          ...(options.process ? { process: options.process } : {}),
          ...(options.exit ? { exit: options.exit } : {}),
        }),
      );
    }
    return instance;
  }

  /** Drop the signal handlers and leave the registry (a failure is logged, not thrown). */
  async close(): Promise<void> {
    for (const h of this.#signalHandlers) h.dispose();
    await this.#registrar?.close().catch((error: unknown) => {
      this.#deps.logger.warn('deregistration failed on close', { error });
    });
  }
}
