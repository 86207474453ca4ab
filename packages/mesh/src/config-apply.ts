/**
 * Configuration applied to a running mesh: each new version of the config document (validated
 * whole, then swapped in at once, or rejected), the warnings of a configuration, and the config
 * entries (traffic management) from the file, etcd and Consul.
 */

import {
  type Clock,
  configError,
  type Disposable,
  type Emitter,
  issuesError,
  type Logger,
  MeshError,
  type Random,
} from '@proxyless/core';
import type { DocumentEndpointsResolver } from '@proxyless/discovery';
import type { MeshEvent } from './api.js';
import { documentText, ownCopy, textOrUndefined, unreadable } from './config/document-text.js';
import type { ConfigSource, ConfigVersion } from './config/source.js';
import type { ConfigStore } from './config/store.js';
import { ConfigWarnings } from './config/warnings.js';
import type { DestinationTable } from './destination-table.js';
import type { RegistrySettings } from './resolvers.js';
import type { RoutingConfig } from './routing/index.js';
import {
  ConsulChains,
  entriesOf,
  entriesVersion,
  errorIssues,
  startEtcdEntries,
  tryCompileFileEntries,
} from './routing-sources.js';
import type { RoutingStage } from './routing-stage.js';
import { RoutingStatus } from './routing-status.js';
import { targetIdOf } from './routing-targets.js';

/** Datacenter file and etcd config entries are compiled for (target IDs name it). */
export const ROUTING_DC = 'dc1';

/** What applying configuration needs from the mesh that owns it. */
export interface ConfigApplierDeps {
  config: ConfigStore;
  /** The config document's source (the file or a `configSource`), when there is one. */
  source: ConfigSource | undefined;
  /** What messages call it: `config file <path>`, `config source <name>`. */
  what: string;
  /**
   * The source is the mesh's own file: its documents are parsed JSON (no getters, no cycles) that
   * nothing changes after delivery, so they are not read again as text unless compared.
   */
  ownSource: boolean;
  documentEndpoints: DocumentEndpointsResolver | undefined;
  routing: RoutingStage;
  destinations: DestinationTable;
  events: Emitter<MeshEvent>;
  clock: Clock;
  random: Random;
  logger: Logger;
  /** Whether the mesh is closing: a new document version is ignored then. */
  closing(): boolean;
}

/** Applies each configuration change to a running mesh: document versions, warnings, config entries. */
export class ConfigApplier {
  readonly #deps: ConfigApplierDeps;
  // ---- traffic management (routing-stage.ts, routing-sources.ts) ----
  #consulChains: ConsulChains | undefined;
  #etcdEntries: Disposable | undefined;
  #fileEntriesVersion: string | undefined;
  #routingStatus: RoutingStatus | undefined;
  // ---- end traffic management ----
  /** The warnings of the configuration in force, each reported once. */
  readonly warnings: ConfigWarnings;

