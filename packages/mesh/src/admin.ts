/**
 * The mesh's admin server: telemetry serves it, the mesh gives the views (services, readiness,
 * `/config_dump`). A server that fails to start is logged and reported, never thrown.
 */

import type { Clock, Logger, MeshError } from '@proxyless/core';
import { type ServiceView, serviceView, type TargetView, type Telemetry } from '@proxyless/telemetry';
import type { Mesh } from './api.js';
import type { ConfigStore } from './config/store.js';
import type { Destination } from './destination.js';
import type { DestinationTable } from './destination-table.js';
import { chainDump } from './routing/dump.js';
import { targetIdOf } from './routing-targets.js';

export interface AdminDeps {
  telemetry: Telemetry;
  mesh: Pick<Mesh, 'services' | 'endpoints' | 'stats' | 'routes'>;
  /** The running service's name (`/config_dump`). */
  serviceName: string;
  destinations: DestinationTable;
  /** The config layers (`/config_dump`: the settings in force per service and where each came from). */
  config: ConfigStore;
  /** The config document's source, version in force and last rejected version (`/config_dump`). */
  document(): Record<string, unknown> | null;
  /** The sources of config entries: versions in force, failures, last rejected (`/config_dump`). */
  routing(): Record<string, unknown>;
  clock: Clock;
  logger: Logger;
  ready(): boolean;
  /** The admin server failed to start (an `admin_failed` event). */
  onFailure(error: MeshError): void;
}

/** Start the admin server when `MESH_ADMIN_PORT` (or options) set a port; its URL, or undefined. */
export function startMeshAdmin(deps: AdminDeps): Promise<string | undefined> {
  const { telemetry, mesh, destinations, clock } = deps;
  if (telemetry.config.admin.port === undefined) return Promise.resolve(undefined);
  return telemetry
    .startAdmin({
      services: () =>
        mesh.services().map((name) => {
          const stats = mesh.stats(name);
          const view = serviceView(name, {
            set: mesh.endpoints(name),
            stats,
            now: clock.now(),
            connections: (id) => destinations.serviceDestination(name)?.connections(id),
          });
          const targets = targetViews(mesh, destinations, name, stats?.targets, clock.now());
          return targets === undefined ? view : { ...view, targets };
        }),
      ready: deps.ready,
      configDump: () => configDump(deps),
    })
    .then(
      (server) => server?.url,
      (error: unknown) => {
        deps.logger.error('admin server failed to start', { error });
        deps.onFailure(error as MeshError);
        return undefined;
      },
    );
}

/**
 * The routing targets of a routed service as the admin server lists them: each target's
 * destination (the first built for its ID; a config version that redefines its subset or load
 * balancer builds another, over the same endpoints, while the old one drains), with the stats
 * `mesh.stats(name).targets` gives and the open connections of every destination of that ID.
 */
function targetViews(
  mesh: Pick<Mesh, 'routes'>,
  destinations: DestinationTable,
  name: string,
  stats: NonNullable<ReturnType<Mesh['stats']>>['targets'],
  now: number,
): TargetView[] | undefined {
  const chain = mesh.routes(name);
  if (chain === undefined || stats === undefined) return undefined;
  const byId = new Map<string, Destination[]>();
  for (const [key, d] of destinations.targets) {
    const id = targetIdOf(key);
    byId.set(id, [...(byId.get(id) ?? []), d]);
  }
  const out: TargetView[] = [];
  for (const [id, targetStats] of Object.entries(stats)) {
    const target = chain.targets.get(id);
    if (target === undefined) continue;
    const built = byId.get(id) ?? [];
    const view: ServiceView = serviceView(id, {
      set: built[0]?.endpointSet,
      stats: targetStats,
      now,
      connections: (endpoint) => {
        let sum: number | undefined;
        for (const d of built) {
          const n = d.connections(endpoint);
          if (n !== undefined) sum = (sum ?? 0) + n;
        }
        return sum;
      },
    });
    out.push({ ...view, service: target.service, ...(target.subset ? { subset: target.subset } : {}) });
  }
  return out;
}

/**
 * The admin `/config_dump`: for every service a layer names or that has a live destination, the
 * settings in force, the layer and version each came from, its warnings and — once built (its own
 * destination, or for a service reached only through routes its routing target of the whole
 * service) — its stages; for a service with a routing chain, the chain (Envoy's route config);
 * the config document's status and the sources of config entries.
 */
function configDump(deps: AdminDeps): unknown {
  const { config, destinations, mesh } = deps;
  const names = [...new Set([...config.serviceNames(), ...destinations.services()])].sort();
  const services: Record<string, unknown> = {};
  for (const name of names) {
    const c = config.effective(name);
    const d = destinations.serviceDestination(name);
    const chain = mesh.routes(name);
    services[name] = {
      live: d !== undefined,
      ...(d ? { roles: [...d.roles, 'pick'] } : {}),
      balancer: c.balancer,
      resilience: c.resilience,
      sources: c.sources,
      warnings: c.warnings,
      ...(chain !== undefined ? { routes: chainDump(chain) } : {}),
    };
  }
  return {
    service: deps.serviceName,
    document: deps.document(),
    services,
    routing: deps.routing(),
  };
}
