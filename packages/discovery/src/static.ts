import {
  type Clock,
  createEndpoint,
  type Disposable,
  type Endpoint,
  type EndpointInit,
  Issues,
  type Resolver,
  type ResolverListener,
  systemClock,
} from '@proxyless/core';
import { parseEndpointList } from './endpoint-doc.js';
import { ResolverHub } from './hub.js';

export interface StaticResolverOptions {
  /**
   * Endpoints by service name: a `host:port[=weight],…` string, or a list whose items are each an
   * `EndpointInit` or one `host:port[=weight]` string.
   */
  services: Readonly<Record<string, readonly (EndpointInit | string)[] | string>>;
  clock?: Clock;
  /** Field path used in error messages. @defaultValue `options.services` */
  field?: string;
}

/**
 * A resolver over a fixed map of services, from code. Validates everything up front.
 *
 * @throws MeshError `MESH_CONFIG_INVALID` naming every bad endpoint by path and value.
 * @example
 * createStaticResolver({ services: { payments: '10.0.0.1:8080,10.0.0.2:8080=2' } })
 */
export function createStaticResolver(options: StaticResolverOptions): Resolver {
  const field = options.field ?? 'options.services';
  const issues = new Issues();
  const services = new Map<string, readonly Endpoint[]>();
  for (const [name, value] of Object.entries(options.services)) {
    const list = parseEndpointList(value, `${field}.${name}.endpoints`, issues);
    if (list) services.set(name.toLowerCase(), Object.freeze(list.map(createEndpoint)));
  }
  issues.throwIfAny('invalid static endpoints');
  return new FixedResolver('static', services, options.clock ?? systemClock);
}

/** A resolver whose answers never change (static and environment endpoints). */
export class FixedResolver implements Resolver {
  readonly name: string;
  readonly #services: ReadonlyMap<string, readonly Endpoint[]>;
  readonly #hub: ResolverHub;

  constructor(name: string, services: ReadonlyMap<string, readonly Endpoint[]>, clock: Clock) {
    this.name = name;
    this.#services = services;
    this.#hub = new ResolverHub({
      name,
      clock,
      start: (service, sink) => {
        sink.endpoints(this.#services.get(service) ?? []);
        return () => undefined;
      },
    });
  }

  match(host: string): string | undefined {
    return this.#services.has(host) ? host : undefined;
  }

  /** Service names this resolver knows. */
  serviceNames(): string[] {
    return [...this.#services.keys()];
  }

  watch(service: string, listener: ResolverListener): Disposable {
    return this.#hub.watch(service, listener);
  }

  close(): Promise<void> {
    return this.#hub.close();
  }
}
