import { type ConfigIssue, type Env, Issues, issuesError, MeshError } from '@proxyless/core';
import { parseEndpointList, readEnvEndpoints } from '@proxyless/discovery';
import {
  changedRoles,
  type EffectiveConfig,
  effectiveConfig,
  type PolicyRole,
  type ResolvedPolicy,
  resolvePolicy,
} from './effective.js';
import { type EndpointSources, shadowedEndpoints } from './endpoint-shadows.js';
import {
  carryVersions,
  type DocumentLayers,
  envLayer,
  type Layer,
  PolicyMemo,
  type PolicyPatch,
  parseDocumentLayers,
  parsePolicyPatch,
  readServiceEntry,
  unknownPolicyKeys,
} from './layers.js';
import { unhiddenProblems } from './refused-scopes.js';
import { type ConfigVersion, envConfigSource, optionsConfigSource } from './source.js';

/**
 * The key a service's policy is kept under: its name lower-cased, as resolvers and
 * `destinationFor` read host names (DNS and Consul names are case-insensitive), so `Payments` in
 * a layer is the policy of calls to `http://payments/` and `http://Payments/` alike.
 */
export function serviceKey(name: string): string {
  return name.toLowerCase();
}

/**
 * A warning of one service's merged config; `service: undefined` is a warning of the defaults
 * (every service that does not override the setting), its `field` prefixed with `defaults.`.
 */
export type Warning = ConfigIssue & { service: string | undefined };

/** What checking the merged layers gives: warnings, and the merged settings of each named service. */
export interface Checked {
  warnings: Warning[];
  /** Services with the same layers share one object. */
  resolved: Map<string, ResolvedPolicy>;
}

/** What tells one problem from another: its field, expectation and value. */
function issueKey(i: ConfigIssue): string {
  return `${i.field}\0${i.expected}\0${JSON.stringify(i.value)}`;
}

function asRecord(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;
}

/**
 * The configuration of a mesh: the layers from options and the environment (fixed at start) and
 * the last good document from the file (later: the registry). Layering, lowest first: built-in
 * defaults → `options.defaults` → env → document `defaults` → `options.services[s]` → document
 * `services[s]` (by reach: every layer for all services before every layer for one). A document version is validated whole, merged rules included, before it is
 * swapped in; a rejected one changes nothing.
 */
export class ConfigStore {
  readonly #optionsDefaults: Layer;
  readonly #env: Layer;
  /** By `serviceKey`; `#optionsSpelled`: the key → the name as `options.services` spells it. */
  readonly #optionsServices = new Map<string, Layer>();
  readonly #optionsSpelled = new Map<string, string>();
  #document: DocumentLayers | undefined;
  #effective = new Map<string, EffectiveConfig>();
  /** The merged settings of the services the document in force names (checked with it). */
  #resolved: ReadonlyMap<string, ResolvedPolicy> = new Map();
  /** Policies of earlier documents already validated (a new version mostly repeats them). */
  readonly #memo = new PolicyMemo();
  /**
   * What gives a service's endpoints ahead of the document (the first resolver that knows a
   * service wins: code options, then `MESH_ENDPOINTS_*`): by `serviceKey`, the options' entries
   * that list endpoints; by variable suffix, the variables set.
   */
  readonly #optionsEndpoints = new Set<string>();
  /** What gives endpoints before the document (see `shadowedEndpoints`). */
  readonly #endpointSources: EndpointSources;

  /**
   * Options and env layers, each the one version of its static source (`optionsConfigSource`,
   * `envConfigSource`); every problem is recorded in `issues`.
   */
  /**
   * The layers from `createMesh` options (`defaults`, `services`) and from the environment, as
   * `createMesh` and `checkConfigDocument` both read them; every problem is recorded in `issues`.
   */
  static fromCodeAndEnv(
    options: { defaults?: unknown; services?: unknown },
    env: Env,
    issues: Issues,
  ): ConfigStore {
    return new ConfigStore(
      optionsConfigSource({ defaults: options.defaults, services: options.services }).current(),
      envConfigSource(env).current(),
      issues,
    );
  }

