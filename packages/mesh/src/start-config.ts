/**
 * What `createMesh` reads and checks before anything starts (see {@link readStartConfig}); the
 * mesh (mesh.ts) wires its parts from it.
 */

import {
  type Clock,
  type Env,
  filterLogger,
  Issues,
  jsonLogger,
  type Logger,
  MeshError,
  noopLogger,
  type Random,
  safeLogger,
  systemClock,
  systemRandom,
} from '@proxyless/core';
import { createDocumentEndpointsResolver, type DocumentEndpointsResolver } from '@proxyless/discovery';
import { checkTelemetry, createTelemetry, type Telemetry } from '@proxyless/telemetry';
import type { MeshOptions } from './api.js';
import { type DocumentSource, openDocumentSource } from './config/document-source.js';
import { ownCopy } from './config/document-text.js';
import { ConfigStore, type Warning } from './config/store.js';
import { ROUTING_DC } from './config-apply.js';
import { allEnvVars } from './env-schema.js';
import { checkUnknownMeshVars, type MeshSettings, meshSettings } from './mesh-env.js';
import { type RegistrySettings, readRegistryEnv } from './resolvers.js';
import type { RoutingConfig } from './routing/index.js';
import { errorIssues, tryCompileFileEntries } from './routing-sources.js';

/** The checked configuration a mesh starts from. */
export interface StartConfig {
  readonly env: Env;
  readonly settings: MeshSettings;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  /** The policy layers from code and environment, with the document's first version swapped in. */
  readonly config: ConfigStore;
  readonly registries: RegistrySettings;
  /** The config document's source (the file, or the caller's `configSource`), opened. */
  readonly document: DocumentSource | undefined;
  readonly firstVersion: DocumentSource['first'] | undefined;
  /** The endpoints the document's first version lists, as a resolver. */
  readonly documentEndpoints: DocumentEndpointsResolver | undefined;
  /** Settings accepted that cannot work as written, reported once listeners can hear them. */
  readonly warnings: readonly Warning[] | undefined;
  /** The document's config entries, compiled. */
  readonly fileRouting: RoutingConfig | undefined;
  readonly telemetry: Telemetry;
}

/**
 * Everything `createMesh` reads and checks before it starts anything: its settings, the policy
 * layers from code and environment, the registry settings, the config document's first version
 * (validated whole, with its config entries) and the telemetry settings. One error lists every
 * problem; nothing is started when there is any (a document source opened for the check is
 * closed again).
 * @throws MeshError `MESH_CONFIG_INVALID`
 */
