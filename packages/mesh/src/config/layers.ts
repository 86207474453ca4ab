import {
  type BalancerConfig,
  type BalancerPatch,
  balancerPatchFromEnv,
  balancerSchema,
  parseBalancerPatch,
  resolveBalancerPatches,
} from '@proxyless/balancer';
import {
  type ConfigIssue,
  type EndpointInit,
  type Env,
  envDroppedIssue,
  envToDocument,
  Issues,
  MeshError,
  SectionMemo,
  validator,
} from '@proxyless/core';
import { parseEndpointList } from '@proxyless/discovery';
import {
  parseResiliencePatch,
  type ResilienceConfig,
  type ResiliencePatch,
  resiliencePatchFromEnv,
  resilienceSchema,
  resolveParsedPatches,
} from '@proxyless/resilience';
import { configDocumentSchema, policySchema, serviceEntrySchema } from './schema.js';
import { checkServiceName } from './service-name.js';

/** The policy settings one layer contributes, parsed and validated. */
export interface PolicyPatch {
  balancer: BalancerPatch | undefined;
  resilience: ResiliencePatch | undefined;
}

/**
 * Where a layer comes from, lowest precedence first: `createMesh` options, the environment, then
 * the config document's source — `file` (`MESH_CONFIG_FILE`) or a `configSource` by its name.
 */
export type LayerName =
  | 'options.defaults'
  | 'env'
  | 'options.services'
  | 'file.defaults'
  | 'file.services'
  | `${string}.defaults`
  | `${string}.services`;

/** One layer of one service's policy: what it says as written, and as parsed. */
export interface Layer {
  readonly name: LayerName;
  /** The version of the source document (options and env: 1; the file: counts applied versions). */
  readonly version: number;
  /** The policy as written (document shape), for provenance. */
  readonly raw: Readonly<Record<string, unknown>> | undefined;
  readonly patch: PolicyPatch;
  /** The env layer: each document path it sets → the variable and value that set it. */
  readonly env?: ReadonlyMap<string, { readonly name: string; readonly raw: string }>;
  /** The env layer: variables ignored because another one turns their section off (warnings). */
  readonly dropped?: readonly ConfigIssue[];
  /**
   * A document layer: each path of `raw` whose value is the same as in the document's earlier
   * versions → the first version of that unbroken run (see {@link carryVersions}).
   */
  readonly since?: ReadonlyMap<string, number>;
}

const EMPTY: PolicyPatch = Object.freeze({ balancer: undefined, resilience: undefined });

/** Parse the policy keys of one service entry (or a `defaults` block); issues are collected by path. */
export function parsePolicyPatch(
  entry: Record<string, unknown> | undefined,
  path: string,
  issues: Issues,
  sections?: SectionMemo,
): PolicyPatch {
  if (!entry) return EMPTY;
  // With a problem, the sections that passed still make the patch: a rejected document is checked
  // for its rules across layers too, so that one error lists every problem (ConfigStore.validate).
  return {
    balancer: parseBalancerPatch(entry, path, issues, sections, true),
    resilience: parseResiliencePatch(entry, path, issues, sections, true),
  };
}

/** Policy settings from environment variables (mesh-wide defaults), and the document they make. */
export function envLayer(env: Env, issues: Issues): Layer {
  const patch = {
    balancer: issues.try(() => balancerPatchFromEnv(env)),
    resilience: issues.try(() => resiliencePatchFromEnv(env)),
  };
  const balancer = envToDocument(balancerSchema, env);
  const resilience = envToDocument(resilienceSchema, env);
  const raw = { ...balancer.document, ...resilience.document };
  const dropped = [...balancer.dropped, ...resilience.dropped].map(envDroppedIssue);
  return {
    name: 'env',
    version: 1,
    raw,
    patch,
    env: new Map([...balancer.names, ...resilience.names]),
    ...(dropped.length > 0 ? { dropped } : {}),
  };
}

