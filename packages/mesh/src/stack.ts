/**
 * The mesh's call stack: one entry per role, outermost first. This table is the one place that
 * says in which order the stages of a destination see a call (Finagle's role-named `Stack`); the
 * destination folds the entries whose stage is on, and the pick stage is always innermost.
 */
import type { Interceptor } from '@proxyless/core';
import { POLICY_ROLES, type PolicyRole } from '@proxyless/resilience';

/** The roles of the mesh's call stack, outermost first (`pick` is the terminal stage under them). */
export type StackRole = 'telemetry' | PolicyRole | 'telemetryAttempt';

/** What a destination builds its stack from. */
export interface StackParts {
  /** The policy stages built from the destination's config, by role (`retry`, `circuitBreaker`, …). */
  readonly policy: ReadonlyMap<string, Interceptor>;
  /** The call's and each attempt's telemetry, when telemetry is on. */
  readonly telemetry: { readonly call: Interceptor; readonly attempt: Interceptor } | undefined;
}

/** One role of the stack: its interceptor for a destination, or `undefined` when the role is off. */
export interface StackEntry {
  readonly role: StackRole;
  readonly create: (parts: StackParts) => Interceptor | undefined;
}

const policy =
  (role: StackRole) =>
  (parts: StackParts): Interceptor | undefined =>
    parts.policy.get(role);

/**
 * Outermost first. Telemetry sees the whole call (its duration and access-log line end with the
 * body); the policy stages follow in their one order ({@link POLICY_ROLES}: the deadline covers
 * every attempt, fault injection and the limits act once per call, retry and hedge make attempts,
 * the breaker and the per-try timeout see each attempt); the attempt's telemetry sees each attempt
 * as sent; the pick stage under them chooses the endpoint and sends.
 */
export const MESH_STACK: readonly StackEntry[] = [
  { role: 'telemetry', create: (p) => p.telemetry?.call },
  ...POLICY_ROLES.map((role): StackEntry => ({ role, create: policy(role) })),
  { role: 'telemetryAttempt', create: (p) => p.telemetry?.attempt },
];

/** The stages in force for one destination, outermost first, with their roles. */
export interface BuiltStack {
  readonly roles: readonly StackRole[];
  readonly interceptors: readonly Interceptor[];
}

/**
 * Fold {@link MESH_STACK} over a destination's parts. A policy stage whose role the table does not
 * know is a programming error: every stage must have its place in the one order.
 */
export function buildStack(parts: StackParts): BuiltStack {
  const known = new Set<string>(MESH_STACK.map((e) => e.role));
  for (const role of parts.policy.keys()) {
    if (!known.has(role)) throw new TypeError(`policy stage "${role}" has no place in MESH_STACK`);
  }
  const roles: StackRole[] = [];
  const interceptors: Interceptor[] = [];
  for (const entry of MESH_STACK) {
    const interceptor = entry.create(parts);
    if (interceptor === undefined) continue;
    roles.push(entry.role);
    interceptors.push(interceptor);
  }
  return { roles, interceptors };
}
