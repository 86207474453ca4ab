/**
 * The mesh's admin server: telemetry serves it, the mesh gives the views (services, readiness,
 * `/config_dump`). A server that fails to start is logged and reported, never thrown.
 */

import type { Clock, Logger, MeshError } from '@proxyless/core';
import { serviceView, type Telemetry } from '@proxyless/telemetry';
import type { Mesh } from './api.js';
import type { DestinationTable } from './destination-table.js';

export interface AdminDeps {
  telemetry: Telemetry;
  mesh: Pick<Mesh, 'services' | 'endpoints' | 'stats'>;
  /** The running service's name (`/config_dump`). */
  serviceName: string;
  destinations: DestinationTable;
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
        mesh.services().map((name) =>
          serviceView(name, {
            set: mesh.endpoints(name),
            stats: mesh.stats(name),
            now: clock.now(),
            connections: (id) => destinations.byService.get(name)?.connections(id),
          }),
        ),
      ready: deps.ready,
      configDump: () => ({
        ...(destinations.configDump(deps.serviceName) as Record<string, unknown>),
        document: deps.document(),
        routing: deps.routing(),
      }),
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
