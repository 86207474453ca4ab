import { type ConfigIssue, Issues, issuesError, MeshError } from '@proxyless/core';
import { resolveTelemetryConfig } from '@proxyless/telemetry';
import { allEnvVars } from '../env-schema.js';
import { ROUTING_DC } from '../mesh.js';
import { checkUnknownMeshVars, meshSettings } from '../mesh-env.js';
import { readRegistryEnv } from '../resolvers.js';
import { errorIssues, tryCompileFileEntries } from '../routing-sources.js';
import type { PolicyOptions, ServiceOptions } from './schema.js';
import { ConfigStore } from './store.js';

/** A setting accepted that cannot work as written, for one service (`undefined`: every other). */
export type ConfigWarning = ConfigIssue & { readonly service: string | undefined };

/** Options of {@link checkConfigDocument}: the layers below the document, as `createMesh` takes them. */
export interface CheckConfigOptions {
  /** Where `MESH_*` variables are read from: every one is checked as `createMesh` checks it. @defaultValue `{}` (none) */
  env?: Readonly<Record<string, string | undefined>>;
  defaults?: PolicyOptions;
  services?: Readonly<Record<string, ServiceOptions>>;
}

/**
 * Check a config document as `createMesh` checks each version of `MESH_CONFIG_FILE`, without
 * starting anything: every section, endpoint list and config entry, then the layers of every
 * service merged (built-in defaults → `defaults` → env → document `defaults` → `services[s]` →
 * document `services[s]`). For a CI step that vets a document before it is deployed.
 *
 * @returns the warnings (settings accepted that cannot work as written)
 * @throws MeshError `MESH_CONFIG_INVALID` listing every problem by path and value, as the mesh
 * reports a rejected version.
 */
export function checkConfigDocument(document: unknown, options: CheckConfigOptions = {}): ConfigWarning[] {
  const issues = new Issues();
  const env = options.env ?? {};
  // Every MESH_* variable, as createMesh checks them: an unknown name, a bad registry, admin or
  // telemetry setting fails the check as it would fail the mesh's start.
  checkUnknownMeshVars(env, allEnvVars, issues);
  // The document checked is the config file (`MESH_REGISTRY=file` has one to read).
  const settings = meshSettings({ configFile: env.MESH_CONFIG_FILE ?? 'the document checked' }, env, issues);
  readRegistryEnv(env, settings.registry, issues);
  issues.try(() => resolveTelemetryConfig({}, env));
  const store = ConfigStore.fromCodeAndEnv(options, env, issues);
  issues.throwIfAny('invalid mesh configuration');
  const version = { source: 'file', version: 1, document } as const;
  let what = 'config document';
  let checked = store.validate(version, what);
  if (checked instanceof MeshError && store.documentIssues(version).length === 0) {
    // A document valid on its own over options or variables that fail merged without it too:
    // the problems are theirs, and the heading does not name the document.
    if (store.failsWithoutDocument()) {
      what = 'invalid mesh configuration';
      checked = issuesError(what, errorIssues(checked));
    }
  }
  // The config entries are checked even when the rest of the document is not valid (as
  // `createMesh` checks them): one error lists every problem of both.
  const routing = tryCompileFileEntries(document, ROUTING_DC);
  if (checked instanceof MeshError && routing instanceof MeshError) {
    const heading = what === 'config document' ? `${what} (version 1)` : what;
    throw issuesError(heading, [...errorIssues(checked), ...errorIssues(routing)]);
  }
  if (checked instanceof MeshError) throw checked;
  if (routing instanceof MeshError) throw routing;
  return checked.warnings;
}
