import { type FSWatcher, readFileSync, statSync, watch } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import {
  type Clock,
  configError,
  createEmitter,
  createEndpoint,
  type Disposable,
  type Endpoint,
  Issues,
  type Logger,
  MeshError,
  noopLogger,
  type Resolver,
  type ResolverListener,
  systemClock,
  type Timer,
} from '@proxyless/core';
import { parseEndpointList } from './endpoint-doc.js';
import { ResolverHub, type WatchSink } from './hub.js';

/** The largest config document read (a guard against reading the wrong file). */
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

export interface FileResolverOptions {
  /** Path of the JSON config document (`MESH_CONFIG_FILE`). */
  path: string;
  clock?: Clock;
  logger?: Logger;
  /** Keys a service entry may hold besides `endpoints` (policy sections owned by other packages). */
  serviceKeys?: readonly string[];
  /** Top-level keys besides `services` and `$schema` (e.g. `defaults`). */
  topLevelKeys?: readonly string[];
  /** Extra validation of the whole document (policy sections); record issues by path. */
  validate?: (doc: ConfigDocument, issues: Issues) => void;
  /** Polling interval, the fallback when file events are missed or unsupported. @defaultValue 2000 */
  pollIntervalMs?: number;
  /** Quiet period after a change event before the file is read (coalesces partial writes). @defaultValue 20 */
  debounceMs?: number;
}

/** The config document as read (validated). */
export interface ConfigDocument {
  readonly $schema?: string;
  readonly services: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  readonly [key: string]: unknown;
}

/** A file resolver also reports whole documents and rejected versions. */
export interface FileResolver extends Resolver {
  /** The document in force (the last valid one). */
  document(): ConfigDocument;
  /** Called with the document in force now and with each newly applied one. */
  onDocument(listener: (doc: ConfigDocument) => void): Disposable;
  /** Called when a changed file is invalid, half-written or deleted; the last good one stays. */
  onRejected(listener: (error: MeshError) => void): Disposable;
  /** Re-read the file now (also done on file events and by polling). */
  reload(): Promise<void>;
}

/**
 * Services from a JSON document (`MESH_CONFIG_FILE`), watched for changes with `fs.watch` on its
 * directory (so editors' atomic renames are seen) and a polling fallback. Each version is
 * validated as a whole before anything is applied; an invalid, half-written or deleted file keeps
 * the last good document in force and is reported through `onRejected`.
 *
 * @throws MeshError `MESH_CONFIG_INVALID` when the file cannot be read or is invalid at start.
 */
export function createFileResolver(options: FileResolverOptions): FileResolver {
  return new FileResolverImpl(options);
}

interface Parsed {
  doc: ConfigDocument;
  endpoints: Map<string, readonly Endpoint[]>;
  /** Lower-cased service name → name as written. */
  names: Map<string, string>;
}

class FileResolverImpl implements FileResolver {
  readonly name = 'file';
  readonly #path: string;
  readonly #options: FileResolverOptions;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #hub: ResolverHub;
  readonly #sinks = new Map<string, WatchSink>();
  readonly #documents = createEmitter<ConfigDocument>();
  readonly #rejections = createEmitter<MeshError>();
  #current: Parsed;
  #lastText: string;
  #lastStat = '';
  #watcher: FSWatcher | undefined;
  #poll: Timer | undefined;
  #debounce: Timer | undefined;
  #reading: Promise<void> | undefined;
  #again = false;
  #closed = false;