  constructor(options: ConfigVersion, envVersion: ConfigVersion, issues: Issues) {
    const env = (envVersion.document ?? {}) as Env;
    const doc = asRecord(options.document) ?? {};
    const defaults = asRecord(doc.defaults);
    if (doc.defaults !== undefined && !defaults) issues.add('options.defaults', 'an object', doc.defaults);
    if (defaults) unknownPolicyKeys(defaults, 'options.defaults', issues, false);
    this.#optionsDefaults = {
      name: 'options.defaults',
      version: options.version,
      raw: defaults,
      patch: parsePolicyPatch(defaults, 'options.defaults', issues),
    };
    this.#env = envLayer(env, issues);
    // Endpoints from the environment are checked with everything else, so one error lists them all.
    this.#endpointSources = {
      optionsEndpoints: this.#optionsEndpoints,
      optionsSpelled: this.#optionsSpelled,
      envEndpoints: readEnvEndpoints(env, issues),
      env,
    };
    const services = asRecord(doc.services);
    if (doc.services !== undefined && !services) issues.add('options.services', 'an object', doc.services);
    const seen = new Set<string>();
    for (const [name, entry] of Object.entries(services ?? {})) {
      const path = `options.services.${name}`;
      const read = readServiceEntry(name, entry, path, seen, issues);
      if (read === undefined) continue;
      const { entry: given, policy } = read;
      // The endpoints belong to the static resolver; checked here with the rest.
      if (given.endpoints !== undefined) {
        parseEndpointList(given.endpoints, `${path}.endpoints`, issues);
        this.#optionsEndpoints.add(serviceKey(name));
      }
      // `endpoints` is a key of a service entry here as in the document: a misspelt key's hint
      // lists it with the policy sections.
      unknownPolicyKeys(given, path, issues, true);
      this.#optionsSpelled.set(serviceKey(name), name);
      this.#optionsServices.set(serviceKey(name), {
        name: 'options.services',
        version: options.version,
        raw: policy,
        patch: parsePolicyPatch(policy, path, issues),
      });
    }
  }

  /** The last good document (from the file), if any. */
  get document(): DocumentLayers | undefined {
    return this.#document;
  }

  /** The layers of `service`'s own entries (in code options and in the document). */
  #ownLayers(service: string | undefined, doc: DocumentLayers | undefined): Layer[] | undefined {
    if (service === undefined) return undefined;
    const key = serviceKey(service);
    const own = this.#optionsServices.get(key);
    const d = doc?.services.get(key);
    if (own === undefined) return d === undefined ? undefined : [d];
    return d === undefined ? [own] : [own, d];
  }

  /**
   * The layers of one service, in any spelling (or of any other service, for `undefined`), lowest
   * first.
   */
  layersFor(service: string | undefined, doc = this.#document): Layer[] {
    // Every mesh-wide layer first, then the service's own: a setting for one service beats one
    // for every service, wherever each is written (a document's `defaults` does not turn back on
    // what code turned off for one service). Among layers of the same reach the document wins.
    const layers = [this.#optionsDefaults, this.#env];
    if (doc) layers.push(doc.defaults);
    const key = service === undefined ? undefined : serviceKey(service);
    const own = key === undefined ? undefined : this.#optionsServices.get(key);
    if (own) layers.push(own);
    const d = key === undefined || doc === undefined ? undefined : doc.services.get(key);
    if (d) layers.push(d);
    return layers;
  }

  /**
   * Rules that only hold across layers (a health check's `path` from some layer, a ring's min
   * below its max, `maxPendingRequests` with a queue): checked for every named service and for
   * the rest (defaults only). Gives the warnings (rules that warn instead) and the effective
   * config of every named service, so a swap reuses them.
   */
  /**
   * The variables that set fields of `field`'s section, for a message about merged layers: the
   * rule may compare a field the user set through the environment with one they never wrote.
   */
  #envNote(field: string, layers: readonly Layer[]): string {
    const set = this.#envSet(field);
    // A section's `false` discards what the layers below it set: a rule broken only since then
    // (`rateLimit.rps` gone, `burst` set above) names the `false`, not only the variable it hid.
    const section = field.split('.')[0] ?? '';
    let off = -1;
    for (let i = 0; i < layers.length; i++) if (layers[i]!.raw?.[section] === false) off = i;
    // Named only where it discarded something.
    const envAt = layers.indexOf(this.#env);
    if (!layers.slice(0, off).some((l, i) => (i === envAt ? set !== '' : isObject(l.raw?.[section]))))
      off = -1;
    const offText = off < 0 ? '' : `${section}: false in ${layers[off]!.name}`;
    if (set === '') return off < 0 ? '' : `; ${offText} discards what the layers below it set`;
    return off > envAt ? `; set through ${set}, which ${offText} discards` : `; set through ${set}`;
  }

  /** `NAME=value` of each variable that sets a field of `field`'s section, or `''`. */
  #envSet(field: string): string {
    const section = field.split('.')[0] ?? '';
    const set = [...(this.#env.env ?? [])]
      .filter(([path]) => path === section || path.startsWith(`${section}.`))
      .map(([, v]) => `${v.name}=${v.raw}`);
    // A variable that turns its section off is recorded at the section and at its own field.
    return [...new Set(set)].join(', ');
  }

  /**
   * A warning as events and the admin show it: an operator who configures through the environment
   * alone has no document path to look for, so the variables behind the field are named.
   */
  #withEnv(w: ConfigIssue): ConfigIssue {
    const set = this.#envSet(w.field);
    return set === '' ? w : { ...w, expected: `${w.expected} (set through ${set})` };
  }

  check(
    doc: DocumentLayers | undefined,
    issues: Issues,
    skip?: (service: string | undefined) => boolean,
  ): Checked {
    const names = new Set([...this.#optionsServices.keys(), ...(doc?.services.keys() ?? [])]);
    // Variables ignored because another one turns their section off: warned with the rest.
    const warnings: Warning[] = (this.#env.dropped ?? []).map((i) => ({ ...i, service: undefined }));
    const resolved = new Map<string, ResolvedPolicy>();
    // Services whose only own layer is the document's share their merge with every service that
    // has the same policy (the same patch object: see PolicyMemo).
    const merged = new Map<PolicyPatch, ResolvedPolicy>();
    const ofDefaults = new Set<string>();
    const warnedDefaults = new Set<string>();
    const one = (service: string | undefined, where: string): void => {
      if (skip?.(service)) return;
      const own =
        service !== undefined && !this.#optionsServices.has(service)
          ? doc?.services.get(service)?.patch
          : undefined;
      let r = own === undefined ? undefined : merged.get(own);
      if (r === undefined) {
        const layers = this.layersFor(service, doc);
        try {
          // The service's own entries (options, document): what they set that its policy does
          // not read is warned; the defaults and the environment hold for every policy.
          r = resolvePolicy(layers, this.#ownLayers(service, doc));
        } catch (error) {
          if (!MeshError.is(error, 'MESH_CONFIG_INVALID')) throw error;
          for (const i of error.details.issues ?? [
            { field: '', expected: error.message, value: undefined },
          ]) {
            // A problem of the defaults is every service's: said once, not again per service.
            const key = issueKey(i);
            if (service === undefined) ofDefaults.add(key);
            else if (ofDefaults.has(key)) continue;
            // Named by its full path, as every other problem (`services.payments.retry.maxRetries`);
            // that the rule held only once the layers were merged is said with what it expects.
            issues.add(
              i.field === '' ? where : `${where}.${i.field}`,
              `${i.expected} (all layers merged${this.#envNote(i.field, layers)})`,
              i.value,
            );
          }
          return;
        }
        if (own !== undefined) merged.set(own, r);
      }
      if (service !== undefined) resolved.set(service, r);
      // Likewise a warning of the defaults: once, naming them, not once more per service that
      // inherits it (a document of 1,000 services would flood the admin's event buffer).
      for (const w of r.warnings) {
        const key = issueKey(w);
        if (service === undefined) {
          warnedDefaults.add(key);
          warnings.push({ ...this.#withEnv(w), field: `defaults.${w.field}`, service });
        } else if (!warnedDefaults.has(key)) warnings.push({ ...this.#withEnv(w), service });
      }
    };
    one(undefined, 'defaults');
    for (const name of names)
      one(name, `services.${doc?.spelled.get(name) ?? this.#optionsSpelled.get(name) ?? name}`);
    warnings.push(...shadowedEndpoints(this.#endpointSources, doc));
    return { warnings, resolved };
  }

  /**
   * Validate a document version whole. Returns its layers (with the merged settings of every
   * service it names), or the error listing every problem (the last good document stays in force).
   */
  validate(version: ConfigVersion, what: string): ({ layers: DocumentLayers } & Checked) | MeshError {
    const issues = new Issues();
    const layers = parseDocumentLayers(version.document, version.version, issues, this.#memo, version.source);
    if (issues.ok) {
      const checked = this.check(layers, issues);
      if (issues.ok) return { layers, ...checked };
      return issuesError(`${what} (version ${version.version})`, asWritten(version.document, issues.list));
    }
    // One error lists every problem: the rules across layers are checked too, over the sections
    // that passed, and reported where no refused value may have caused them (refused-scopes.ts).
    const whole = issues.list.some((i) => i.field === '$' || i.field === 'services');
    if (!whole) {
      const merged = new Issues();
      this.check(layers, merged);
      issues.list.push(...asWritten(version.document, unhiddenProblems(layers, issues.list, merged.list)));
    }
    return issuesError(`${what} (version ${version.version})`, issues.list);
  }

  /**
   * Whether the layers below the document (options, environment) fail once merged without any
   * document: their problems are then theirs, not a document's.
   */
  failsWithoutDocument(): boolean {
    const issues = new Issues();
    this.check(undefined, issues);
    return !issues.ok;
  }

  /**
   * The problems of a document version on its own (shape, names, endpoints, each layer's values),
   * without the rules that span layers: what `createMesh` still reports for the file when the
   * options or environment layers below it are invalid, so one error lists every problem.
   */
  documentIssues(version: ConfigVersion): readonly ConfigIssue[] {
    const issues = new Issues();
    parseDocumentLayers(version.document, version.version, issues, new PolicyMemo(), version.source);
    return issues.list;
  }

  /**
   * Swap in a validated document. Returns, for each of `live` services, the roles whose
   * effective settings changed: only those need rebuilding, and an unchanged document changes none.
   */
  swap(
    layers: DocumentLayers,
    live: Iterable<string>,
    resolved?: ReadonlyMap<string, ResolvedPolicy>,
  ): Map<string, PolicyRole[]> {
    const before = new Map<string, EffectiveConfig>();
    const services = [...live];
    for (const s of services) before.set(s, this.effective(s));
    this.#document = carryVersions(layers, this.#document);
    this.#resolved = resolved ?? new Map();
    this.#effective = new Map();
    const changed = new Map<string, PolicyRole[]>();
    for (const s of services) {
      const roles = changedRoles(before.get(s), this.effective(s));
      if (roles.length > 0) changed.set(s, roles);
    }
    return changed;
  }

  /** The services some layer names (lower-cased): `createMesh({ services })` and the document in force. */
  serviceNames(): string[] {
    return [...new Set([...this.#optionsServices.keys(), ...(this.#document?.services.keys() ?? [])])];
  }

  /**
   * The effective config of a service, in any spelling (its `service` is the lower-cased key):
   * resolved settings with the layer and version of each.
   */
  effective(service: string): EffectiveConfig {
    const key = serviceKey(service);
    let e = this.#effective.get(key);
    if (e === undefined) {
      const layers = this.layersFor(key);
      // Merged when the version in force was checked; else (no document: code options and env
      // alone) now, with the service's own layers, so that what they set and nothing reads is
      // warned here as it is in events.
      const resolved = this.#resolved.get(key) ?? resolvePolicy(layers, this.#ownLayers(key, this.#document));
      e = effectiveConfig(key, layers, resolved);
      this.#effective.set(key, e);
    }
    return e;
  }
}

/**
 * Problems of the rules across layers carry the merged, parsed value (a duration in
 * milliseconds); where the document itself sets the field, the value is quoted as the document
 * writes it (`"1s"`, not `1000`), as every problem of a single field is.
 */
function asWritten(document: unknown, list: readonly ConfigIssue[]): ConfigIssue[] {
  return list.map((i) => {
    if (typeof i.value !== 'number') return i;
    const written = writtenAt(document, i.field);
    return written === undefined || written === i.value ? i : { ...i, value: written };
  });
}

/** The primitive value a config document writes at `field` (`services.<name>.a.b`, `defaults.a.b`). */
function writtenAt(document: unknown, field: string): string | number | undefined {
  const doc = document as { defaults?: unknown; services?: unknown } | null;
  if (typeof doc !== 'object' || doc === null) return undefined;
  let node: unknown;
  let rest: string;
  if (field.startsWith('defaults.')) {
    node = doc.defaults;
    rest = field.slice('defaults.'.length);
  } else if (field.startsWith('services.') && typeof doc.services === 'object' && doc.services !== null) {
    // Longest name first: a service `a.b` is not the section `b` of a service `a`.
    const names = Object.keys(doc.services)
      .filter((n) => field.startsWith(`services.${n}.`))
      .sort((x, y) => y.length - x.length);
    const name = names[0];
    if (name === undefined) return undefined;
    node = (doc.services as Record<string, unknown>)[name];
    rest = field.slice(`services.${name}.`.length);
  } else return undefined;
  for (const key of rest.split('.')) {
    if (typeof node !== 'object' || node === null || !Object.hasOwn(node, key)) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return typeof node === 'string' || typeof node === 'number' ? node : undefined;
}

function isObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null;
}