/** Policy settings from environment variables (mesh-wide defaults). */
export function policyPatchFromEnv(env: Env, issues: Issues): PolicyPatch {
  return envLayer(env, issues).patch;
}

/** The layers a config document contributes, plus the endpoints it lists. */
export interface DocumentLayers {
  readonly version: number;
  readonly defaults: Layer;
  /** Lower-cased service name (see `serviceKey`) → the layer of its entry. */
  readonly services: ReadonlyMap<string, Layer>;
  /** Lower-cased service name → the name as the document spells it (for messages). */
  readonly spelled: ReadonlyMap<string, string>;
  /** Lower-cased service name → endpoints listed in the document. */
  readonly endpoints: ReadonlyMap<string, readonly EndpointInit[]>;
}

const documentCheck = validator(configDocumentSchema);

/**
 * One entry of a `services` map: its name checked ({@link checkServiceName}), the entry an object,
 * and its policy (the entry less its endpoints). `undefined` when it cannot be read (recorded).
 */
export function readServiceEntry(
  name: string,
  value: unknown,
  field: string,
  seen: Set<string>,
  issues: Issues,
): { entry: Record<string, unknown>; policy: Record<string, unknown> } | undefined {
  if (!checkServiceName(name, field, seen, issues)) return undefined;
  const entry = asRecord(value);
  if (!entry) {
    issues.add(field, 'an object', value);
    return undefined;
  }
  // A copy loop: an object rest pattern is slow.
  const policy: Record<string, unknown> = {};
  for (const k in entry) if (k !== 'endpoints') policy[k] = entry[k];
  return { entry, policy };
}

function asRecord(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;
}

/**
 * Valid policies already parsed, by their JSON text: a document lists many services with the same
 * policy (and a new version mostly repeats the last), and a policy's validity and patch do not
 * depend on the service it is written under. Only policies that parsed without an issue are kept.
 */
export class PolicyMemo {
  /** Sections parsed already (keyed when JSON data exactly: see `SectionMemo`). */
  readonly sections = new SectionMemo();
  #previous = new Map<string, PolicyPatch>();
  #current = new Map<string, PolicyPatch>();

  /** The patch of an already-validated policy, or `undefined` to parse it. */
  get(key: string): PolicyPatch | undefined {
    const hit = this.#current.get(key) ?? this.#previous.get(key);
    if (hit !== undefined) this.#current.set(key, hit);
    return hit;
  }

  set(key: string, patch: PolicyPatch): void {
    this.#current.set(key, patch);
  }

  /** Keep what the latest document used (bounded by its size), drop the rest. */
  rotate(): void {
    this.#previous = this.#current;
    this.#current = new Map();
    this.sections.nextDocument();
  }
}

/**
 * JSON text naming a policy exactly, or `undefined` when it is not JSON data exactly (a source
 * built in code may hand an `undefined` member, which `JSON.stringify` drops): such a policy is
 * parsed and checked in full, never found under the key of another.
 */
function memoKey(policy: Record<string, unknown>): string | undefined {
  return SectionMemo.keyOf(policy);
}

/** Policy lookups after which a document whose policies are rarely found stops keying them. */
const KEYING_SAMPLE = 128;

/**
 * Validate a whole config document (every problem by path, at once) and split it into layers.
 * Nothing of it may be applied when `issues` is not empty afterwards.
 */
