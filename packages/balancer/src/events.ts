/**
 * What a balancer reports: its event listeners (subscription, delivery that survives a throwing
 * listener) and the log lines and events of its panic, locality and connectivity transitions.
 */
import type { Logger } from '@proxyless/core';
import type { ConnectivityState } from './connectivity.js';
import type { BalancerEvent } from './observe.js';

/** The listeners of one balancer's {@link BalancerEvent}s, and its transition reports. */
export class BalancerEvents {
  readonly #listeners = new Set<(event: BalancerEvent) => void>();
  readonly #service: string;
  readonly #logger: Logger;

  constructor(service: string, logger: Logger) {
    this.#service = service;
    this.#logger = logger;
  }

  /** Add `listener`; returns its unsubscribe function. */
  add(listener: (event: BalancerEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  emit(event: BalancerEvent): void {
    for (const l of this.#listeners) {
      try {
        l(event);
      } catch (error) {
        this.#logger.error('balancer: event listener threw', { service: this.#service, error });
      }
    }
  }

  clear(): void {
    this.#listeners.clear();
  }

  /** Traffic moved into (`local`) or out of the configured `zone`. */
  locality(local: boolean, zone: string): void {
    this.emit({
      type: local ? 'locality_restore' : 'locality_spill',
      service: this.#service,
      zone,
    });
    if (!local)
      this.#logger.info('balancer: spilling over to other zones', {
        service: this.#service,
        zone,
      });
  }

  /** Panic mode was entered (`panic`) or left, with `usable` of `total` reachable endpoints usable. */
  panic(panic: boolean, usable: number, total: number): void {
    const fields = { service: this.#service, usable, total };
    if (panic) this.#logger.warn('balancer: panic mode, balancing over all endpoints', fields);
    else this.#logger.info('balancer: left panic mode', fields);
    this.emit({ type: panic ? 'panic_enter' : 'panic_exit', ...fields });
  }

  /** The priority levels' shares of calls changed (a lower level lost or regained endpoints). */
  priorityLoad(priorities: readonly { readonly priority: number; readonly load: number }[]): void {
    const spilled = priorities.some((l, i) => i > 0 && l.load > 0);
    const fields = {
      service: this.#service,
      priorities: priorities.map((l) => `P${l.priority}:${l.load}%`).join(' '),
    };
    if (spilled) this.#logger.warn('balancer: spilling over to higher priority levels', fields);
    else this.#logger.info('balancer: traffic back on the first priority level', fields);
    this.emit({ type: 'priority_load', service: this.#service, priorities });
  }

  /** The maglev table has fewer entries than there are endpoints: some get no traffic. */
  tableTooSmall(endpoints: number, tableSize: number): void {
    this.#logger.warn(
      'balancer: loadBalancer.tableSize is below the number of endpoints, so some endpoints get no traffic; set a prime larger than the endpoints (maglev)',
      { service: this.#service, endpoints, tableSize },
    );
  }

  /** A connectivity transition of `endpoint`: an event, and a log line when picking changes. */
  connectivity(
    endpoint: string,
    from: ConnectivityState,
    to: ConnectivityState,
    reachableChanged: boolean,
    error: unknown,
  ): void {
    const code = errorCode(error);
    const fields = { service: this.#service, endpoint };
    if (reachableChanged) {
      if (to === 'TRANSIENT_FAILURE') {
        this.#logger.warn('balancer: connect failed, endpoint out of picking until it reconnects', {
          ...fields,
          error: code,
        });
      } else this.#logger.info('balancer: endpoint reconnected', fields);
    }
    this.emit({ type: 'connectivity', ...fields, from, to, ...(code === undefined ? {} : { error: code }) });
  }
}

/** A short name for a connect failure: the error's `code` (`ECONNREFUSED`, `UND_ERR_CONNECT_TIMEOUT`). */
function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  const cause = (error as { cause?: unknown }).cause;
  if (cause !== undefined && cause !== error) return errorCode(cause);
  const failure = (error as { failure?: unknown }).failure;
  return typeof failure === 'string' ? failure : undefined;
}
