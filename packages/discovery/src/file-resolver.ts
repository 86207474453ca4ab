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
  type EndpointInit,
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

// ---------------------------------------------------------------------------------------------
// The file: read, watched, versioned (what a config source is built on)
// ---------------------------------------------------------------------------------------------

export interface JsonFileOptions {
  /** Path of the JSON document (`MESH_CONFIG_FILE`). */
  path: string;
  clock?: Clock;
  logger?: Logger;
  /** Polling interval, the fallback when file events are missed or unsupported. @defaultValue 2000 */
  pollIntervalMs?: number;
  /** Quiet period after a change event before the file is read (coalesces partial writes). @defaultValue 20 */
  debounceMs?: number;
}

/**
 * One parsed version of the file. `version` counts the contents delivered, from 1: each new
 * content, and the same content again when the file is readable and valid after a failure.
 */
export interface JsonFileVersion {
  readonly version: number;
  readonly value: unknown;
}

/** A watched JSON file. It parses JSON only; what the document means is its reader's business. */
export interface JsonFile {
  readonly path: string;
  /** The version read last (at start: read synchronously by the constructor). */
  current(): JsonFileVersion;
  /** A new content was read and parsed (or the last one again, once readable after an error). */
  onVersion(listener: (v: JsonFileVersion) => void): Disposable;
  /**
   * The file became unreadable, half-written (not JSON) or was deleted; nothing new to apply.
   * The next content read that parses is delivered through `onVersion`, even if unchanged.
   */
  onError(listener: (error: MeshError) => void): Disposable;
  /** Re-read the file now (also done on file events and by polling). */
  reload(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Read a JSON file and watch it with `fs.watch` on its directory (so editors' atomic renames are
 * seen) and a polling fallback. A content that does not parse is reported, never delivered.
 *
 * @throws MeshError `MESH_CONFIG_INVALID` (field `MESH_CONFIG_FILE`) when the file cannot be read
 * or parsed at start.
 */
export function watchJsonFile(options: JsonFileOptions): JsonFile {
  return new JsonFileImpl(options);
}

class JsonFileImpl implements JsonFile {
  readonly path: string;
  readonly #options: JsonFileOptions;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #versions = createEmitter<JsonFileVersion>();
  readonly #errors = createEmitter<MeshError>();
  #current: JsonFileVersion;
  #lastText: string;
  /**
   * The error reported since the last delivered version, if any. Readers mark what they serve
   * stale on an error, and only a delivered version tells them the file is good again: so after
   * a failed read (deleted, unreadable) the same text as before is delivered, not skipped as
   * unchanged. After a parse failure the unchanged text is still the half-written one: skipped.
   */
  #failed: 'read' | 'parse' | undefined;
  #lastStat = '';
  #watcher: FSWatcher | undefined;
  #poll: Timer | undefined;
  #debounce: Timer | undefined;
  #reading: Promise<void> | undefined;
  #again = false;
  #closed = false;

  constructor(options: JsonFileOptions) {
    this.#options = options;
    this.path = resolve(options.path);
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? noopLogger;
    let text: string;
    try {
      const st = statSync(this.path);
      if (st.size > MAX_CONFIG_BYTES)
        throw new Error(`file is ${st.size} bytes; the limit is ${MAX_CONFIG_BYTES}`);
      text = readFileSync(this.path, 'utf8');
      this.#lastStat = statKey(st);
    } catch (error) {
      throw configError(
        'MESH_CONFIG_FILE',
        `a readable JSON config file (${(error as Error).message})`,
        options.path,
      );
    }
    this.#current = { version: 1, value: this.#json(text) };
    this.#lastText = text;
    this.#startWatching();
  }

  current(): JsonFileVersion {
    return this.#current;
  }

  onVersion(listener: (v: JsonFileVersion) => void): Disposable {
    return this.#versions.event(listener);
  }

  onError(listener: (error: MeshError) => void): Disposable {
    return this.#errors.event(listener);
  }

  #json(text: string): unknown {
    try {
      // A byte-order mark, as some editors write at the start of a UTF-8 file, is not JSON but
      // not content either (Node's own JSON `require` drops it too).
      return JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
    } catch (error) {
      throw new MeshError(
        'MESH_CONFIG_INVALID',
        `config file ${this.#options.path}: not valid JSON (${(error as Error).message}; ${text.length} bytes, possibly half-written)`,
        { details: { field: '$', value: text.length > 80 ? `${text.slice(0, 80)}…` : text } },
      );
    }
  }

  #startWatching(): void {
    const interval = this.#options.pollIntervalMs ?? 2000;
    try {
      // Watch the directory: editors and deploy tools replace files by rename, which a watch on
      // the file itself would lose.
      const file = basename(this.path);
      this.#watcher = watch(dirname(this.path), { persistent: false }, (_event, name) => {
        if (name === null || name.toString() === file) this.#schedule();
      });
      this.#watcher.on('error', (error) => {
        this.#logger.warn('config file watch failed; polling only', { path: this.path, error });
        this.#watcher?.close();
        this.#watcher = undefined;
      });
    } catch (error) {
      this.#logger.warn('config file cannot be watched; polling', { path: this.path, error });
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
      const key = statKey(await stat(this.path));
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
      const st = await stat(this.path);
      this.#lastStat = statKey(st);
      if (st.size > MAX_CONFIG_BYTES)
        throw new Error(`file is ${st.size} bytes; the limit is ${MAX_CONFIG_BYTES}`);
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
      if (missing) {
        if (this.#lastStat === 'missing') return;
        this.#lastStat = 'missing';
      }
      this.#failed = 'read';
      this.#errors.fire(
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
    if (this.#closed || (text === this.#lastText && this.#failed !== 'read')) return;
    this.#lastText = text;
    let value: unknown;
    try {
      value = this.#json(text);
    } catch (error) {
      this.#failed = 'parse';
      this.#errors.fire(error as MeshError);
      return;
    }
    this.#failed = undefined;
    this.#current = { version: this.#current.version + 1, value };
    this.#versions.fire(this.#current);
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#watcher?.close();
      this.#poll?.cancel();
      this.#debounce?.cancel();
      this.#versions.clear();
      this.#errors.clear();
    }
    return Promise.resolve();
  }
}

