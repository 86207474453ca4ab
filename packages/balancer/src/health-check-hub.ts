import type { Clock, Endpoint, Logger, Random } from '@proxyless/core';
import type { HealthCheckConfig } from './config.js';
import { HealthChecker, type HealthProbe } from './health-check.js';

/** What a balancer holds instead of a checker of its own: the same three calls. */
export interface HealthCheckLease {
  /** Track exactly these endpoints for this holder (others' endpoints stay probed for them). */
  sync(endpoints: readonly Endpoint[]): void;
  /** The shared verdict for `id` (true when unknown). */
  isHealthy(id: string): boolean;
  /** Stop tracking; the last holder of a service's checker stops its probes and timers. */
  close(): void;
}

/** Dependencies shared by every checker of a hub. */
export interface HealthCheckHubDeps {
  clock: Clock;
  random: Random;
  logger: Logger;
}

interface Holder {
  ids: Set<string>;
  onChange(id: string, healthy: boolean): void;
  onPass: ((id: string) => void) | undefined;
}

/** One service's checker for one health-check config, shared by the balancers over it. */
class Group {
  readonly checker: HealthChecker;
  readonly holders = new Set<Holder>();
  /** Endpoint id → how many holders track it, and the endpoint as last synced. */
  readonly tracked = new Map<string, { endpoint: Endpoint; count: number }>();

  constructor(service: string, config: HealthCheckConfig, probe: HealthProbe, deps: HealthCheckHubDeps) {
    this.checker = new HealthChecker(config, {
      service,
      clock: deps.clock,
      random: deps.random,
      logger: deps.logger,
      probe,
      onChange: (id, healthy) => {
        for (const h of this.holders) if (h.ids.has(id)) h.onChange(id, healthy);
      },
      onPass: (id) => {
        for (const h of this.holders) if (h.ids.has(id)) h.onPass?.(id);
      },
    });
  }

  /**
   * The checker this one replaces (the same service's, under the settings before a change): its
   * verdicts seed this one's endpoints, so a changed `interval` does not make a failing endpoint
   * healthy again for `unhealthyThreshold` probes.
   */
  seed: HealthChecker | undefined;

  resync(): void {
    const seed = this.seed;
    this.checker.sync(
      [...this.tracked.values()].map((t) => t.endpoint),
      seed === undefined ? undefined : (id) => seed.verdict(id),
    );
  }
}

/**
 * Active health checks shared per service and health-check config: every balancer over a service's
 * endpoints (the service's own, and the destinations of its routing targets and subsets) reads one
 * checker, so each endpoint is probed once per interval however many destinations use it, and a
 * balancer rebuilt for another reason (a new `loadBalancer` policy) keeps the endpoints' verdicts.
 * Envoy keeps a host's health-check state across cluster updates in the same way.
 */
export class HealthCheckHub {
  readonly #deps: HealthCheckHubDeps;
  readonly #groups = new Map<string, Group>();
  /** The checker leased last per service: a checker for new settings takes its verdicts over. */
  readonly #latest = new Map<string, Group>();

  constructor(deps: HealthCheckHubDeps) {
    this.#deps = deps;
  }

  /** The number of checkers running (one per service and config in use). */
  get size(): number {
    return this.#groups.size;
  }

  lease(
    service: string,
    config: HealthCheckConfig,
    probe: HealthProbe,
    onChange: (id: string, healthy: boolean) => void,
    /** Every probe `id` passes (outlier detection readmits an ejected endpoint on it). */
    onPass?: (id: string) => void,
  ): HealthCheckLease {
    const key = `${service}\0${JSON.stringify(config)}`;
    let group = this.#groups.get(key);
    if (group === undefined || !probesAlike(group, probe)) {
      // A holder with a probe of its own (tests inject one) gets a checker of its own.
      if (group !== undefined) return standalone(service, config, probe, this.#deps, onChange, onPass);
      group = new Group(service, config, probe, this.#deps);
      group.seed = this.#latest.get(service)?.checker;
      probes.set(group, probe);
      this.#groups.set(key, group);
    }
    const g = group;
    this.#latest.set(service, g);
    const holder: Holder = { ids: new Set(), onChange, onPass };
    g.holders.add(holder);
    let closed = false;
    return {
      sync: (endpoints) => {
        if (closed) return;
        const next = new Set<string>();
        let changed = false;
        for (const e of endpoints) {
          next.add(e.id);
          const t = g.tracked.get(e.id);
          if (t === undefined) {
            g.tracked.set(e.id, { endpoint: e, count: 1 });
            changed = true;
          } else {
            if (t.endpoint !== e) {
              t.endpoint = e;
              changed = true;
            }
            if (!holder.ids.has(e.id)) t.count++;
          }
        }
        for (const id of holder.ids) if (!next.has(id)) changed = release(g, id) || changed;
        holder.ids = next;
        if (changed) g.resync();
      },
      isHealthy: (id) => g.checker.isHealthy(id),
      close: () => {
        if (closed) return;
        closed = true;
        g.holders.delete(holder);
        let changed = false;
        for (const id of holder.ids) changed = release(g, id) || changed;
        holder.ids = new Set();
        if (g.holders.size === 0) {
          g.checker.close();
          if (this.#groups.get(key) === g) this.#groups.delete(key);
          if (this.#latest.get(service) === g) this.#latest.delete(service);
          // A checker that replaced this one has its verdicts by now (seeded at its first sync).
          for (const other of this.#groups.values()) if (other.seed === g.checker) other.seed = undefined;
        } else if (changed) g.resync();
      },
    };
  }
}

const probes = new WeakMap<Group, HealthProbe>();

function probesAlike(group: Group, probe: HealthProbe): boolean {
  return probes.get(group) === probe;
}

/** Drop one holder's interest in `id`; true when no holder tracks it any more. */
function release(g: Group, id: string): boolean {
  const t = g.tracked.get(id);
  if (t === undefined) return false;
  if (--t.count > 0) return false;
  g.tracked.delete(id);
  return true;
}

function standalone(
  service: string,
  config: HealthCheckConfig,
  probe: HealthProbe,
  deps: HealthCheckHubDeps,
  onChange: (id: string, healthy: boolean) => void,
  onPass: ((id: string) => void) | undefined,
): HealthCheckLease {
  return new HealthChecker(config, { service, ...deps, probe, onChange, ...(onPass ? { onPass } : {}) });
}
