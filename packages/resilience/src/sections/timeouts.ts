import { Duration, envVar, parseDuration, type Static, Type } from '@proxyless/core';

const OFF_WORDS = [Type.Literal(false), Type.Literal('off'), Type.Literal('none')];

/**
 * `timeout`: the overall deadline of a call, all attempts included. Off by default: a default
 * must never cut a streaming body (a download, server-sent events, a long poll), and Istio leaves
 * route timeouts disabled by default for the same reason. Set it per service.
 */
export const timeoutSection = Type.Union([Duration(), ...OFF_WORDS], {
  expected: 'a duration (e.g. 250ms, 5s, 1m30s or plain milliseconds), or false/"off"/"none" for none',
  default: 'off',
  description:
    'Overall deadline of a call, all attempts included. Off by default: a default must never cut a streaming body (Istio disables route timeouts by default too). `0`, `false`, `"off"` or `"none"` for none (0 disables it, as in Envoy).',
  ...envVarFor(
    'MESH_TIMEOUT',
    'Overall deadline of a call, all attempts included. Off unless set (a default must never cut a streaming body). `0`, `off`, `none`, `false`, `no` or `disabled` for none.',
  ),
});

/** `perTryTimeout`: the deadline of each attempt; a timed-out attempt may be retried elsewhere. */
export const perTryTimeoutSection = Type.Union([Duration(), ...OFF_WORDS], {
  expected: 'a duration (e.g. 250ms, 5s, 1m30s or plain milliseconds), or false/"off"/"none" for none',
  default: 'off',
  description:
    'Deadline of each attempt; a timed-out attempt may be retried elsewhere. `0`, `false`, `"off"` or `"none"` for none.',
  ...envVarFor(
    'MESH_PER_TRY_TIMEOUT',
    'Deadline of each attempt; a timed-out attempt may be retried elsewhere. `0`, `off`, `none`, `false`, `no` or `disabled` for none.',
  ),
});

/**
 * `connectTimeout`: how long a new connection to an endpoint may take to open. Envoy's cluster
 * `connect_timeout` and Consul's service-resolver `ConnectTimeout` default to 5 s (Istio: 10 s,
 * Linkerd: 1 s); undici's own default is 10 s.
 */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;

export const connectTimeoutSection = Duration({
  min: 1,
  default: DEFAULT_CONNECT_TIMEOUT_MS,
  description:
    'How long a new connection to an endpoint may take to open; past it the attempt fails as a connect failure (retried as `connect-failure`) and the endpoint leaves picking until it reconnects (Envoy’s cluster `connect_timeout`, Consul’s `ConnectTimeout`: 5 s). A routing target keeps its service-resolver’s `ConnectTimeout`.',
  ...envVar(
    'MESH_CONNECT_TIMEOUT',
    'How long a new connection to an endpoint may take to open (`connectTimeout`).',
    { type: 'duration ≥ 1ms', defaultValue: '5s' },
  ),
});

function envVarFor(name: string, description: string) {
  return envVar(name, description, { type: 'duration | off', defaultValue: 'off' });
}

/** A timeout value as written. */
export type TimeoutOptions = Static<typeof timeoutSection>;

/** A validated timeout value → milliseconds (0 = none). */
export function timeoutMs(v: TimeoutOptions): number {
  return v === false || v === 'off' || v === 'none' ? 0 : parseDuration(v, '');
}
