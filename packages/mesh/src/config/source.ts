import {
  type Clock,
  createEmitter,
  type Disposable,
  type Env,
  type Issues,
  type Logger,
} from '@proxyless/core';
import { watchJsonFile } from '@proxyless/discovery';
import type { ConfigDocument, ReadonlyArrays } from './schema.js';

/** One version of a config document from a source. */
export interface ConfigVersion {
  /** The source's name (`options`, `env`, `file`, or a `configSource`'s own). */
  readonly source: string;
  /** Increases with every new content the source reads, from 1. */
  readonly version: number;
  /** The document as read (JSON data); validated whole by the mesh before any of it is applied. */
  readonly document: unknown;
}

/**
 * Where configuration comes from, apart from where endpoints come from (a `Resolver`). A source
 * yields versioned documents in the config-document shape (`defaults`, `services`,
 * `configEntries`); the mesh validates each version whole, swaps it in atomically, and keeps the
 * last good one when a version is rejected. `createMesh({ configSource })` takes one in place of
 * the file.
 */
export interface ConfigSource {
  /** Lower-case letters, digits and `-`, starting with a letter; not `options`, `env`, `file`, `consul` or `etcd`. */
  readonly name: string;
  /** The version in force at the source now (read synchronously for the first one). */
  current(): ConfigVersion;
  /**
   * A new version was read. After a failure (`onError`), a source that can read again delivers
   * its current version again, even unchanged: the mesh then knows the version in force is fresh.
   */
  onVersion(listener: (v: ConfigVersion) => void): Disposable;
  /**
   * The source failed (unreadable, half-written, deleted): nothing new to apply. A plain `Error`
   * becomes the `cause` of a `MESH_CONFIG_INVALID`.
   */
  onError(listener: (error: Error) => void): Disposable;
  /**
   * Read again now, where the source can (`mesh.reloadConfig()`). Resolve once what the read
   * found has been delivered through `onVersion` or `onError`, so that the reload's outcome is
   * known; reject when the read itself failed.
   */
  reload(): Promise<void>;
  /**
   * Release the source. The mesh closes the source it opens itself (the file); a source given as
   * `createMesh({ configSource })` belongs to the caller, who closes it after the mesh.
   */
  close(): Promise<void>;
}

