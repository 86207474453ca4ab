import type { EndpointSet } from './endpoint.js';
import type { MeshError } from './errors.js';
import type { Disposable } from './events.js';

/**
 * What a resolver tells its watchers. Failure is data, not a throw: `error` updates carry the
 * last known good set (marked stale) when there is one, so callers keep routing.
 */
export type ResolverUpdate =
  | { readonly kind: 'endpoints'; readonly set: EndpointSet }
  | { readonly kind: 'error'; readonly error: MeshError; readonly lastGood: EndpointSet | undefined };

export type ResolverListener = (update: ResolverUpdate) => void;

/**
 * Turns a logical service name into a stream of endpoint sets.
 *
 * Contract (as grpc-js resolvers):
 * - `watch` never calls the listener synchronously; the first update arrives on a later tick.
 * - No listener call after its `Disposable` is disposed or after `close()`.
 * - A failed refresh never replaces a non-empty good set with an empty one: it sends an `error`
 *   update carrying the last good set, marked stale. An empty answer from a healthy source is
 *   applied as an `endpoints` update (the service really has no endpoints).
 * - Watches of the same service share one upstream watch.
 */
export interface Resolver {
  /** `static`, `env`, `file`, `dns`, `consul`, `etcd`. */
  readonly name: string;
  /**
   * Whether this resolver answers for `host` (a URL host name, lower-cased, no port), and under
   * which service name. Returns `undefined` for hosts it does not know; those pass through.
   */
  match(host: string): string | undefined;
  watch(service: string, listener: ResolverListener): Disposable;
  /**
   * A hint that a watched service's endpoints may have moved: a connect to one of them failed (its
   * address may be gone). A resolver that polls (DNS) looks up again soon, never more often than
   * its shortest refresh interval, as gRPC re-resolves when a subchannel fails; one that is told
   * of every change (Consul, etcd, the file) need not implement it.
   */
  refresh?(service: string): void;
  /** Stop every watch and release resources. Idempotent; later calls return the same promise. */
  close(): Promise<void>;
}

/** An instance the running service registers for itself. */
export interface Registration {
  service: string;
  id?: string;
  address: string;
  port: number;
  tags?: readonly string[];
  metadata?: Readonly<Record<string, string>>;
  weights?: { passing: number; warning: number };
  zone?: string;
  check?: HealthCheckDefinition;
}

export type HealthCheckDefinition =
  | { kind: 'http'; url: string; intervalMs: number; timeoutMs: number; deregisterAfterMs?: number }
  | { kind: 'tcp'; address: string; intervalMs: number; timeoutMs: number; deregisterAfterMs?: number }
  | { kind: 'ttl'; ttlMs: number; deregisterAfterMs?: number };

/** Registers instances with a registry and removes them on `close()`. */
export interface Registrar {
  readonly name: string;
  register(registration: Registration): Promise<RegisteredInstance>;
  close(): Promise<void>;
}

export interface RegisteredInstance {
  readonly id: string;
  /** Mark the instance as failing (before draining) where the registry supports it. */
  markUnhealthy(note?: string): Promise<void>;
  deregister(): Promise<void>;
}
