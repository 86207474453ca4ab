/** Test helpers for resolvers: a resolver whose answers a test pushes by hand. */
import {
  type Clock,
  createEndpoint,
  type Disposable,
  type EndpointInit,
  type MeshError,
  type Resolver,
  type ResolverListener,
  systemClock,
} from '@proxyless/core';
import { ResolverHub, type WatchSink } from './hub.js';

/** A resolver driven by the test: `set('api', [...])`, `fail('api', error)`. */
export interface ManualResolver extends Resolver {
  set(service: string, endpoints: readonly EndpointInit[]): void;
  fail(service: string, error: MeshError): void;
}

export function manualResolver(
  options: { name?: string; clock?: Clock; services?: readonly string[] } = {},
): ManualResolver {
  const sinks = new Map<string, WatchSink>();
  const pending = new Map<string, readonly EndpointInit[]>();
  const known = new Set(options.services ?? []);
  const hub = new ResolverHub({
    name: options.name ?? 'manual',
    clock: options.clock ?? systemClock,
    start: (service, sink) => {
      sinks.set(service, sink);
      const p = pending.get(service);
      if (p) sink.endpoints(p.map(createEndpoint));
      return () => sinks.delete(service);
    },
  });
  return {
    name: options.name ?? 'manual',
    match: (host) => (known.has(host) ? host : undefined),
    watch: (service: string, listener: ResolverListener): Disposable => hub.watch(service, listener),
    close: () => hub.close(),
    set(service, endpoints) {
      known.add(service);
      pending.set(service, endpoints);
      sinks.get(service)?.endpoints(endpoints.map(createEndpoint));
    },
    fail(service, error) {
      sinks.get(service)?.error(error);
    },
  };
}
