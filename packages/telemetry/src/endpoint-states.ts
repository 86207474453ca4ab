import { unreachable } from './views.js';

/** The states `mesh_endpoints` counts, in the order an endpoint is classified. */
export const ENDPOINT_STATES = ['healthy', 'degraded', 'unhealthy', 'unreachable', 'ejected'] as const;
export type EndpointStateName = (typeof ENDPOINT_STATES)[number];

/** What one balancer event says of an endpoint, as far as its counted state goes. */
interface EndpointEvent {
  readonly type: string;
  readonly endpoint?: string;
  readonly healthy?: boolean;
  readonly to?: string;
}

/** One endpoint as the balancer's stats give it. */
interface EndpointView {
  readonly id: string;
  readonly ejected: boolean;
  readonly checkHealthy?: boolean;
  readonly connectivity?: string;
  readonly reachable?: boolean;
}

/**
 * The state of each endpoint of one service, as the balancer sees it: the registry's health from
 * the endpoint set, and the balancer's own verdicts (ejection, active health check, reachability)
 * from its events, or read again whole from its stats when a new balancer takes over.
 */
export class EndpointStates {
  #ids: string[] | undefined;
  readonly #health = new Map<string, string>();
  readonly #ejected = new Set<string>();
  /** Failing the active health check: not picked outside panic. */
  readonly #checkFailing = new Set<string>();
  /** Last connect failed, not connected since: never picked. */
  readonly #unreachable = new Set<string>();

  /** Whether an endpoint set was seen (before it, there is nothing to count). */
  get known(): boolean {
    return this.#ids !== undefined;
  }

  /** A new endpoint set: registry health, and verdicts of endpoints no longer in it dropped. */
  setEndpoints(endpoints: readonly { readonly id: string; readonly health?: string }[]): void {
    this.#health.clear();
    for (const e of endpoints) this.#health.set(e.id, e.health ?? 'passing');
    this.#ids = [...this.#health.keys()];
    for (const ids of [this.#ejected, this.#checkFailing, this.#unreachable])
      for (const id of ids) if (!this.#health.has(id)) ids.delete(id);
  }

  /** A balancer event; true when an endpoint's counted state may have changed. */
  onEvent(e: EndpointEvent): boolean {
    const id = e.endpoint;
    if (id === undefined) return false;
    switch (e.type) {
      case 'eject':
        this.#ejected.add(id);
        return true;
      case 'readmit':
        this.#ejected.delete(id);
        return true;
      case 'health_check':
        if (e.healthy === false) this.#checkFailing.add(id);
        else this.#checkFailing.delete(id);
        return true;
      case 'connectivity': {
        // Out of picking from a connect failure until a connection succeeds again: the
        // CONNECTING of a reconnect probe does not make it reachable (sticky TRANSIENT_FAILURE).
        const before = this.#unreachable.size;
        if (e.to === 'TRANSIENT_FAILURE') this.#unreachable.add(id);
        else if (e.to === 'READY' || e.to === 'IDLE') this.#unreachable.delete(id);
        return this.#unreachable.size !== before;
      }
      default:
        return false;
    }
  }

  /** The balancer in force (maybe a new one): its view replaces what earlier events left. */
  resetFrom(endpoints: readonly EndpointView[]): void {
    this.#ejected.clear();
    this.#checkFailing.clear();
    this.#unreachable.clear();
    for (const e of endpoints) {
      if (e.ejected) this.#ejected.add(e.id);
      if (e.checkHealthy === false) this.#checkFailing.add(e.id);
      if (unreachable(e)) this.#unreachable.add(e.id);
    }
  }

  /**
   * Each endpoint counts once, by the first that applies: ejected (outlier detection), unreachable
   * (connect failed, not reconnected), unhealthy (registry critical or failing its active health
   * check), degraded (registry warning), healthy — the balancer's view, as `/clusters` shows it.
   */
  counts(): Record<EndpointStateName, number> {
    const counts = { healthy: 0, degraded: 0, unhealthy: 0, unreachable: 0, ejected: 0 };
    for (const id of this.#ids ?? []) {
      if (this.#ejected.has(id)) counts.ejected++;
      else if (this.#unreachable.has(id)) counts.unreachable++;
      else {
        const h = this.#health.get(id);
        if (h === 'critical' || this.#checkFailing.has(id)) counts.unhealthy++;
        else if (h === 'warning') counts.degraded++;
        else counts.healthy++;
      }
    }
    return counts;
  }
}