export function parseDocumentLayers(
  doc: unknown,
  version: number,
  issues: Issues,
  memo: PolicyMemo = new PolicyMemo(),
  source = 'file',
): DocumentLayers {
  const defaultsLayer: LayerName = `${source}.defaults`;
  const servicesLayer: LayerName = `${source}.services`;
  const services = new Map<string, Layer>();
  const spelled = new Map<string, string>();
  const endpoints = new Map<string, readonly EndpointInit[]>();
  const root = asRecord(doc);
  if (!root) {
    issues.add('$', 'an object', doc);
    return {
      version,
      defaults: { name: defaultsLayer, version, raw: undefined, patch: EMPTY },
      services,
      spelled,
      endpoints,
    };
  }
  // `configEntries` (Consul config entries) are validated and compiled by the routing model.
  const unknown = Object.keys(root).filter(
    (k) => k !== '$schema' && k !== 'defaults' && k !== 'services' && k !== 'configEntries',
  );
  if (unknown.length > 0 || (root.$schema !== undefined && typeof root.$schema !== 'string'))
    documentCheck.validate(Object.fromEntries([...unknown, '$schema'].map((k) => [k, root[k]])), '', issues);
  const defaultsRaw = root.defaults === undefined ? undefined : asRecord(root.defaults);
  if (root.defaults !== undefined && !defaultsRaw) issues.add('defaults', 'an object', root.defaults);
  const defaults: Layer = {
    name: defaultsLayer,
    version,
    raw: defaultsRaw,
    patch: parsePolicyPatch(defaultsRaw, 'defaults', issues),
  };
  if (defaultsRaw) unknownPolicyKeys(defaultsRaw, 'defaults', issues, false);
  const entries = root.services === undefined ? {} : asRecord(root.services);
  if (!entries) issues.add('services', 'an object', root.services);
  const seen = new Set<string>();
  let keying = true;
  let lookups = 0;
  let hits = 0;
  const all = entries ?? {};
  for (const name in all) {
    if (!Object.hasOwn(all, name)) continue;
    const value = all[name];
    const field = `services.${name}`;
    const read = readServiceEntry(name, value, field, seen, issues);
    if (read === undefined) continue;
    const { entry, policy } = read;
    const key = keying ? memoKey(policy) : undefined;
    let patch = key === undefined ? undefined : memo.get(key);
    if (key !== undefined) {
      lookups++;
      if (patch !== undefined) hits++;
      // Policies that do not repeat (every service its own) gain nothing from their JSON key:
      // after enough lookups with few found, the rest of this document is parsed without keys.
      if (lookups >= KEYING_SAMPLE && hits * 8 < lookups) keying = false;
    }
    let found = 0;
    if (patch === undefined) {
      const before = issues.list.length;
      unknownPolicyKeys(entry, field, issues, true);
      found = issues.list.length - before;
    }
    // Lower-cased, as host names are matched: `Payments` is the policy of `http://payments/`.
    const lower = name.toLowerCase();
    if (entry.endpoints !== undefined) {
      const list = parseEndpointList(entry.endpoints, `${field}.endpoints`, issues);
      if (list) endpoints.set(lower, Object.freeze(list));
    }
    if (patch === undefined) {
      const before = issues.list.length;
      // A keyed policy is JSON data exactly, and so is every section of it: not walked again.
      patch =
        key === undefined
          ? parsePolicyPatch(policy, field, issues, memo.sections)
          : memo.sections.exactly(true, () => parsePolicyPatch(policy, field, issues, memo.sections));
      if (key !== undefined && found === 0 && issues.list.length === before) memo.set(key, patch);
    }
    services.set(lower, { name: servicesLayer, version, raw: policy, patch });
    spelled.set(lower, name);
  }
  memo.rotate();
  return { version, defaults, services, spelled, endpoints };
}

const entryCheck = validator(serviceEntrySchema);
const defaultsCheck = validator(policySchema);

/** Unknown keys of a service entry or `defaults` block, with the nearest valid name. */
export function unknownPolicyKeys(
  entry: Record<string, unknown>,
  field: string,
  issues: Issues,
  endpoints: boolean,
): void {
  const known = entryCheck.schema.properties as Record<string, unknown>;
  // A plain loop, no array for an entry without unknown keys (every entry of a valid document).
  let extra: string[] | undefined;
  for (const k in entry) {
    if (!Object.hasOwn(entry, k)) continue;
    if (Object.hasOwn(known, k) && (endpoints || k !== 'endpoints')) continue;
    if (extra === undefined) extra = [];
    extra.push(k);
  }
  if (extra === undefined) return;
  (endpoints ? entryCheck : defaultsCheck).validate(
    Object.fromEntries(extra.map((k) => [k, entry[k]])),
    field,
    issues,
  );
}

