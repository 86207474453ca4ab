import type { Clock, Endpoint, Random, Timer } from '@proxyless/core';
import type { EndpointState } from './state.js';

/**
 * Connectivity of one endpoint, as a gRPC subchannel has it
 * (https://github.com/grpc/grpc/blob/master/doc/connectivity-semantics-and-api.md).
 */
export type ConnectivityState = 'IDLE' | 'CONNECTING' | 'READY' | 'TRANSIENT_FAILURE';

/**
 * Open a connection to `endpoint` and close it again: resolve when the connection (and its TLS
 * handshake, if any) succeeded, reject otherwise. Must stop and reject when `signal` aborts.
 */
export type ConnectProbe = (endpoint: Endpoint, signal: AbortSignal) => Promise<void>;

/**
 * Reconnect backoff, by gRPC's connection backoff algorithm
 * (https://github.com/grpc/grpc/blob/master/doc/connection-backoff.md), with the bounds of
 * Linkerd's proxy by default ({@link DEFAULT_CONNECT_BACKOFF}).
 */
export interface ConnectBackoffConfig {
  /** Wait after the first failure before the first reconnect attempt, ms. @defaultValue 100 */
  readonly initialMs: number;
  /** Factor applied to the backoff after each failed attempt. @defaultValue 1.6 */
  readonly multiplier: number;
  /** Randomisation of each backoff after the first, ± this fraction. @defaultValue 0.2 */
  readonly jitter: number;
  /** Upper bound of the backoff, ms. @defaultValue 500 */
  readonly maxMs: number;
  /** Least time a reconnect attempt is given before it counts as failed, ms. @defaultValue 5000 */
  readonly minConnectTimeoutMs: number;
}

/**
 * The defaults: an unreachable endpoint is tried again 100 ms after its connect failed, then at
 * most 500 ms apart (Linkerd's proxy: `LINKERD2_PROXY_OUTBOUND_CONNECT_BACKOFF` 100 ms..500 ms),
 * so an endpoint that comes back takes traffic again within about half a second however long it
 * was away. Growth (×1.6) and jitter (±20 %) are gRPC's; a reconnect attempt gets 5 s to connect
 * (Consul's default `ConnectTimeout`).
 */
export const DEFAULT_CONNECT_BACKOFF: ConnectBackoffConfig = Object.freeze({
  initialMs: 100,
  multiplier: 1.6,
  jitter: 0.2,
  maxMs: 500,
  minConnectTimeoutMs: 5000,
});

/**
 * gRPC's own parameters (1 s initial, ×1.6, ±20 % jitter, 120 s cap, 20 s minimum connect
 * timeout), for a caller that wants a gRPC channel's pacing. After a long outage they leave an
 * endpoint that is back out of picking for up to the cap (a 20 s outage: 7 s more).
 */
export const GRPC_CONNECT_BACKOFF: ConnectBackoffConfig = Object.freeze({
  initialMs: 1000,
  multiplier: 1.6,
  jitter: 0.2,
  maxMs: 120_000,
  minConnectTimeoutMs: 20_000,
});

/**
 * Connectivity settings of a balancer given in code (`createBalancer`): `waitForReady` here wins
 * over the config's `loadBalancer.waitForReady`.
 */
export interface ConnectivitySettings {
  /**
   * Wait (within the call's deadline) for an endpoint to become usable instead of failing with
   * `MESH_NO_HEALTHY_ENDPOINTS`, as gRPC's `waitForReady`. A call overrides it with the
   * `waitForReady` call attribute. @defaultValue false
   */
  readonly waitForReady?: boolean;
  /**
   * Reconnect backoff; wins over the config's `loadBalancer.connectBackoff`, field by field (each
   * field not set in either is {@link DEFAULT_CONNECT_BACKOFF}'s).
   */
  readonly connectBackoff?: Partial<ConnectBackoffConfig>;
}

/** What the tracker needs from its balancer. */
export interface ConnectivityDeps {
  clock: Clock;
  random: Random;
  probe: ConnectProbe;
  backoff: ConnectBackoffConfig;
  /** `s` moved `from` → `to`; `reachableChanged` when it entered or left picking. */
  onTransition(
    s: EndpointState,
    from: ConnectivityState,
    to: ConnectivityState,
    reachableChanged: boolean,
    error: unknown,
  ): void;
}

/**
 * The connectivity state machine of every endpoint of one balancer:
 *
 * ```
 * IDLE ──attempt──▶ CONNECTING ──connected / response──▶ READY ──disconnected──▶ IDLE
 *   │                   │                                  │
 *   └──── connect failure (any state) ──▶ TRANSIENT_FAILURE ◀┘
 *                  ▲                          │ backoff elapsed
 *                  └──── probe failed ── CONNECTING (probe; still unpickable) ──ok──▶ READY
 * ```
 *
 * An endpoint is unpickable from its connect failure until a connection succeeds again (gRPC's
 * "sticky TRANSIENT_FAILURE": the CONNECTING of a reconnect does not make it pickable).
 */
export class ConnectivityTracker {
  readonly #deps: ConnectivityDeps;
  readonly #timers = new Map<EndpointState, Timer>();
  /** The running probe of each endpoint, with the timer that bounds it. */
  readonly #probes = new Map<EndpointState, { controller: AbortController; timeout: Timer }>();
  #closed = false;

  constructor(deps: ConnectivityDeps) {
    this.#deps = deps;
  }

  /** An attempt was dispatched: an idle endpoint is now connecting (the pool opens a connection). */
  attemptStarted(s: EndpointState): void {
    if (s.connectivity === 'IDLE') this.#move(s, 'CONNECTING', undefined);
  }