export function readStartConfig(options: MeshOptions): StartConfig {
  const env = options.env ?? process.env;
  const issues = new Issues();
  checkUnknownMeshVars(env, allEnvVars, issues);
  const settings = meshSettings(options, env, issues);
  // The checked ones: a refused clock, random or logger is not used while the rest is checked.
  const clock = settings.clock ?? systemClock;
  const random = settings.random ?? systemRandom;
  const level = settings.logLevel;
  // The application's logger never throws into the mesh (a call would be left unsettled, a config
  // version neither applied nor rejected): see safeLogger.
  const logger =
    settings.logger !== undefined
      ? safeLogger(settings.logger)
      : level && level !== 'silent'
        ? safeLogger(filterLogger(jsonLogger(), level))
        : noopLogger;

  // Policy layers from code and environment (static config sources), validated now: a bad value
  // fails createMesh.
  const config = ConfigStore.fromCodeAndEnv(options, env, issues);
  const layersOk = issues.ok;
  const registries = readRegistryEnv(env, settings.registry, issues);
  // The config document comes from a config source: the file, or the caller's `configSource`.
  // Its first version is validated whole, like the rest.
  let documentEndpoints: DocumentEndpointsResolver | undefined;
  let warnings: readonly Warning[] | undefined;
  const document = openDocumentSource(
    {
      configSource: options.configSource,
      configPath: settings.configFile,
      pathFromOptions: options.configFile !== undefined,
      clock: clock,
      logger: logger,
    },
    issues,
  );
  const own = document?.own ?? true;
  let firstVersion = document?.first;
  // Where the document's problems (`defaults.…`, `services.…`) come from, for the error's heading.
  let documentNamed = '';
  // A document whose reading throws (a getter, a revoked proxy, a cycle) is a problem of the
  // document, named as one, never an exception out of createMesh.
  let readable = true;
  // Whether the merged layers were checked with the document (then not again without it).
  let mergedChecked = false;
  // (The file's document is parsed JSON: only a caller's source can hand over such a document.)
  if (firstVersion !== undefined && document?.own === false) {
    try {
      // Read once, into the mesh's own copy: what is validated and kept (see `ownCopy`).
      firstVersion = { ...firstVersion, document: ownCopy(firstVersion.document) };
    } catch (error) {
      readable = false;
      const message = `the document cannot be read as JSON data: ${(error as Error | undefined)?.message ?? String(error)}`;
      issues.list.push({ field: 'document', expected: 'JSON data', value: undefined, message });
      if (document !== undefined)
        documentNamed = ` (document fields: ${document.what}, version ${firstVersion.version})`;
    }
  }
  if (document !== undefined && firstVersion !== undefined && readable) {
    const before = issues.list.length;
    // With the layers below already invalid, the document is still checked on its own (the
    // rules across layers need valid layers): one error lists every problem.
    const first = layersOk ? config.validate(firstVersion, document.what) : undefined;
    let ofDocument = true;
    if (first === undefined) issues.list.push(...config.documentIssues(firstVersion));
    else if (first instanceof MeshError) {
      issues.list.push(...(first.details.issues ?? []));
      // The layers were checked merged, the document's included: not once more without it below
      // (each problem would be listed twice). A document valid on its own over layers that fail
      // merged without it too is not what the problems belong to: the heading does not name it.
      mergedChecked = true;
      ofDocument = !config.failsWithoutDocument() || config.documentIssues(firstVersion).length > 0;
    } else {
      config.swap(first.layers, [], first.resolved);
      warnings = first.warnings;
      documentEndpoints = createDocumentEndpointsResolver({
        name: document.source.name,
        clock: clock,
        logger: logger,
        endpoints: first.layers.endpoints,
      });
    }
    if (issues.list.length > before && ofDocument)
      documentNamed = ` (document fields: ${document.what}, version ${firstVersion.version})`;
  }
  // Traffic management: the file's configEntries are validated with its first version.
  let fileRouting: RoutingConfig | undefined;
  if (firstVersion !== undefined && readable) {
    const r = tryCompileFileEntries(firstVersion.document, ROUTING_DC);
    if (r instanceof MeshError) issues.list.push(...errorIssues(r));
    else fileRouting = r;
  }
  // Without a valid document, the merged options and env layers are checked here (with one,
  // validate did).
  if (warnings === undefined && layersOk && !mergedChecked)
    warnings = config.check(undefined, issues).warnings;
  // Metrics, traces and the access log: no-ops unless configured (or an SDK is registered). Their
  // settings are checked with the rest, so one error lists every problem.
  const telemetryOptions = {
    settings: options.telemetry ?? {},
    env,
    clock: clock,
    logger: logger,
    ...(settings.metricsRegistry ? { registry: settings.metricsRegistry } : {}),
  };
  // A start that fails already only checks the telemetry settings: it creates no access-log file.
  const telemetry = issues.ok
    ? issues.try(() => createTelemetry(telemetryOptions))
    : void issues.try(() => checkTelemetry(telemetryOptions));
  if (!issues.ok || telemetry === undefined) {
    if (own) void document?.source.close();
    void telemetry?.close();
  }
  issues.throwIfAny(`invalid mesh configuration${documentNamed}`);
  if (telemetry === undefined) throw new Error('unreachable: telemetry failed without an issue');
  return {
    env,
    settings,
    clock,
    random,
    logger,
    config,
    registries,
    document,
    firstVersion,
    documentEndpoints,
    warnings,
    fileRouting,
    telemetry,
  };
}