/** The merged policy of one service; throws `MESH_CONFIG_INVALID` on rules that span layers. */
export function resolveLayers(layers: readonly Layer[]): {
  balancer: BalancerConfig;
  resilience: ResilienceConfig;
} {
  // Plain loops, no closure: this runs for every service of a document, in code V8 has not
  // compiled yet at start.
  const balancerPatches: NonNullable<PolicyPatch['balancer']>[] = [];
  const resiliencePatches: NonNullable<PolicyPatch['resilience']>[] = [];
  for (let i = 0; i < layers.length; i++) {
    const patch = layers[i]!.patch;
    if (patch.balancer) balancerPatches.push(patch.balancer);
    if (patch.resilience) resiliencePatches.push(patch.resilience);
  }
  let balancer: BalancerConfig | undefined;
  let resilience: ResilienceConfig | undefined;
  let issues: Issues | undefined;
  try {
    balancer = resolveBalancerPatches(balancerPatches);
  } catch (error) {
    issues = new Issues();
    issues.record(error);
  }
  try {
    resilience = resolveParsedPatches(resiliencePatches);
  } catch (error) {
    issues ??= new Issues();
    issues.record(error);
  }
  issues?.throwIfAny('policy (all layers merged)');
  return { balancer: balancer as BalancerConfig, resilience: resilience as ResilienceConfig };
}

/**
 * Resolve the merged policy of one service, recording cross-layer problems at their full path
 * under `where` (`services.payments`, `defaults`): `services.payments.healthCheck.timeout`.
 */
export function checkMergedPolicy(layers: readonly Layer[], where: string, issues: Issues): void {
  try {
    resolveLayers(layers);
  } catch (error) {
    if (!MeshError.is(error, 'MESH_CONFIG_INVALID')) throw error;
    for (const i of error.details.issues ?? [{ field: '', expected: error.message, value: undefined }]) {
      issues.add(
        i.field === '' ? where : `${where}.${i.field}`,
        `${i.expected} (all layers merged)`,
        i.value,
      );
    }
  }
}

/**
 * The layers of a document version about to be swapped in, each knowing since which earlier version
 * of the same source every one of its settings has been what it is: `mesh.config(s).sources` then
 * names the version that last changed a setting, not the version in force.
 */
export function carryVersions(next: DocumentLayers, previous: DocumentLayers | undefined): DocumentLayers {
  if (previous === undefined) return next;
  const carry = (layer: Layer, old: Layer | undefined): Layer => {
    if (old === undefined || old.name !== layer.name || !layer.raw || !old.raw) return layer;
    const since = new Map<string, number>();
    const walk = (value: unknown, was: unknown, path: string): void => {
      if (!sameJson(value, was)) {
        // Unchanged fields of a changed section keep their own versions.
        if (isRecord(value) && isRecord(was))
          for (const k of Object.keys(value)) walk(value[k], was[k], `${path}.${k}`);
        return;
      }
      since.set(path, old.since?.get(path) ?? old.version);
      if (isRecord(value) && isRecord(was))
        for (const k of Object.keys(value)) walk(value[k], was[k], `${path}.${k}`);
    };
    for (const key of Object.keys(layer.raw)) {
      if (key === 'endpoints') continue;
      walk(layer.raw[key], old.raw[key], key);
    }
    return since.size === 0 ? layer : { ...layer, since };
  };
  const services = new Map<string, Layer>();
  for (const [key, layer] of next.services) services.set(key, carry(layer, previous.services.get(key)));
  return { ...next, defaults: carry(next.defaults, previous.defaults), services };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Equality of JSON data (what documents are), keys in any order. */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every(
    (k) =>
      Object.hasOwn(b, k) && sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]),
  );
}
