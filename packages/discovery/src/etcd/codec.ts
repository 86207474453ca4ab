import {
  type ConfigIssue,
  createEndpoint,
  type Endpoint,
  type EndpointInit,
  Issues,
  issuesError,
  MeshError,
  type Registration,
} from '@proxyless/core';
import { parseEndpointEntry } from '../endpoint-doc.js';

/** Largest value accepted for one endpoint key (bytes). Larger values are rejected as invalid. */
export const DEFAULT_MAX_VALUE_BYTES = 64 * 1024;

type Parsed =
  | { readonly endpoint: Endpoint; readonly issues?: undefined }
  | { readonly endpoint?: undefined; readonly issues: readonly ConfigIssue[] };

/**
 * Validate one etcd value (the JSON endpoint document stored under `key`). The endpoint id
 * defaults to the key's last part (`<prefix><service>/<id>`). Issues are named by key and field:
 * `/proxyless/services/payments/a1.port`.
 */
export function parseEtcdValue(
  key: string,
  raw: Buffer | string,
  defaultId: string,
  maxBytes = DEFAULT_MAX_VALUE_BYTES,
): Parsed {
  const issues = new Issues();
  const size = typeof raw === 'string' ? Buffer.byteLength(raw) : raw.length;
  if (size > maxBytes) {
    issues.add(
      key,
      `a value of at most ${maxBytes} bytes (got ${size} bytes)`,
      `${raw.toString().slice(0, 40)}…`,
    );
    return { issues: issues.list };
  }
  const text = raw.toString();
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (error) {
    issues.add(key, `a JSON endpoint object (${(error as Error).message})`, text);
    return { issues: issues.list };
  }
  const init = parseEndpointEntry(doc, key, issues);
  if (init === undefined) return { issues: issues.list };
  if (init.id === undefined && defaultId === '') {
    // The key is the service prefix itself (`…/payments/`): it names no endpoint.
    issues.add(key, 'a key <prefix><service>/<id> naming the endpoint, or an "id" in the value', key);
    return { issues: issues.list };
  }
  init.id ??= defaultId;
  return { endpoint: createEndpoint(init) };
}

/** The JSON value the registrar writes for a registration (the shape the resolver reads). */
export function encodeRegistration(
  reg: Registration,
  id: string,
  health: 'passing' | 'critical',
  note?: string,
): string {
  const doc: EndpointInit & { metadata?: Record<string, string> } = {
    id,
    address: reg.address,
    port: reg.port,
    health,
  };
  if (reg.weights !== undefined)
    doc.weight = health === 'passing' ? reg.weights.passing : reg.weights.warning;
  if (reg.zone !== undefined) doc.zone = reg.zone;
  if (reg.tags !== undefined && reg.tags.length > 0) doc.tags = [...reg.tags];
  const metadata: Record<string, string> = { ...(reg.metadata ?? {}) };
  if (note !== undefined) metadata['health-note'] = note;
  if (Object.keys(metadata).length > 0) doc.metadata = metadata;
  return JSON.stringify(doc);
}

/**
 * The keys of one service as last seen (listed, then changed by watch events). Each key keeps
 * its parsed endpoint or its issues; the service's endpoint list is offered only when every key
 * is valid, so a bad value never half-applies an update.
 */
export class EtcdServiceState {
  readonly #service: string;
  readonly #prefix: string;
  readonly #maxBytes: number;
  #entries = new Map<string, Parsed>();
  #bad = new Set<string>();
  #revisions = new Map<string, string>();

  /** `prefix` is the service's own prefix, e.g. `/proxyless/services/payments/`. */
  constructor(service: string, prefix: string, maxBytes = DEFAULT_MAX_VALUE_BYTES) {
    this.#service = service;
    this.#prefix = prefix;
    this.#maxBytes = maxBytes;
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * Replace everything with a fresh listing. A key whose `mod_revision` is the one already seen
   * keeps its parsed entry (its value cannot have changed), so a re-list after a compaction or an
   * outage only parses what changed.
   */
  reset(kvs: ReadonlyArray<{ key: Buffer | string; value: Buffer | string; mod_revision?: string }>): void {
    const previous = this.#entries;
    const revisions = this.#revisions;
    this.#entries = new Map();
    this.#revisions = new Map();
    this.#bad = new Set();
    for (const kv of kvs) {
      const key = typeof kv.key === 'string' ? kv.key : kv.key.toString();
      const rev = kv.mod_revision;
      const old = rev === undefined ? undefined : previous.get(key);
      if (old !== undefined && revisions.get(key) === rev) {
        this.#entries.set(key, old);
        this.#revisions.set(key, rev as string);
        if (old.issues) this.#bad.add(key);
      } else {
        this.put(key, kv.value, rev);
      }
    }
  }

  /** Record the value of `key` (at `modRevision`, when known). */
  put(key: string, value: Buffer | string, modRevision?: string): void {
    const id = key.startsWith(this.#prefix) ? key.slice(this.#prefix.length) : key;
    const parsed = parseEtcdValue(key, value, id, this.#maxBytes);
    this.#entries.set(key, parsed);
    if (modRevision !== undefined) this.#revisions.set(key, modRevision);
    else this.#revisions.delete(key);
    if (parsed.issues) this.#bad.add(key);
    else this.#bad.delete(key);
  }

  delete(key: string): void {
    this.#entries.delete(key);
    this.#revisions.delete(key);
    this.#bad.delete(key);
  }

  /** The endpoint list, or the `MESH_REGISTRY_PAYLOAD_INVALID` error naming every bad key and field. */
  result(): { endpoints: Endpoint[]; error?: undefined } | { endpoints?: undefined; error: MeshError } {
    const issues: ConfigIssue[] = [];
    if (this.#bad.size > 0) {
      for (const key of this.#bad) issues.push(...(this.#entries.get(key)?.issues ?? []));
      return { error: this.#error(issues) };
    }
    const endpoints: Endpoint[] = [];
    const ids = new Map<string, string>();
    for (const [key, parsed] of this.#entries) {
      const e = parsed.endpoint;
      if (e === undefined) continue;
      const other = ids.get(e.id);
      if (other !== undefined)
        issues.push({ field: `${key}.id`, value: e.id, expected: `an id not used by ${other}` });
      ids.set(e.id, key);
      endpoints.push(e);
    }
    if (issues.length > 0) return { error: this.#error(issues) };
    return { endpoints };
  }

  #error(issues: readonly ConfigIssue[]): MeshError {
    const base = issuesError(`etcd service ${JSON.stringify(this.#service)}`, issues);
    return new MeshError(
      'MESH_REGISTRY_PAYLOAD_INVALID',
      `${base.message} (update rejected, nothing of it applied)`,
      {
        details: { ...base.details, service: this.#service },
      },
    );
  }
}