/** A source whose one version never changes: `createMesh` options, the environment. */
export function staticConfigSource(name: string, document: unknown): ConfigSource {
  const v: ConfigVersion = Object.freeze({ source: name, version: 1, document });
  const none = createEmitter<never>();
  return {
    name,
    current: () => v,
    onVersion: () => none.event(() => undefined),
    onError: () => none.event(() => undefined),
    reload: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
}

/** A config source the caller feeds: `update(document)` is a new version, `fail(error)` a failed read. */
export interface ManualConfigSource extends ConfigSource {
  /**
   * A new version of the document (its version number is the last one plus one). Typed as the
   * document is written, so a misspelt key fails to compile; JSON read from a control plane is
   * `unknown` to the compiler: pass it as `update(json as ConfigDocument)`, the mesh validates it
   * whole either way (a rejected version is `config_rejected`). Arrays may be readonly (`as const`).
   */
  update(document: ReadonlyArrays<ConfigDocument>): void;
  /**
   * The source could not produce a new version (reported as `config_rejected`; nothing changes). A
   * plain `Error` becomes the `cause` of a `MESH_CONFIG_INVALID`.
   */
  fail(error: Error): void;
}

/**
 * A config source whose versions the caller gives: for tests, and for a control plane client that
 * already has the document (`source.update(doc)` on each change). Version 1 is `document`, typed
 * as the document is written (`ConfigDocument`: a misspelt key or a wrong type fails to compile);
 * parsed JSON, `unknown` to the compiler, is passed `as ConfigDocument` and validated by the mesh.
 * Arrays may be readonly (`as const`), as in `ServiceOptions`.
 */
export function createConfigSource(
  name: string,
  document: ReadonlyArrays<ConfigDocument>,
): ManualConfigSource {
  let current: ConfigVersion = Object.freeze({ source: name, version: 1, document });
  const versions = createEmitter<ConfigVersion>();
  const errors = createEmitter<Error>();
  return {
    name,
    current: () => current,
    onVersion: (listener) => versions.event(listener),
    onError: (listener) => errors.event(listener),
    reload: () => Promise.resolve(),
    close: () => {
      versions.clear();
      errors.clear();
      return Promise.resolve();
    },
    update(next: ReadonlyArrays<ConfigDocument>): void {
      current = Object.freeze({ source: name, version: current.version + 1, document: next });
      versions.fire(current);
    },
    fail(error: Error): void {
      errors.fire(error);
    },
  };
}

const SOURCE_NAME = /^[a-z][a-z0-9-]*$/;
/**
 * Names of the mesh's own layers and sources (`options.services`, `env`, the file, the registries'
 * config entries): a source taking one could not be told from it in provenance, events and metrics.
 */
const RESERVED = new Set(['options', 'env', 'file', 'consul', 'etcd']);

/** A `configSource` the mesh can use: checked at `createMesh`, every problem recorded. */
export function checkConfigSource(source: unknown, issues: Issues): source is ConfigSource {
  const s = source as Partial<ConfigSource> | null;
  if (typeof s !== 'object' || s === null) {
    issues.add('options.configSource', 'a ConfigSource object', source);
    return false;
  }
  let ok = true;
  // Read once each, as createMesh reads them: a getter that throws is a problem of the option,
  // listed with the others, never an exception out of createMesh.
  const read = (key: keyof ConfigSource): { value: unknown } | undefined => {
    try {
      return { value: s[key] };
    } catch (error) {
      issues.add(
        `options.configSource.${key}`,
        'a value that can be read',
        `an error: ${(error as Error | undefined)?.message ?? String(error)}`,
      );
      ok = false;
      return undefined;
    }
  };
  const name = read('name');
  if (
    name !== undefined &&
    (typeof name.value !== 'string' || !SOURCE_NAME.test(name.value) || RESERVED.has(name.value))
  ) {
    issues.add(
      'options.configSource.name',
      `lower-case letters, digits and \`-\`, starting with a letter, other than ${[...RESERVED].join(', ')}`,
      name.value,
    );
    ok = false;
  }
  for (const m of ['current', 'onVersion', 'onError', 'reload'] as const) {
    const method = read(m);
    if (method !== undefined && typeof method.value !== 'function') {
      issues.add(`options.configSource.${m}`, 'a function', method.value);
      ok = false;
    }
  }
  return ok;
}

/**
 * `options.defaults` and `options.services`, as one document, as given: the config store checks
 * it whole (shape, names, endpoints, policy) and takes the policy layers from it.
 */
export function optionsConfigSource(options: { defaults?: unknown; services?: unknown }): ConfigSource {
  return staticConfigSource('options', { defaults: options.defaults, services: options.services });
}

/** The `MESH_*` variables (their document is built by the section schemas' env bindings). */
export function envConfigSource(env: Env): ConfigSource {
  return staticConfigSource('env', env);
}

/**
 * The JSON config file (`MESH_CONFIG_FILE`), watched and reloaded.
 * @throws MeshError `MESH_CONFIG_INVALID` when it cannot be read or parsed at start.
 */
export function fileConfigSource(options: {
  path: string;
  clock: Clock;
  logger: Logger;
  pollIntervalMs?: number;
  debounceMs?: number;
}): ConfigSource {
  const file = watchJsonFile(options);
  const wrap = (v: { version: number; value: unknown }): ConfigVersion =>
    Object.freeze({ source: 'file', version: v.version, document: v.value });
  return {
    name: 'file',
    current: () => wrap(file.current()),
    onVersion: (listener) => file.onVersion((v) => listener(wrap(v))),
    onError: (listener) => file.onError(listener),
    reload: () => file.reload(),
    close: () => file.close(),
  };
}
