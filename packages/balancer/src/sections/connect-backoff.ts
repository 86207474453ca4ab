/**
 * `loadBalancer.connectBackoff`: the pacing of the reconnect attempts of an endpoint whose connect
 * failed (TRANSIENT_FAILURE). Defaults: {@link DEFAULT_CONNECT_BACKOFF} (Linkerd's bounds, gRPC's
 * growth and jitter).
 */
import {
  Duration,
  durationMsOrUndefined,
  envVar,
  Fields,
  foreignNames,
  type Issues,
  parseDuration,
  type Static,
  Type,
} from '@proxyless/core';
import { type ConnectBackoffConfig, DEFAULT_CONNECT_BACKOFF } from '../connectivity.js';

const CB = DEFAULT_CONNECT_BACKOFF;

export const connectBackoffSchema = Fields(
  {
    initial: Type.Optional(
      Duration({
        min: 1,
        default: CB.initialMs,
        description:
          'Wait between an endpoint’s connect failure and its first reconnect attempt; it takes no traffic until one connects (Linkerd: 100 ms).',
        ...envVar(
          'MESH_LB_CONNECT_BACKOFF_INITIAL',
          'First reconnect attempt this long after an endpoint’s connect failed (`loadBalancer.connectBackoff.initial`).',
          { type: 'duration ≥ 1ms', defaultValue: '100ms' },
        ),
      }),
    ),
    max: Type.Optional(
      Duration({
        min: 1,
        default: CB.maxMs,
        description:
          'Cap of the growing wait between two reconnect attempts, at least `initial`; the jitter applies after it, as in gRPC (± 20 % by default: 400–600 ms apart at the default cap): an endpoint that is back takes traffic again within about this long, however long it was away (Linkerd: 500 ms; gRPC: 120 s).',
        ...envVar(
          'MESH_LB_CONNECT_BACKOFF_MAX',
          'Cap of the wait between two reconnect attempts of an unreachable endpoint, before the jitter (`loadBalancer.connectBackoff.max`).',
          { type: 'duration ≥ 1ms', defaultValue: '500ms' },
        ),
      }),
    ),
    multiplier: Type.Optional(
      Type.Number({
        minimum: 1,
        maximum: 10,
        default: CB.multiplier,
        description: 'Growth of the wait after each failed attempt (gRPC: 1.6).',
      }),
    ),
    jitter: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 1,
        default: CB.jitter,
        description: 'Each wait after the first is randomised by ± this fraction (gRPC: 0.2).',
      }),
    ),
    minConnectTimeout: Type.Optional(
      Duration({
        min: 1,
        default: CB.minConnectTimeoutMs,
        description:
          'Least time a reconnect attempt is given to connect, when the next attempt is due sooner (gRPC’s MIN_CONNECT_TIMEOUT; Consul’s ConnectTimeout default: 5 s).',
      }),
    ),
  },
  foreignNames({
    initialBackoff: { use: 'initial', from: "gRPC's grpc.initial_reconnect_backoff_ms" },
    maxBackoff: { use: 'max', from: "gRPC's grpc.max_reconnect_backoff_ms" },
    min: { use: 'initial', from: "Linkerd's connect backoff min" },
  }),
);

/** `connectBackoff` as written. */
export type ConnectBackoffOptions = Static<typeof connectBackoffSchema>;

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** A validated `connectBackoff` object → its patch (milliseconds). */
export function connectBackoffPatch(doc: ConnectBackoffOptions): Partial<Mutable<ConnectBackoffConfig>> {
  const { initial, max, multiplier, jitter, minConnectTimeout } = doc;
  const c: Partial<Mutable<ConnectBackoffConfig>> = {};
  if (initial !== undefined) c.initialMs = parseDuration(initial, '');
  if (max !== undefined) c.maxMs = parseDuration(max, '');
  if (multiplier !== undefined) c.multiplier = multiplier;
  if (jitter !== undefined) c.jitter = jitter;
  if (minConnectTimeout !== undefined) c.minConnectTimeoutMs = parseDuration(minConnectTimeout, '');
  return c;
}

/** `initial` ≤ `max` within one object (across layers: `resolveBalancerPatches`). */
export function connectBackoffRules(raw: unknown, path: string, issues: Issues): void {
  if (typeof raw !== 'object' || raw === null) return;
  const { initial, max } = raw as { initial?: unknown; max?: unknown };
  const lo = durationMsOrUndefined(initial);
  const hi = durationMsOrUndefined(max);
  if (lo !== undefined && hi !== undefined && hi < lo)
    issues.add(`${path}.max`, `at least connectBackoff.initial (${String(initial)})`, max);
}
