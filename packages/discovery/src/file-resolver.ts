import {
  type Clock,
  createEmitter,
  createEndpoint,
  type Disposable,
  type Endpoint,
  type EndpointInit,
  Issues,
  type Logger,
  type MeshError,
  noopLogger,
  type Resolver,
  type ResolverListener,
  systemClock,
} from '@proxyless/core';
import { parseEndpointList } from './endpoint-doc.js';
import { ResolverHub, type WatchSink } from './hub.js';
import { type JsonFileOptions, watchJsonFile } from './json-file.js';

// ---------------------------------------------------------------------------------------------
// The resolver: endpoints of a validated document, nothing else
// ---------------------------------------------------------------------------------------------

/** A resolver fed with the endpoints of each accepted document version. */
export interface DocumentEndpointsResolver extends Resolver {
  /** The endpoints of a document now in force (lower-cased service name → endpoints). */
  apply(endpoints: ReadonlyMap<string, readonly EndpointInit[]>): void;
  /** The document source failed: watchers keep their last set, marked stale. */
  fail(error: MeshError): void;
  /**
   * Give watchers the sets of the last `apply()`/`fail()` now rather than on a later tick: the
   * mesh swaps a version's endpoints in with its policy, before `config_applied`.
   */
  flush(): void;
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
  /** The source's failure since the last version applied: a service first watched now is stale too. */
  let failed: MeshError | undefined;
  const hub = new ResolverHub({
    name: options.name ?? 'file',
    clock,
    logger: options.logger ?? noopLogger,
    start: (service, sink) => {
      sinks.set(service, sink);
      sink.endpoints(current.get(service));
      if (failed !== undefined) sink.error(failed);
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
      failed = undefined;
      current = new DocumentEndpoints(endpoints);
      for (const [service, sink] of sinks) sink.endpoints(current.get(service));
    },
    fail(error) {
      failed = error;
      for (const sink of sinks.values()) sink.error(error);
    },
    flush: () => hub.flush(),
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
        issues.add(
          field,
          'a service name of letters, digits, `-`, `_` and `.` that starts and ends with a letter or digit',
          name,
        );
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