  constructor(options: FileResolverOptions) {
    this.#options = options;
    this.#path = resolve(options.path);
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? noopLogger;
    let text: string;
    try {
      const st = statSync(this.#path);
      if (st.size > MAX_CONFIG_BYTES)
        throw new Error(`file is ${st.size} bytes; the limit is ${MAX_CONFIG_BYTES}`);
      text = readFileSync(this.#path, 'utf8');
      this.#lastStat = statKey(st);
    } catch (error) {
      throw configError(
        'MESH_CONFIG_FILE',
        `a readable JSON config file (${(error as Error).message})`,
        options.path,
      );
    }
    this.#current = this.#parse(text);
    this.#lastText = text;
    this.#hub = new ResolverHub({
      name: 'file',
      clock: this.#clock,
      logger: this.#logger,
      start: (service, sink) => {
        this.#sinks.set(service, sink);
        sink.endpoints(this.#current.endpoints.get(service) ?? []);
        return () => {
          this.#sinks.delete(service);
        };
      },
    });
    this.#startWatching();
  }

  match(host: string): string | undefined {
    return this.#current.names.get(host);
  }

  watch(service: string, listener: ResolverListener): Disposable {
    return this.#hub.watch(service, listener);
  }

  document(): ConfigDocument {
    return this.#current.doc;
  }

  onDocument(listener: (doc: ConfigDocument) => void): Disposable {
    listener(this.#current.doc);
    return this.#documents.event(listener);
  }

  onRejected(listener: (error: MeshError) => void): Disposable {
    return this.#rejections.event(listener);
  }

  /** Parse and validate a whole document; throws `MESH_CONFIG_INVALID` listing every issue. */
  #parse(text: string): Parsed {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (error) {
      throw new MeshError(
        'MESH_CONFIG_INVALID',
        `config file ${this.#options.path}: not valid JSON (${(error as Error).message}; ${text.length} bytes, possibly half-written)`,
        { details: { field: '$', value: text.length > 80 ? `${text.slice(0, 80)}…` : text } },
      );
    }
    const issues = new Issues();
    const doc = issues.object(raw, '$');
    const endpoints = new Map<string, readonly Endpoint[]>();
    const names = new Map<string, string>();
    if (doc) {
      issues.unknownKeys(doc, '', ['$schema', 'services', ...(this.#options.topLevelKeys ?? [])]);
      const services = doc.services === undefined ? {} : issues.object(doc.services, 'services');
      for (const [name, value] of Object.entries(services ?? {})) {
        const field = `services.${name}`;
        if (!/^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/.test(name)) {
          issues.add(field, 'a service name of letters, digits, `-`, `_` and `.`', name);
          continue;
        }
        const entry = issues.object(value, field);
        if (!entry) continue;
        issues.unknownKeys(entry, field, ['endpoints', ...(this.#options.serviceKeys ?? [])]);
        if (entry.endpoints !== undefined) {
          const list = parseEndpointList(entry.endpoints, `${field}.endpoints`, issues);
          if (list) endpoints.set(name.toLowerCase(), Object.freeze(list.map(createEndpoint)));
        }
        if (names.has(name.toLowerCase()))
          issues.add(field, 'a service name unique regardless of case', name);
        names.set(name.toLowerCase(), name.toLowerCase());
      }
      if (issues.ok) this.#options.validate?.(doc as ConfigDocument, issues);
    }
    issues.throwIfAny(`config file ${this.#options.path}`);
    return { doc: Object.freeze({ services: {}, ...doc }) as ConfigDocument, endpoints, names };
  }

  #startWatching(): void {
    const interval = this.#options.pollIntervalMs ?? 2000;
    try {
      // Watch the directory: editors and deploy tools replace files by rename, which a watch on
      // the file itself would lose.
      const file = basename(this.#path);
      this.#watcher = watch(dirname(this.#path), { persistent: false }, (_event, name) => {
        if (name === null || name.toString() === file) this.#schedule();
      });
      this.#watcher.on('error', (error) => {
        this.#logger.warn('config file watch failed; polling only', { path: this.#path, error });
        this.#watcher?.close();
        this.#watcher = undefined;
      });
    } catch (error) {
      this.#logger.warn('config file cannot be watched; polling', { path: this.#path, error });
    }
    const tick = (): void => {
      if (this.#closed) return;
      void this.#pollOnce().finally(() => {
        if (!this.#closed) this.#poll = this.#clock.setTimer(interval, tick);
      });
    };
    this.#poll = this.#clock.setTimer(interval, tick);
  }

  async #pollOnce(): Promise<void> {
    try {
      const key = statKey(await stat(this.#path));
      if (key !== this.#lastStat) await this.reload();
    } catch {
      if (this.#lastStat !== 'missing') await this.reload();
    }
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#debounce?.cancel();
    this.#debounce = this.#clock.setTimer(this.#options.debounceMs ?? 20, () => {
      this.#debounce = undefined;
      void this.reload();
    });
  }

  reload(): Promise<void> {
    if (this.#reading) {
      this.#again = true;
      return this.#reading;
    }
    this.#reading = this.#read().finally(() => {
      this.#reading = undefined;
      if (this.#again && !this.#closed) {
        this.#again = false;
        void this.reload();
      }
    });
    return this.#reading;
  }

  async #read(): Promise<void> {
    if (this.#closed) return;
    let text: string;
    try {
      const st = await stat(this.#path);
      this.#lastStat = statKey(st);
      if (st.size > MAX_CONFIG_BYTES)
        throw new Error(`file is ${st.size} bytes; the limit is ${MAX_CONFIG_BYTES}`);
      text = await readFile(this.#path, 'utf8');
    } catch (error) {
      const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
      if (missing) {
        if (this.#lastStat === 'missing') return;
        this.#lastStat = 'missing';
      }
      this.#reject(
        new MeshError(
          'MESH_CONFIG_INVALID',
          missing
            ? `config file ${this.#options.path} was deleted; keeping the last good configuration`
            : `config file ${this.#options.path} cannot be read: ${(error as Error).message}; keeping the last good configuration`,
          { cause: error, details: { field: 'MESH_CONFIG_FILE', value: this.#options.path } },
        ),
      );
      return;
    }
    if (this.#closed || text === this.#lastText) return;
    let parsed: Parsed;
    try {
      parsed = this.#parse(text);
    } catch (error) {
      this.#lastText = text;
      this.#reject(error as MeshError);
      return;
    }
    this.#lastText = text;
    this.#current = parsed;
    this.#logger.info('config file applied', { path: this.#path, services: parsed.names.size });
    this.#documents.fire(parsed.doc);
    for (const [service, sink] of this.#sinks) sink.endpoints(parsed.endpoints.get(service) ?? []);
  }

  #reject(error: MeshError): void {
    this.#logger.warn('config file rejected; keeping the last good configuration', {
      path: this.#path,
      error,
    });
    for (const sink of this.#sinks.values()) sink.error(error);
    this.#rejections.fire(error);
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#watcher?.close();
      this.#poll?.cancel();
      this.#debounce?.cancel();
      this.#documents.clear();
      this.#rejections.clear();
    }
    return this.#hub.close();
  }
}

function statKey(st: { mtimeMs: number; size: number; ino: number }): string {
  return `${st.mtimeMs}:${st.size}:${st.ino}`;
}