  /** `fileRouting`: the config entries of the file's first version, validated with it. */
  constructor(
    deps: ConfigApplierDeps,
    fileRouting: RoutingConfig | undefined,
    /** The source's version in force at start, as read once by `createMesh`. */
    first: ConfigVersion | undefined,
  ) {
    this.#deps = deps;
    this.warnings = new ConfigWarnings(deps.logger, deps.events);
    if (deps.source && first) {
      this.#inForce = {
        source: first.source,
        version: first.version,
        document: first.document,
        text: deps.ownSource ? undefined : textOrUndefined(first.document),
      };
      deps.routing.setConfig('file', fileRouting);
      this.#fileEntriesVersion = entriesVersion(entriesOf(first.document));
    }
  }

  /**
   * The version in force, as JSON text with its keys sorted: a redelivery of its version is told
   * from a new content whatever the order of its keys (a source rebuilding it from a listing), and
   * a source that changes the object it delivered changes nothing here.
   */
  #inForce: { source: string; version: number; document: unknown; text: string | undefined } | undefined;

  /**
   * Whether the latest rejection is only of a version out of order (a late retransmission) while
   * what the source holds now is the version in force: nothing the source holds was rejected.
   */
  outdatedOnly(source: { current(): { version: number } }): boolean {
    if (this.lastRejectionKind !== 'outdated') return false;
    try {
      return source.current().version === this.#deps.config.document?.version;
    } catch {
      return false;
    }
  }

  /** The version in force as sorted JSON text (computed when first needed for the file's). */
  #inForceText(): string | undefined {
    const f = this.#inForce;
    if (f === undefined) return undefined;
    f.text ??= textOrUndefined(f.document);
    return f.text;
  }
  /** Why the latest outcome was rejected: a version, a failed read, or a failed `reload()` call. */
  lastRejectionKind: 'version' | 'outdated' | 'failure' | 'reload' | undefined;
  /** The last version (or read) of the source rejected since the one in force was applied. */
  #lastRejected: { version?: number; message: string; at: string } | undefined;
  /**
   * Outcomes so far, for `mesh.reloadConfig()`: every version or failed read handled is counted,
   * and `lastRejection` is the error of the latest when that one was rejected (else `undefined`).
   */
  outcomes = 0;
  lastRejection: MeshError | undefined;

  /**
   * The admin's view of the document: its source, the version in force, and the last version the
   * source gave that was rejected since (the last good one stays in force), with why.
   */
  documentStatus(): Record<string, unknown> | null {
    const source = this.#deps.source?.name;
    const inForce = this.#deps.config.document?.version;
    if (source === undefined && inForce === undefined) return null;
    return {
      ...(source !== undefined ? { source, what: this.#deps.what } : {}),
      version: inForce ?? null,
      stale: this.#stale,
      ...(this.#lastRejected !== undefined ? { lastRejected: this.#lastRejected } : {}),
    };
  }

  /**
   * A `reload()` that had failed succeeded, with nothing new: the source is reachable again, and
   * the version in force is still its latest. Its failure is over: the endpoint sets it marked
   * stale are fresh again.
   */
  reloadRecovered(): void {
    if (this.lastRejectionKind !== 'reload') return;
    this.lastRejection = undefined;
    this.lastRejectionKind = undefined;
    const f = this.#inForce;
    if (!this.#stale || f === undefined) return;
    const text = this.#deps.ownSource ? undefined : this.#inForceText();
    this.#refreshEndpoints({
      source: f.source,
      version: f.version,
      document: text === undefined ? f.document : (JSON.parse(text) as unknown),
    });
  }

  /** A version arriving while one is being applied (a listener of its events pushed it): next. */
  #pending: ConfigVersion[] = [];
  /** The source failed since its last good version: the document's endpoint sets are marked stale. */
  #stale = false;

  #refreshEndpoints(version: ConfigVersion): void {
    const result = this.#deps.config.validate(version, this.#deps.what);
    if (result instanceof MeshError) return;
    this.#deps.documentEndpoints?.apply(result.layers.endpoints);
    this.#stale = false;
  }
  #applying = false;

  // ---- configuration from the config document -------------------------------------------------

  /**
   * A new document version: validated whole (merged rules included) before anything changes; then
   * swapped in at once, and only the destinations whose sections changed are rebuilt. A rejected
   * version leaves the last good one in force and is reported as `config_rejected`.
   */
  apply(version: ConfigVersion): void {
    // One version at a time, in order: a version pushed from a listener of the previous one's
    // events waits until that one is fully applied (its warnings included).
    if (this.#applying) {
      this.#pending.push(version);
      return;
    }
    this.#applying = true;
    try {
      this.#apply(version);
      for (let next = this.#pending.shift(); next !== undefined; next = this.#pending.shift())
        this.#apply(next);
    } finally {
      this.#applying = false;
      this.#pending = [];
    }
  }

  #apply(version: ConfigVersion): void {
    if (this.#deps.closing()) return;
    // Handled without a rejection unless `reject()` below says otherwise.
    this.outcomes++;
    this.lastRejection = undefined;
    this.lastRejectionKind = undefined;
    const { config, destinations, logger, events } = this.#deps;
    // A caller's source: its document read whole once, as JSON data. One whose reading throws (a
    // getter, a revoked proxy, a cycle) is a rejected version like any other, never an exception
    // in the source's hands; the text kept tells a later redelivery even if the source has since
    // changed the object it delivered. (The file's documents are parsed JSON, never changed.)
    let text: string | undefined;
    if (!this.#deps.ownSource) {
      try {
        // Read once, into the mesh's own copy: what is validated, kept and shown from now on.
        version = { ...version, document: ownCopy(version.document) };
        text = documentText(version.document);
      } catch (error) {
        this.reject(unreadable(this.#deps.what, version.version, error), version.version);
        return;
      }
    }
    // A source's versions only increase (ConfigVersion): an older or repeated number is refused,
    // not applied over a newer configuration.
    const inForce = config.document?.version;
    // The version in force delivered again (a source reconnecting): nothing to do.
    if (
      inForce !== undefined &&
      version.version === inForce &&
      (text ?? textOrUndefined(version.document)) === this.#inForceText()
    ) {
      // The version in force delivered again (a source reconnecting after a failure): the source is
      // good again, so endpoint sets its failure marked stale are fresh again.
      if (this.#stale) this.#refreshEndpoints(version);
      return;
    }
    if (inForce !== undefined && version.version <= inForce) {
      this.reject(
        configError(
          `${this.#deps.what}: version`,
          `a version newer than ${inForce}, the one in force (a source's versions only increase)`,
          version.version,
        ),
        version.version,
        false,
        'outdated',
      );
      return;
    }
    let result: ReturnType<ConfigStore['validate']>;
    let entriesKey: string | undefined;
    let routing: RoutingConfig | MeshError | undefined;
    try {
      result = config.validate(version, this.#deps.what);
      // Traffic management: the document's configEntries are part of the version, checked with it,
      // so that one rejection lists every problem of both.
      entriesKey = entriesVersion(entriesOf(version.document));
      routing =
        entriesKey === this.#fileEntriesVersion
          ? undefined
          : tryCompileFileEntries(version.document, ROUTING_DC);
    } catch (error) {
      this.reject(unreadable(this.#deps.what, version.version, error), version.version);
      return;
    }
    if (result instanceof MeshError && routing instanceof MeshError) {
      this.reject(
        issuesError(`${this.#deps.what} (version ${version.version})`, [
          ...errorIssues(result),
          ...errorIssues(routing),
        ]),
        version.version,
      );
      return;
    }
    if (result instanceof MeshError) {
      this.reject(result, version.version);
      return;
    }
    if (routing instanceof MeshError) {
      this.reject(routing, version.version);
      return;
    }
    const changed = config.swap(result.layers, destinations.byService.keys(), result.resolved);
    this.#inForce = { source: version.source, version: version.version, document: version.document, text };
    if (entriesKey !== this.#fileEntriesVersion) {
      this.#deps.routing.setConfig('file', routing);
      this.#fileEntriesVersion = entriesKey;
    }
    // Diff before build: a destination builds only the parts whose settings changed (nothing when none did).
    const rebuilt = new Map<string, readonly string[]>();
    for (const [key, d] of destinations.targets) {
      const parts = d.refreshPolicy();
      const id = targetIdOf(key);
      if (parts.length > 0) rebuilt.set(id, [...new Set([...(rebuilt.get(id) ?? []), ...parts])]);
    }
    logger.info(`${this.#deps.what} applied`, {
      version: version.version,
      services: result.layers.services.size,
    });
    this.#deps.documentEndpoints?.apply(result.layers.endpoints);
    this.#stale = false;
    // A service the document no longer names (and no other registry knows) is no service any more.
    destinations.dropUnnamed();
    // The version's endpoints reach the destinations now, with its policy: a call made before
    // `config_applied` (or in one of its listeners, or after the source's `update()` returns) sees
    // one version whole, never the new policy with the old endpoints.
    this.#deps.documentEndpoints?.flush();
    // `changed` and `rebuilt` speak of live services: one just removed had its `service_removed`,
    // and no other event of it follows until it is named again — nor of its routing targets.
    const liveTargets = new Set([...destinations.targets.keys()].map(targetIdOf));
    for (const id of [...rebuilt.keys()]) {
      if (!liveTargets.has(id) && !destinations.byService.has(id)) rebuilt.delete(id);
    }
    for (const service of [...changed.keys()]) {
      const d = destinations.byService.get(service);
      if (d === undefined) {
        changed.delete(service);
        rebuilt.delete(service);
        continue;
      }
      const parts = d.refreshPolicy();
      if (parts.length > 0) rebuilt.set(service, parts);
    }
    this.#lastRejected = undefined;
    events.fire({
      type: 'config_applied',
      source: version.source,
      version: version.version,
      changed,
      rebuilt,
    });
    this.warnings.report(result.warnings);
  }

  /**
   * Report a rejected version (`version`: when the document was read; a file that cannot be read
   * has none). `kind`: a version, a failed read (the source's `onError`), or a failed `reload()`.
   */
  reject(
    error: MeshError,
    version?: number,
    stale = true,
    kind: 'version' | 'outdated' | 'failure' | 'reload' = version === undefined ? 'failure' : 'version',
  ): void {
    if (this.#deps.closing()) return;
    this.#deps.logger.warn(`${this.#deps.what} rejected; keeping the last good configuration`, {
      error,
      ...(version !== undefined ? { version } : {}),
    });
    // A source that cannot give a good version may be out of date: its endpoint sets are marked
    // stale. A version that is only out of order says nothing of the one in force.
    if (stale && this.#deps.documentEndpoints !== undefined) {
      this.#deps.documentEndpoints.fail(error);
      this.#deps.documentEndpoints.flush();
      this.#stale = true;
    }
    this.outcomes++;
    this.lastRejection = error;
    this.lastRejectionKind = kind;
    this.#lastRejected = {
      ...(version !== undefined ? { version } : {}),
      message: error.message,
      at: new Date(this.#deps.clock.wallNow?.() ?? Date.now()).toISOString(),
    };
    const source = this.#deps.source?.name;
    this.#deps.events.fire({
      type: 'config_rejected',
      error,
      ...(source ? { source } : {}),
      ...(version !== undefined ? { version } : {}),
    });
  }

  // ---- traffic management: sources --------------------------------------------------------------

  /** `/config_dump`'s `routing`: etcd's config entries and Consul's chains (see {@link RoutingStatus}). */
  routingStatus(): Record<string, unknown> {
    return this.#routingStatus?.view() ?? {};
  }

  startRoutingSources(registries: RegistrySettings): void {
    const { clock, logger } = this.#deps;
    const status = new RoutingStatus(clock);
    this.#routingStatus = status;
    const events = status.sourceEvents((event) => this.#deps.events.fire(event), logger);
    const deps = { stage: this.#deps.routing, events, clock, logger };
    // MESH_ETCD_CONFIG_PREFIX=off: routing comes from the file (and code) alone.
    if (registries.etcd && registries.etcd.configPrefix !== false)
      this.#etcdEntries = startEtcdEntries(registries.etcd, {
        ...deps,
        random: this.#deps.random,
        datacenter: ROUTING_DC,
      });
    if (registries.consul) this.#consulChains = new ConsulChains(registries.consul, deps);
  }

  /** Start watching a service's chain in Consul (when Consul is a source of config entries). */
  watchChain(service: string): void {
    this.#consulChains?.watch(service);
  }

  /** Stop watching a service's chain (its destination was released). */
  unwatchChain(service: string): void {
    this.#consulChains?.unwatch(service);
    // Its status in /config_dump goes with it: thousands of mistyped hosts must not stay listed.
    this.#routingStatus?.forget(service);
  }

  /** Stop every source of config entries (the mesh is closing). */
  async stopRoutingSources(): Promise<void> {
    await this.#consulChains?.close();
    this.#etcdEntries?.dispose();
  }
  // ---- end traffic management ----
}
