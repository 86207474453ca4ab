import {
  type Clock,
  createEmitter,
  type Disposable,
  type Env,
  type Logger,
  type MeshError,
} from '@proxyless/core';
import { watchJsonFile } from '@proxyless/discovery';

/** One version of a config document from a source. */
export interface ConfigVersion {
  /** The source's name (`options`, `env`, `file`; later `etcd`, `consul`). */
  readonly source: string;
  /** Increases with every new content the source reads, from 1. */
  readonly version: number;
  /** The document as read (JSON data); validated whole by the mesh before any of it is applied. */
  readonly document: unknown;
}

/**
 * Where configuration comes from, apart from where endpoints come from (a `Resolver`). A source
 * yields versioned documents in the config-document shape (`defaults`, `services`, and the config
 * entries later issues add); the mesh validates each version whole, swaps it in atomically, and
 * keeps the last good one when a version is rejected.
 */
export interface ConfigSource {
  readonly name: string;
  /** The version in force at the source now (read synchronously for the first one). */
  current(): ConfigVersion;
  /** A new version was read. */
  onVersion(listener: (v: ConfigVersion) => void): Disposable;
  /** The source failed (unreadable, half-written, deleted): nothing new to apply. */
  onError(listener: (error: MeshError) => void): Disposable;
  /** Read again now, where the source can. */
  reload(): Promise<void>;
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
