/**
 * The config document's source as the mesh uses it: the file (`MESH_CONFIG_FILE`) or the caller's
 * `configSource`, chosen and checked at `createMesh`, its first version read once, and its later
 * versions and errors passed on checked (a caller's source may hand back anything).
 */
import {
  type Clock,
  configError,
  type Disposable,
  type Issues,
  type Logger,
  MeshError,
} from '@proxyless/core';
import { type ConfigSource, type ConfigVersion, checkConfigSource, fileConfigSource } from './source.js';

/** The source of the config document in force at `createMesh`, with its first version. */
export interface DocumentSource {
  readonly source: ConfigSource;
  /** What messages call it: `config file <path>`, `config source <name>`. */
  readonly what: string;
  /** True for the file (the mesh closes it); false for a caller's `configSource`. */
  readonly own: boolean;
  readonly first: ConfigVersion;
}

/**
 * Choose and open the document's source: a `configSource`, or the file. Every problem (both
 * given, a malformed source, an unreadable first version) is recorded in `issues`; `undefined`
 * when there is none or it cannot be used.
 */
export function openDocumentSource(
  options: {
    configSource: ConfigSource | undefined;
    /** The file's path (option or `MESH_CONFIG_FILE`), and which of the two named it. */
    configPath: string | undefined;
    pathFromOptions: boolean;
    clock: Clock;
    logger: Logger;
  },
  issues: Issues,
): DocumentSource | undefined {
  const { configSource, configPath } = options;
  let chosen: Omit<DocumentSource, 'first'> | undefined;
  if (configSource !== undefined) {
    if (configPath !== undefined)
      issues.add(
        'options.configSource',
        `one source of the config document: ${options.pathFromOptions ? 'options.configFile' : 'MESH_CONFIG_FILE'} names one too`,
        nameOf(configSource),
      );
    else if (checkConfigSource(configSource, issues))
      chosen = { source: configSource, what: `config source ${configSource.name}`, own: false };
  } else if (configPath !== undefined) {
    const file = issues.try(() =>
      fileConfigSource({ path: configPath, clock: options.clock, logger: options.logger }),
    );
    if (file) chosen = { source: file, what: `config file ${configPath}`, own: true };
  }
  if (chosen === undefined) return undefined;
  const first = issues.try(() => firstVersionOf(chosen.source));
  if (first !== undefined) return { ...chosen, first };
  if (chosen.own) void chosen.source.close();
  return undefined;
}

/**
 * Pass a source's later versions and errors on, checked: a version with a bad number is rejected,
 * and an error that is not a `MeshError` becomes the cause of one. Nothing passes once `closing()`.
 */
export function listenToSource(
  source: ConfigSource,
  to: {
    closing(): boolean;
    apply(version: ConfigVersion): void;
    /** `stale: false`, `kind: 'version'`: a version only misnumbered, which says nothing of the one in force. */
    reject(error: MeshError, version?: number, stale?: boolean, kind?: 'version'): void;
  },
  logger: Logger,
): Disposable[] {
  const listeners: Disposable[] = [];
  try {
    listeners.push(
      source.onVersion((v) => {
        if (to.closing()) return;
        let checked: ConfigVersion;
        try {
          checked = versionOf(source, v);
        } catch (error) {
          // A version numbered wrong (not newer, not a positive integer) is refused as one out of
          // order is: the endpoint sets are not marked stale; its number is told when it is one.
          const n = (v as { version?: unknown } | null | undefined)?.version;
          to.reject(
            error as MeshError,
            typeof n === 'number' && Number.isFinite(n) ? n : undefined,
            false,
            'version',
          );
          return;
        }
        to.apply(checked);
      }),
    );
    listeners.push(
      source.onError((error) => {
        if (to.closing()) return;
        // A caller's source may report any error: events carry a MeshError, with it as cause.
        to.reject(
          MeshError.is(error)
            ? error
            : new MeshError(
                'MESH_CONFIG_INVALID',
                `config source ${source.name}: ${(error as Error | undefined)?.message ?? String(error)}`,
                { cause: error },
              ),
        );
      }),
    );
  } catch (error) {
    // A source that cannot be subscribed to: what was subscribed is let go, so that nothing the
    // source says later reaches a mesh that never started.
    stopListening(listeners, logger);
    throw new MeshError(
      'MESH_CONFIG_INVALID',
      `config source ${source.name}: subscribing to it failed: ${(error as Error | undefined)?.message ?? String(error)}`,
      { cause: error, details: { field: 'options.configSource', value: source.name } },
    );
  }
  return listeners;
}

/** Dispose what `listenToSource` returned, whatever a caller's source handed back. */
export function stopListening(listeners: Disposable[], logger: Logger): void {
  for (const l of listeners.splice(0)) {
    try {
      (l as Partial<Disposable> | undefined)?.dispose?.();
    } catch (error) {
      logger.warn('config source listener could not be disposed', { error });
    }
  }
}

/**
 * A source's version in force, as the mesh reads it: the source's own name, and a version number
 * that is a positive integer (the layers' provenance carries it).
 */
function firstVersionOf(source: ConfigSource): ConfigVersion {
  let v: ConfigVersion;
  try {
    v = source.current();
  } catch (error) {
    if (MeshError.is(error)) throw error;
    throw configError(
      `options.configSource.current()`,
      'the version in force',
      `an error: ${(error as Error)?.message ?? String(error)}`,
    );
  }
  return versionOf(source, v);
}

/** `v` checked and named after its source; throws `MESH_CONFIG_INVALID` naming what is wrong. */
function versionOf(source: ConfigSource, v: ConfigVersion): ConfigVersion {
  const version = (v as Partial<ConfigVersion> | undefined)?.version;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1)
    throw configError(`config source ${source.name}: version`, 'a positive integer', version);
  return v.source === source.name ? v : { source: source.name, version, document: v.document };
}

/** A source's name for a message, if it can be read (its getter may throw: that is listed apart). */
function nameOf(source: ConfigSource): unknown {
  try {
    return (source as { name?: unknown } | null)?.name;
  } catch {
    return undefined;
  }
}
