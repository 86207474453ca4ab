/**
 * The events telemetry records, typed by structure only, so this package never imports the mesh:
 * the mesh's own `MeshEvent` values are assignable to {@link TelemetryEvent} as they are, and the
 * few kinds the mesh does not emit yet (`config_applied`) are plain object literals.
 */

/** An error as telemetry reads it: a stable code (a `MeshError`'s, or undici's `UND_ERR_*`). */
export interface ErrorLike {
  readonly code?: string;
  readonly message?: string;
  readonly details?: Readonly<Record<string, unknown>>;
}

/** An endpoint as telemetry reads it. */
export interface EndpointLike {
  readonly id: string;
  readonly address: string;
  readonly port: number;
  readonly health?: 'passing' | 'warning' | 'critical';
}

/** An endpoint set as telemetry reads it (the shape of core's `EndpointSet`). */
export interface EndpointSetLike {
  readonly version: number;
  readonly source: string;
  readonly endpoints: readonly EndpointLike[];
  readonly updatedAt: number;
  readonly stale: boolean;
  readonly staleSince?: number;
}

/** A balancer event (panic, locality, outlier ejection/readmission, health check). */
export interface BalancerEventLike {
  readonly type: string;
  readonly endpoint?: string;
  readonly reason?: string;
  readonly durationMs?: number;
  readonly healthy?: boolean;
  /** A `connectivity` event's new state (`IDLE`, `CONNECTING`, `READY`, `TRANSIENT_FAILURE`). */
  readonly to?: string;
  /** A `connectivity` event's state before. */
  readonly from?: string;
  /** A `connectivity` event's failure (an `E*` / `UND_ERR_*` code). */
  readonly error?: string;
}

/** Circuit-breaker states, Envoy's and opossum's words. */
export type BreakerState = 'closed' | 'open' | 'half-open';

/** Something the mesh reports, as telemetry consumes it. */
export type TelemetryEvent =
  /** A setting is accepted but cannot work as written (shown in `/events`, not counted). */
  | {
      readonly type: 'config_warning';
      readonly service: string | undefined;
      readonly issue: { readonly field: string; readonly message?: string; readonly expected?: string };
    }
  /** A config version was refused (the last good one stays). */
  | {
      readonly type: 'config_rejected';
      readonly error: ErrorLike;
      /** Where the rejected version came from (`file`, `etcd`, `consul`), when known. */
      readonly source?: string;
      readonly version?: number;
      /** Consul: the service whose discovery chain was rejected. */
      readonly service?: string;
    }
  /**
   * A config version was validated and applied. `version` counts within its `source` only (the
   * file's own count, an etcd revision, a Consul index); without a source it is the config file's.
   * `service`: Consul's discovery chains are one per service, each with its own index.
   */
  | {
      readonly type: 'config_applied';
      readonly version: number;
      readonly source?: string;
      readonly service?: string;
    }
  /** A source of config entries could not be read; the last good version stays in force. */
  | {
      readonly type: 'config_source_error';
      readonly source: string;
      readonly error: ErrorLike;
      readonly service?: string;
    }
  | { readonly type: 'resolver_error'; readonly service: string; readonly error: ErrorLike }
  /** `target`: a routing target's subset of the service's endpoints (not the service's own set). */
  | {
      readonly type: 'endpoints_changed';
      readonly service: string;
      readonly set: EndpointSetLike;
      readonly target?: string;
    }
  /** `target`: a service subset's routing target (its ID), whose destination's balancer this is. */
  | {
      readonly type: 'balancer';
      readonly service: string;
      readonly event: BalancerEventLike;
      readonly target?: string;
    }
  /** `target`: a service subset's routing target (its ID), whose destination's breaker this is. */
  | {
      readonly type: 'circuit_breaker';
      readonly service: string;
      readonly state: BreakerState;
      readonly target?: string;
    }
  /** The admin server could not listen: reported, never counted as a rejected config version. */
  | { readonly type: 'admin_failed'; readonly error: ErrorLike }
  /** The destination was removed (config change): its series are dropped. */
  | { readonly type: 'service_removed'; readonly service: string };

/** The source a `config_applied` without one names: the config file (the mesh's first version). */
export const DEFAULT_CONFIG_SOURCE = 'file';

/**
 * One event of a call as the resilience stages emit it through `ctx.observer` (core's
 * `CallEvent`): `retry`, `give_up`, `hedge`, `timeout`, `fault`, `circuit_open`, `rejected`, …
 */
export interface CallEventLike {
  readonly type: string;
  readonly at: number;
  readonly attempt: number;
  readonly endpoint?: string;
  readonly status?: number;
  readonly code?: string;
  readonly reason?: string;
  readonly delayMs?: number;
}

/**
 * The leading token of a `give_up` reason: the retry stage writes `"<why> (<retry reason>)"`,
 * with `why` one of `max_retries`, `budget_exhausted`, `retry_overflow`, `deadline`, … .
 */
export function giveUpCause(reason: string | undefined): string | undefined {
  if (reason === undefined) return undefined;
  const space = reason.indexOf(' ');
  return space === -1 ? reason : reason.slice(0, space);
}

/** The stable code of an error: a `MeshError`'s, an undici `UND_ERR_*`, a syscall's (`ECONNREFUSED`). */
export function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}
