/**
 * The Consul double's config-entry table (consul-api.md §6): entries by kind and name with their
 * Create/Modify indexes, Consul's write validation and chain (graph) checks, the table index, and
 * the wake-up of blocked readers. HTTP is in `config-entries.ts`.
 *
 * Test tree only: never part of a published package.
 */
import type { ServerResponse } from 'node:http';
import { EntryIssues } from '../../packages/mesh/src/routing/entry-issues.js';
import { validateConfigEntry } from '../../packages/mesh/src/routing/validate.js';
import { normaliseIntentions } from './config-intentions.js';
import {
  ChainError,
  type ChainOverrides,
  compileDiscoveryChain,
  type EntryLookup,
} from './discovery-chain.js';

type Json = Record<string, unknown>;

/** Kinds the double stores; the discovery-chain kinds are validated, the others kept as written. */
export const KINDS = [
  'service-defaults',
  'proxy-defaults',
  'service-router',
  'service-splitter',
  'service-resolver',
  'service-intentions',
] as const;
const VALIDATED = ['service-defaults', 'service-router', 'service-splitter', 'service-resolver'];

export interface ConfigEntryStoreOptions {
  /** @defaultValue 'dc1' */
  datacenter?: string;
  /** Takes the next Raft index of the double (shared with its other tables). */
  nextIndex: () => number;
  /** `connect.enabled` on the servers; off → the discovery chain answers 500. @defaultValue true */
  connectEnabled?: boolean;
  /** Cluster ID used in SNI names. @defaultValue a fixed UUID */
  clusterId?: string;
  /** @defaultValue 300_000 (Consul's 5 m) */
  defaultWaitMs?: number;
  /** @defaultValue 600_000 (Consul's 10 m) */
  maxWaitMs?: number;
}

interface Stored {
  entry: Json;
  CreateIndex: number;
  ModifyIndex: number;
}

/** An answer other than 200: status and plain-text body. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(body);
  }
}

/** The double's config-entry table, its index and its blocked readers. */
export class ConfigEntryStore implements EntryLookup {
  readonly datacenter: string;
  readonly clusterId: string;
  connectEnabled: boolean;
  private readonly entries = new Map<string, Stored>(); // key kind/name
  private tableIndex = 0;
  private readonly waiters = new Set<() => void>();

  constructor(readonly options: ConfigEntryStoreOptions) {
    this.datacenter = options.datacenter ?? 'dc1';
    this.clusterId = options.clusterId ?? '11111111-2222-3333-4444-555555555555';
    this.connectEnabled = options.connectEnabled ?? true;
  }

  /** Index reads report: the last config write, at least 1. */
  get index(): number {
    return Math.max(1, this.tableIndex);
  }

  get(kind: string, name: string): Json | undefined {
    return this.entries.get(`${kind}/${name}`)?.entry;
  }

  list(kind: string): Json[] {
    return [...this.entries.values()]
      .filter((s) => s.entry.Kind === kind)
      .sort((a, b) => String(a.entry.Name).localeCompare(String(b.entry.Name)))
      .map((s) => this.view(s));
  }

  read(kind: string, name: string): Json | undefined {
    const s = this.entries.get(`${kind}/${name}`);
    return s ? this.view(s) : undefined;
  }

  private view(s: Stored): Json {
    return { ...s.entry, CreateIndex: s.CreateIndex, ModifyIndex: s.ModifyIndex };
  }

