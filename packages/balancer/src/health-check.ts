import { type Clock, type Endpoint, type Logger, type Random, requestUrl, type Timer } from '@proxyless/core';
import type { HealthCheckConfig } from './config.js';

/**
 * One active health probe: resolve `true` when the endpoint answered healthy. Rejections and
 * `false` count as failures. The checker enforces `timeout` itself and aborts `signal` then.
 */
export type HealthProbe = (endpoint: Endpoint, path: string, signal: AbortSignal) => Promise<boolean>;

/**
 * The default probe: `GET http://address:port/path` with undici; any 2xx is healthy. The body is
 * discarded.
 */
export const httpHealthProbe: HealthProbe = async (endpoint, path, signal) => {
  const host = endpoint.address.includes(':') ? `[${endpoint.address}]` : endpoint.address;
  const res = await requestUrl(`http://${host}:${endpoint.port}${path}`, {
    method: 'GET',
    signal,
    headers: { 'user-agent': 'proxyless-health-check' },
  });
  await res.body.dump();
  return res.statusCode >= 200 && res.statusCode < 300;
};

interface Target {
  endpoint: Endpoint;
  healthy: boolean;
  passes: number;
  fails: number;
  timer: Timer | undefined;
  controller: AbortController | undefined;
  /** Bumped on every probe and on stop, so late answers are ignored. */
  generation: number;
  stopped: boolean;
}

/** Dependencies of a {@link HealthChecker}. */
export interface HealthCheckerDeps {
  service: string;
  clock: Clock;
  random: Random;
  logger: Logger;
  probe: HealthProbe;
  /** Called when an endpoint's verdict flips. */
  onChange(id: string, healthy: boolean): void;
  /** Called at every probe an endpoint passes (after `onChange`, when that pass flipped it). */
  onPass?(id: string): void;
}

/**
 * Active health checking: probes each endpoint every `interval` (+ random `jitter`), marks it
 * unhealthy after `unhealthyThreshold` consecutive failures and healthy again after
 * `healthyThreshold` consecutive passes. New endpoints start healthy and are probed at once.
 * All timing runs on the injected clock.
 */
export class HealthChecker {
  readonly #config: HealthCheckConfig;
  readonly #deps: HealthCheckerDeps;
  readonly #targets = new Map<string, Target>();
  #closed = false;

  constructor(config: HealthCheckConfig, deps: HealthCheckerDeps) {
    this.#config = config;
    this.#deps = deps;
  }

  /**
   * Track exactly these endpoints: start probing new ones, stop removed ones. A new endpoint starts
   * healthy, or with the verdict `initial` gives for it (a checker taking over from another).
   */
  sync(endpoints: readonly Endpoint[], initial?: (id: string) => boolean | undefined): void {
    if (this.#closed) return;
    const seen = new Set<string>();
    for (const e of endpoints) {
      seen.add(e.id);
      const t = this.#targets.get(e.id);
      if (t) {
        t.endpoint = e;
        continue;
      }
      const target: Target = {
        endpoint: e,
        healthy: initial?.(e.id) ?? true,
        passes: 0,
        fails: 0,
        timer: undefined,
        controller: undefined,
        generation: 0,
        stopped: false,
      };
      this.#targets.set(e.id, target);
      this.#schedule(target, 0);
    }
    for (const [id, t] of this.#targets) {
      if (!seen.has(id)) {
        this.#stop(t);
        this.#targets.delete(id);
      }
    }
  }

  /** The verdict for `id` (true when unknown). */
  isHealthy(id: string): boolean {
    return this.#targets.get(id)?.healthy ?? true;
  }

  /** The verdict for `id`, undefined when it is not tracked. */
  verdict(id: string): boolean | undefined {
    return this.#targets.get(id)?.healthy;
  }

  #schedule(t: Target, delay: number): void {
    if (t.stopped || this.#closed) return;
    t.timer = this.#deps.clock.setTimer(delay, () => {
      t.timer = undefined;
      this.#probe(t);
    });
  }

  #nextDelay(): number {
    const { interval, jitter } = this.#config;
    return interval + (jitter > 0 ? Math.floor(this.#deps.random.next() * jitter) : 0);
  }

  #probe(t: Target): void {
    if (t.stopped || this.#closed) return;
    const generation = ++t.generation;
    const controller = new AbortController();
    t.controller = controller;
    let settled = false;
    const settle = (ok: boolean): void => {
      if (settled || t.generation !== generation || t.stopped) return;
      settled = true;
      timeout.cancel();
      t.controller = undefined;
      this.#record(t, ok);
      this.#schedule(t, this.#nextDelay());
    };
    const timeout = this.#deps.clock.setTimer(this.#config.timeout, () => {
      settle(false);
      controller.abort();
    });
    let result: Promise<boolean>;
    try {
      result = this.#deps.probe(t.endpoint, this.#config.path, controller.signal);
    } catch {
      result = Promise.resolve(false);
    }
    result.then(
      (ok) => settle(ok === true),
      () => settle(false),
    );
  }

  #record(t: Target, ok: boolean): void {
    if (ok) {
      t.fails = 0;
      t.passes++;
      if (!t.healthy && t.passes >= this.#config.healthyThreshold) this.#flip(t, true);
      this.#deps.onPass?.(t.endpoint.id);
    } else {
      t.passes = 0;
      t.fails++;
      if (t.healthy && t.fails >= this.#config.unhealthyThreshold) this.#flip(t, false);
    }
  }

  #flip(t: Target, healthy: boolean): void {
    t.healthy = healthy;
    const fields = { service: this.#deps.service, endpoint: t.endpoint.id };
    if (healthy) this.#deps.logger.info('health check: endpoint healthy again', fields);
    else this.#deps.logger.warn('health check: endpoint unhealthy', fields);
    this.#deps.onChange(t.endpoint.id, healthy);
  }

  #stop(t: Target): void {
    t.stopped = true;
    t.generation++;
    t.timer?.cancel();
    t.timer = undefined;
    t.controller?.abort();
    t.controller = undefined;
  }

  /** Stop every probe and timer. */
  close(): void {
    this.#closed = true;
    for (const t of this.#targets.values()) this.#stop(t);
    this.#targets.clear();
  }
}