  /** A response arrived: the endpoint has a working connection, unless it is recovering from a failure. */
  responded(s: EndpointState): void {
    if (s.reachable && s.connectivity !== 'READY') this.#move(s, 'READY', undefined);
  }

  /** A connection succeeded (reported by the mesh, or by a probe). */
  connected(s: EndpointState): void {
    if (this.#closed) return;
    this.#stop(s);
    s.backoffMs = 0;
    s.lastConnectError = undefined;
    // Only a change of pickability rebuilds the picker (a rebuild restarts round-robin order).
    const wasReachable = s.reachable;
    s.reachable = true;
    if (s.connectivity !== 'READY') this.#move(s, 'READY', undefined, !wasReachable);
  }

  /** Every connection closed without error: the endpoint stays pickable, and connects on demand. */
  disconnected(s: EndpointState): void {
    if (s.reachable && s.connectivity === 'READY') this.#move(s, 'IDLE', undefined);
  }

  /**
   * A connect failed. The first failure takes the endpoint out of picking and schedules the first
   * reconnect after exactly `initialMs`; failures reported while it is already failing (other
   * attempts that were in flight) change nothing: the probe decides.
   */
  connectFailed(s: EndpointState, error: unknown): void {
    if (this.#closed) return;
    // The same failed connect, reported again (by the attempt and by the pool): counted once.
    if (error !== undefined && error === s.lastConnectError) return;
    s.lastConnectError = error;
    s.connectFailures++;
    if (!s.reachable) return;
    s.reachable = false;
    s.backoffMs = this.#deps.backoff.initialMs;
    this.#move(s, 'TRANSIENT_FAILURE', error, true);
    this.#schedule(s, this.#deps.backoff.initialMs);
  }

  /** Clock time of the next reconnect attempt, when one is scheduled. */
  nextAttemptAt(s: EndpointState): number | undefined {
    return this.#timers.has(s) ? s.nextAttemptAt : undefined;
  }

  /** `s` left the endpoint set: stop its timer and probe. */
  remove(s: EndpointState): void {
    this.#stop(s);
  }

  close(): void {
    this.#closed = true;
    for (const t of this.#timers.values()) t.cancel();
    for (const p of this.#probes.values()) {
      p.timeout.cancel();
      p.controller.abort();
    }
    this.#timers.clear();
    this.#probes.clear();
  }

  #move(s: EndpointState, to: ConnectivityState, error: unknown, reachableChanged = false): void {
    const from = s.connectivity;
    s.connectivity = to;
    this.#deps.onTransition(s, from, to, reachableChanged, error);
  }

  #stop(s: EndpointState): void {
    this.#timers.get(s)?.cancel();
    this.#timers.delete(s);
    const p = this.#probes.get(s);
    if (p) {
      p.timeout.cancel();
      p.controller.abort();
      this.#probes.delete(s);
    }
  }

  #schedule(s: EndpointState, delay: number): void {
    const now = this.#deps.clock.now();
    s.nextAttemptAt = now + delay;
    this.#timers.set(
      s,
      this.#deps.clock.setTimer(delay, () => this.#attempt(s)),
    );
  }

  /**
   * One reconnect attempt (gRPC's `ConnectWithBackoff` loop body): the next attempt is due
   * `backoff × multiplier ± jitter` after this one *starts*; the attempt gets until then, and at
   * least `minConnectTimeoutMs`, to connect. A failure waits out the rest of that interval.
   */
  #attempt(s: EndpointState): void {
    this.#timers.delete(s);
    if (this.#closed || s.reachable) return;
    const { clock, random, backoff } = this.#deps;
    const started = clock.now();
    const next = Math.min(s.backoffMs * backoff.multiplier, backoff.maxMs);
    s.backoffMs = next;
    const deadline = started + next + (random.next() * 2 - 1) * backoff.jitter * next;
    const controller = new AbortController();
    const timeout = clock.setTimer(Math.max(deadline - started, backoff.minConnectTimeoutMs), () =>
      controller.abort(Object.assign(new Error('connect probe timed out'), { code: 'ETIMEDOUT' })),
    );
    const running = { controller, timeout };
    this.#probes.set(s, running);
    this.#move(s, 'CONNECTING', undefined);
    const settle = (error: unknown, ok: boolean): void => {
      timeout.cancel();
      // Superseded: the endpoint was removed, reconnected by real traffic, or the balancer closed.
      if (this.#probes.get(s) !== running || this.#closed) return;
      this.#probes.delete(s);
      if (ok) {
        this.connected(s);
        return;
      }
      s.connectFailures++;
      this.#move(s, 'TRANSIENT_FAILURE', error);
      this.#schedule(s, Math.max(deadline - clock.now(), 0));
    };
    let probing: Promise<void>;
    try {
      probing = this.#deps.probe(s.endpoint, controller.signal);
    } catch (error) {
      probing = Promise.reject(error);
    }
    probing.then(
      () => (controller.signal.aborted ? settle(controller.signal.reason, false) : settle(undefined, true)),
      (error: unknown) => settle(error, false),
    );
  }
}

/** Resolve a partial backoff config (given in code) over the config's (or the defaults). */
export function resolveConnectBackoff(
  partial: Partial<ConnectBackoffConfig> | undefined,
  base: ConnectBackoffConfig = DEFAULT_CONNECT_BACKOFF,
): ConnectBackoffConfig {
  return partial === undefined ? base : { ...base, ...partial };
}