function statKey(st: { mtimeMs: number; size: number; ino: number }): string {
  return `${st.mtimeMs}:${st.size}:${st.ino}`;
}

// ---------------------------------------------------------------------------------------------
// The resolver: endpoints of a validated document, nothing else
// ---------------------------------------------------------------------------------------------

/** A resolver fed with the endpoints of each accepted document version. */
export interface DocumentEndpointsResolver extends Resolver {
  /** The endpoints of a document now in force (lower-cased service name → endpoints). */
  apply(endpoints: ReadonlyMap<string, readonly EndpointInit[]>): void;
  /** The document source failed: watchers keep their last set, marked stale. */
  fail(error: MeshError): void;
}

/**
 * Serve the endpoints listed in a config document. It neither reads nor validates documents:
 * whoever owns the document (a config source) validates each version whole and applies it here.
 */
export function createDocumentEndpointsResolver(options: {
  name?: string;
  clock?: Clock;
  logger?: Logger;
  endpoints?: ReadonlyMap<string, readonly EndpointInit[]>;
}): DocumentEndpointsResolver {
  const clock = options.clock ?? systemClock;
  const sinks = new Map<string, WatchSink>();
  let current = new DocumentEndpoints(options.endpoints ?? new Map());
  const hub = new ResolverHub({
    name: options.name ?? 'file',
    clock,
    logger: options.logger ?? noopLogger,
    start: (service, sink) => {
      sinks.set(service, sink);
      sink.endpoints(current.get(service));
      return () => {
        sinks.delete(service);
      };
    },
  });
  return {
    name: options.name ?? 'file',
    match: (host) => (current.has(host) ? host : undefined),
    watch: (service: string, listener: ResolverListener) => hub.watch(service, listener),
    apply(endpoints) {
      current = new DocumentEndpoints(endpoints);
      for (const [service, sink] of sinks) sink.endpoints(current.get(service));
    },
    fail(error) {
      for (const sink of sinks.values()) sink.error(error);
    },
    close: () => hub.close(),
  };
}

/**
 * One document version's endpoints by lower-cased service name. The lists are validated with the
 * document; their Endpoint objects are made when a service is first watched, not for every service
 * the document lists (a 1,000-service document, of which a process calls a few).
 */
class DocumentEndpoints {
  readonly #lists = new Map<string, readonly EndpointInit[]>();
  readonly #made = new Map<string, readonly Endpoint[]>();