  /** Store an entry as `PUT /v1/config` does; returns false on a failed `cas`. @throws HttpError */
  write(raw: unknown, cas?: number): boolean {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new HttpError(
        400,
        'Request decoding failed: Payload does not contain a kind/Kind key at the top level',
      );
    }
    const body = { ...(raw as Json) };
    if (body.Kind === undefined && typeof body.kind === 'string') body.Kind = body.kind;
    if (body.Name === undefined && typeof body.name === 'string') body.Name = body.name;
    delete body.kind;
    delete body.name;
    delete body.CreateIndex;
    delete body.ModifyIndex;
    delete body.Hash;
    if (typeof body.Kind !== 'string' || body.Kind === '') {
      throw new HttpError(
        400,
        'Request decoding failed: Payload does not contain a kind/Kind key at the top level',
      );
    }
    if (!(KINDS as readonly string[]).includes(body.Kind)) {
      throw new HttpError(400, `Request decoding failed: invalid config entry kind: ${body.Kind}`);
    }
    let entry: Json = body;
    if (VALIDATED.includes(body.Kind)) {
      const issues = new EntryIssues();
      const valid = validateConfigEntry(body, issues);
      const unknownKey = issues.list.find((i) => i.message.startsWith('invalid config key'));
      if (unknownKey)
        throw new HttpError(400, `Request decoding failed: 1 error occurred:\n\t* ${unknownKey.message}\n\n`);
      if (!valid) throw new HttpError(500, issues.list[0]?.message ?? 'invalid config entry');
      entry = valid as unknown as Json;
    } else if (body.Kind === 'proxy-defaults' && body.Name !== 'global') {
      throw new HttpError(500, `invalid name ("${String(body.Name)}"), only "global" is supported`);
    } else if (body.Kind === 'service-intentions') {
      const normalised = normaliseIntentions(body);
      if (typeof normalised === 'string') throw new HttpError(500, normalised);
      entry = normalised;
    } else if (typeof body.Name !== 'string' || body.Name === '') {
      throw new HttpError(500, 'Name is required');
    }
    const key = `${entry.Kind}/${entry.Name}`;
    const prev = this.entries.get(key);
    if (cas !== undefined && (cas === 0 ? prev !== undefined : prev?.ModifyIndex !== cas)) return false;
    this.checkChains(key, entry);
    const idx = this.options.nextIndex();
    this.entries.set(key, { entry, CreateIndex: prev?.CreateIndex ?? idx, ModifyIndex: idx });
    this.changed(idx);
    return true;
  }

  /** Delete as `DELETE /v1/config/:kind/:name` does; false on a failed `cas`. @throws HttpError */
  delete(kind: string, name: string, cas?: number): boolean {
    const key = `${kind}/${name}`;
    const prev = this.entries.get(key);
    if (cas !== undefined && prev?.ModifyIndex !== cas) return false;
    if (prev) this.checkChains(key, undefined);
    const idx = this.options.nextIndex();
    this.entries.delete(key);
    this.changed(idx);
    return true;
  }

  /** Compile every chain any stored entry names, with the change applied; 500 on the first error. */
  private checkChains(key: string, entry: Json | undefined): void {
    const view: EntryLookup = {
      get: (k, n) => (`${k}/${n}` === key ? entry : this.get(k, n)),
    };
    const names = new Set<string>();
    for (const [k, s] of this.entries) if (k !== key) names.add(String(s.entry.Name));
    if (entry) names.add(String(entry.Name));
    names.delete('global');
    for (const name of names) {
      try {
        compileDiscoveryChain(view, name, { datacenter: this.datacenter, clusterId: this.clusterId });
      } catch (error) {
        if (error instanceof ChainError) throw new HttpError(500, error.message);
        throw error;
      }
    }
  }

  private changed(idx: number): void {
    this.tableIndex = idx;
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w();
  }

  /** A write that changes nothing but moves the table index (spurious wake-up). */
  touch(): void {
    this.changed(this.options.nextIndex());
  }

  /** Wake every blocked reader (the double is closing). */
  close(): void {
    this.changed(this.tableIndex);
  }

  /** Resolve on the next change, or after `ms`; false when the response closed first. */
  waitChange(ms: number, res: ServerResponse): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (v: boolean): void => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        res.off('close', onClose);
        resolve(v);
      };
      const wake = (): void => done(true);
      const onClose = (): void => done(false);
      const timer = setTimeout(() => done(true), ms);
      res.on('close', onClose);
      this.waiters.add(wake);
    });
  }

  /** The compiled chain of `service`. @throws HttpError 500 */
  chain(service: string, overrides: ChainOverrides = {}): Json {
    try {
      return compileDiscoveryChain(this, service, {
        datacenter: this.datacenter,
        clusterId: this.clusterId,
        overrides,
      });
    } catch (error) {
      if (error instanceof ChainError) throw new HttpError(500, error.message);
      throw error;
    }
  }
}