  constructor(m: ReadonlyMap<string, readonly EndpointInit[]>) {
    for (const [service, list] of m) this.#lists.set(service.toLowerCase(), list);
  }

  has(service: string): boolean {
    return this.#lists.has(service);
  }

  get(service: string): readonly Endpoint[] {
    let made = this.#made.get(service);
    if (made === undefined) {
      made = Object.freeze((this.#lists.get(service) ?? []).map(createEndpoint));
      this.#made.set(service, made);
    }
    return made;
  }
}

// ---------------------------------------------------------------------------------------------
// Standalone: the file's endpoints, for discovery without the mesh
// ---------------------------------------------------------------------------------------------

export interface FileResolverOptions extends JsonFileOptions {
  /** Keys a service entry may hold besides `endpoints` (policy sections read by someone else). */
  serviceKeys?: readonly string[];
  /** Top-level keys besides `services` and `$schema` (e.g. `defaults`). */
  topLevelKeys?: readonly string[];
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
 * Services from a JSON document, for discovery used alone: {@link watchJsonFile} plus the
 * endpoints of each version that validates whole (an invalid, half-written or deleted file keeps
 * the last good one, reported through `onRejected`). The mesh does not use it: there the file is
 * a config source, and only its endpoints reach a {@link createDocumentEndpointsResolver}.
 *
 * @throws MeshError `MESH_CONFIG_INVALID` when the file cannot be read or is invalid at start.
 */
export function createFileResolver(options: FileResolverOptions): FileResolver {
  const file = watchJsonFile(options);
  const first = readDocument(file.current().value, options);
  const resolver = createDocumentEndpointsResolver({ ...options, endpoints: first.endpoints });
  let doc = first.doc;
  const documents = createEmitter<ConfigDocument>();
  const rejections = createEmitter<MeshError>();
  const reject = (error: MeshError): void => {
    (options.logger ?? noopLogger).warn('config file rejected; keeping the last good configuration', {
      path: file.path,
      error,
    });
    resolver.fail(error);
    rejections.fire(error);
  };
  file.onError(reject);
  file.onVersion((v) => {
    let next: ReturnType<typeof readDocument>;
    try {
      next = readDocument(v.value, options);
    } catch (error) {
      reject(error as MeshError);
      return;
    }
    doc = next.doc;
    documents.fire(doc);
    resolver.apply(next.endpoints);
  });
  return {
    name: 'file',
    match: (host) => resolver.match(host),
    watch: (service, listener) => resolver.watch(service, listener),
    document: () => doc,
    onDocument(listener) {
      listener(doc);
      return documents.event(listener);
    },
    onRejected: (listener) => rejections.event(listener),
    reload: () => file.reload(),
    async close() {
      documents.clear();
      rejections.clear();
      await file.close();
      await resolver.close();
    },
  };
}

/** Validate the discovery part of a document: its shape, service names and endpoints. */
function readDocument(
  raw: unknown,
  options: FileResolverOptions,
): { doc: ConfigDocument; endpoints: Map<string, EndpointInit[]> } {
  const issues = new Issues();
  const doc = issues.object(raw, '$');
  const endpoints = new Map<string, EndpointInit[]>();
  if (doc) {
    issues.unknownKeys(doc, '', ['$schema', 'services', ...(options.topLevelKeys ?? [])]);
    const services = doc.services === undefined ? {} : issues.object(doc.services, 'services');
    for (const [name, value] of Object.entries(services ?? {})) {
      const field = `services.${name}`;
      if (!/^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/.test(name)) {
        issues.add(field, 'a service name of letters, digits, `-`, `_` and `.`', name);
        continue;
      }
      const entry = issues.object(value, field);
      if (!entry) continue;
      issues.unknownKeys(entry, field, ['endpoints', ...(options.serviceKeys ?? [])]);
      if (endpoints.has(name.toLowerCase()))
        issues.add(field, 'a service name unique regardless of case', name);
      if (entry.endpoints !== undefined) {
        const list = parseEndpointList(entry.endpoints, `${field}.endpoints`, issues);
        if (list) endpoints.set(name.toLowerCase(), list);
      } else endpoints.set(name.toLowerCase(), []);
    }
  }
  issues.throwIfAny(`config file ${options.path}`);
  return { doc: Object.freeze({ services: {}, ...doc }) as ConfigDocument, endpoints };
}
