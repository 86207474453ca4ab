/**
 * The balancer configuration: one schema declaration per section (under `sections/`), the
 * resolved types the balancer reads, and the layering. Documents, options and `MESH_*` variables
 * all go through the same validators.
 */
import {
  at,
  type Env,
  type EnvVarSpec,
  envFields,
  envIssues,
  envSpec,
  envToDocument,
  Fields,
  frozenCopy,
  Issues,
  type SectionMemo,
  type Static,
  Type,
  unknownKeys,
  validator,
} from '@proxyless/core';
import {
  DEFAULT_HEALTH_CHECK,
  type HealthCheckConfig,
  type HealthCheckPatch,
  healthCheckPatch,
  healthCheckSection,
} from './sections/health-check.js';
import {
  DEFAULT_LOAD_BALANCER,
  DEFAULT_SLOW_START,
  type LoadBalancerConfig,
  type LoadBalancerPatch,
  loadBalancerPatch,
  loadBalancerRules,
  loadBalancerSection,
} from './sections/load-balancer.js';
import {
  DEFAULT_OUTLIER_DETECTION,
  type OutlierDetectionConfig,
  type OutlierDetectionPatch,
  outlierDetectionPatch,
  outlierDetectionSection,
} from './sections/outlier-detection.js';

export * from './sections/health-check.js';
export * from './sections/load-balancer.js';
export * from './sections/outlier-detection.js';

/** Every balancer section of a service entry, by key: one schema declaration each. */
export const balancerProperties = {
  loadBalancer: Type.Optional(loadBalancerSection),
  outlierDetection: Type.Optional(outlierDetectionSection),
  healthCheck: Type.Optional(healthCheckSection),
};

/** The balancer keys of a service entry, as a schema. */
export const balancerSchema = Fields(balancerProperties);

/** The balancer keys of a service entry as written (document or options). */
export type BalancerOptions = Static<typeof balancerSchema>;

/** Top-level keys of a service entry owned by this package. */
export const BALANCER_CONFIG_KEYS: readonly string[] = Object.freeze(Object.keys(balancerProperties));

/** Fully resolved balancer configuration (defaults applied). Plain JSON data. */
export interface BalancerConfig {
  readonly loadBalancer: LoadBalancerConfig;
  readonly outlierDetection: OutlierDetectionConfig;
  /** Active health checks; off when absent. */
  readonly healthCheck?: HealthCheckConfig;
}

/** A partial balancer configuration from one layer (all fields optional). */
export interface BalancerPatch {
  loadBalancer?: LoadBalancerPatch;
  /**
   * `false` turns detection off and discards what earlier layers set in it (a later object starts
   * from the defaults); `{ enabled: false }` turns it off and keeps them.
   */
  outlierDetection?: OutlierDetectionPatch | false;
  /** `false` turns off a health check an earlier layer configured. */
  healthCheck?: HealthCheckPatch;
}

/** The defaults, before any layer. */
export const DEFAULT_BALANCER_CONFIG: BalancerConfig = Object.freeze({
  loadBalancer: DEFAULT_LOAD_BALANCER,
  outlierDetection: DEFAULT_OUTLIER_DETECTION,
});

const check = validator(balancerSchema);
const sectionChecks = {
  loadBalancer: validator(loadBalancerSection),
  outlierDetection: validator(outlierDetectionSection),
  healthCheck: validator(healthCheckSection),
};

/**
 * Validate a balancer document section by section (every problem at once, cross-field ones
 * included) and turn the valid sections into a patch.
 */
export function balancerPatchOf(
  doc: unknown,
  path: string,
  issues: Issues,
  memo?: SectionMemo,
): BalancerPatch {
  const p: BalancerPatch = {};
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    check.validate(doc, path, issues);
    return p;
  }
  const d = doc as Record<string, unknown>;
  const unknown = unknownKeys(d, balancerProperties);
  if (unknown !== undefined) check.validate(Object.fromEntries(unknown.map((k) => [k, d[k]])), path, issues);
  // Plain code, no closure but the memo's: this runs for every service of a document, in code V8
  // has not compiled yet at start.
  const { loadBalancer: lb, outlierDetection: od, healthCheck: hc } = d;
  if (lb !== undefined) {
    const patch = memo
      ? memo.read('loadBalancer', lb, path, issues, parseLoadBalancer)
      : parseLoadBalancer(lb, path, issues);
    if (patch !== undefined) p.loadBalancer = patch;
  }
  if (od !== undefined) {
    const patch = memo
      ? memo.read('outlierDetection', od, path, issues, parseOutlierDetection)
      : parseOutlierDetection(od, path, issues);
    if (patch !== undefined) p.outlierDetection = patch;
  }
  if (hc !== undefined) {
    const patch = memo
      ? memo.read('healthCheck', hc, path, issues, parseHealthCheck)
      : parseHealthCheck(hc, path, issues);
    if (patch !== undefined) p.healthCheck = patch;
  }
  return p;
}

function parseLoadBalancer(lb: unknown, path: string, issues: Issues): LoadBalancerPatch | undefined {
  const c = sectionChecks.loadBalancer;
  const ok = c.check(lb) || c.validate(lb, at(path, 'loadBalancer'), issues);
  loadBalancerRules(lb, at(path, 'loadBalancer'), issues);
  return ok ? parsed(loadBalancerPatch(lb)) : undefined;
}

function parseOutlierDetection(
  od: unknown,
  path: string,
  issues: Issues,
): OutlierDetectionPatch | false | undefined {
  const c = sectionChecks.outlierDetection;
  return c.check(od) || c.validate(od, at(path, 'outlierDetection'), issues)
    ? parsed(outlierDetectionPatch(od))
    : undefined;
}

function parseHealthCheck(hc: unknown, path: string, issues: Issues): HealthCheckPatch | undefined {
  const c = sectionChecks.healthCheck;
  return c.check(hc) || c.validate(hc, at(path, 'healthCheck'), issues)
    ? parsed(healthCheckPatch(hc))
    : undefined;
}

/**
 * Parse the balancer keys of one service entry (`loadBalancer`, `outlierDetection`,
 * `healthCheck`); other keys are left to their owners. Problems are recorded in `issues` under
 * `${path}.loadBalancer.policy` etc.
 * @returns the patch, or `undefined` when none of the keys is present.
 */
export function parseBalancerPatch(
  entry: Record<string, unknown>,
  path: string,
  issues: Issues,
  memo?: SectionMemo,
  /** Also with problems recorded: the sections that passed (a rejected document's rules across layers are still checked on them). */
  partial = false,
): BalancerPatch | undefined {
  const own: Record<string, unknown> = {};
  let any = false;
  for (let i = 0; i < BALANCER_CONFIG_KEYS.length; i++) {
    const k = BALANCER_CONFIG_KEYS[i]!;
    if (entry[k] === undefined) continue;
    own[k] = entry[k];
    any = true;
  }
  if (!any) return undefined;
  const before = issues.list.length;
  const patch = balancerPatchOf(own, path, issues, memo);
  return partial || issues.list.length === before ? patch : undefined;
}

/** Every environment variable this package reads. Blank values mean unset. */
export const balancerEnvVars: readonly EnvVarSpec[] = Object.freeze(envFields(balancerSchema).map(envSpec));

/**
 * Balancer defaults from environment variables (mesh-wide), turned into the document shape and
 * validated like a document. Blank values are unset.
 * @throws MeshError `MESH_CONFIG_INVALID` naming every bad variable and its value.
 * @returns `undefined` when no variable is set.
 */
export function balancerPatchFromEnv(env: Env): BalancerPatch | undefined {
  const { document, names, offFieldIssues } = envToDocument(balancerSchema, env);
  if (document === undefined) return undefined;
  const found = new Issues();
  const patch = balancerPatchOf(document, '', found);
  const issues = new Issues();
  envIssues([...found.list, ...offFieldIssues], names, issues);
  issues.throwIfAny('environment');
  return patch;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Merge `patch` into `base` field by field; nested plain objects merge deeply, except `hashOn` (a choice). */
function deepMerge(
  base: Record<string, unknown>,
  patch: Record<string, unknown>,
  /** A key of `patch` left out (merged apart by the caller). */
  skip?: string,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  // A for-in loop: this runs for every section of every service of a document.
  for (const k in patch) {
    if (!Object.hasOwn(patch, k) || k === skip) continue;
    const v = patch[k];
    if (v === undefined) continue;
    const prev = out[k];
    out[k] =
      k !== 'hashOn' && isPlainObject(v) && isPlainObject(prev) ? Object.freeze(deepMerge(prev, v)) : v;
  }
  return out;
}

/**
 * Whether a layer in force set `section.field`. A rule comparing two fields may compare one the user
 * set with a built-in default: the message says which. Only patches after the section's last
 * `false` count: that one discarded what came before.
 */
function setInSomeLayer(
  patches: readonly BalancerPatch[],
  section: keyof BalancerPatch,
  field: string,
  subfield?: string,
): boolean {
  for (let i = patches.length - 1; i >= 0; i--) {
    const v = patches[i]![section] as Record<string, unknown> | boolean | undefined;
    if (v === false) return false;
    if (typeof v !== 'object' || v === null) continue;
    const f = v[field];
    if (
      subfield === undefined
        ? f !== undefined
        : typeof f === 'object' && f !== null && (f as Record<string, unknown>)[subfield] !== undefined
    )
      return true;
  }
  return false;
}

/** `field` was never set: its built-in default is what the user's other field contradicts. */
function builtInNote(
  patches: readonly BalancerPatch[],
  section: keyof BalancerPatch,
  field: string,
  value: string,
  fix: string,
): string {
  return setInSomeLayer(patches, section, field)
    ? ''
    : ` (${value} is the built-in default ${section}.${field}: ${fix})`;
}

const OUTLIER_DETECTION_OFF: Record<string, unknown> = Object.freeze({
  ...DEFAULT_OUTLIER_DETECTION,
  enabled: false,
});

/** `loadBalancer` merged: `slowStart` merges over its own defaults once a layer sets it. */
function mergeLoadBalancer(
  base: Record<string, unknown>,
  patch: Record<string, unknown>,
): Record<string, unknown> {
  const out = deepMerge(base, patch, 'slowStart');
  const slowStart = patch.slowStart as Record<string, unknown> | undefined;
  if (slowStart) {
    const prev = (out.slowStart as Record<string, unknown> | undefined) ?? DEFAULT_SLOW_START;
    out.slowStart = Object.freeze(deepMerge(prev as Record<string, unknown>, slowStart));
  }
  return out;
}

/**
 * Merges already made, by the identity of what was merged: a section and the base it merged over
 * are both immutable (patches are parsed once per equal section: `SectionMemo`), so the 1,000
 * services of a document that share sections share their merged configs too.
 */
const merges = new WeakMap<object, WeakMap<object, Record<string, unknown>>>();

function merged(
  base: Record<string, unknown>,
  patch: Record<string, unknown>,
  merge: (base: Record<string, unknown>, patch: Record<string, unknown>) => Record<string, unknown>,
): Record<string, unknown> {
  // A section written by hand may change between two calls: merged again each time.
  if (!parsedSections.has(patch)) return Object.freeze(merge(base, patch));
  let byPatch = merges.get(base);
  if (byPatch === undefined) {
    byPatch = new WeakMap();
    merges.set(base, byPatch);
  }
  let out = byPatch.get(patch);
  if (out === undefined) {
    out = Object.freeze(merge(base, patch));
    byPatch.set(patch, out);
  }
  return out;
}

/** Sections the parser made (never changed after): what {@link merged} may remember merges of. */
const parsedSections = new WeakSet<object>();

function parsed<T>(section: T): T {
  // Frozen all the way down, and no list or object of the document's: what `mesh.config()` shows
  // and the stages read changes only through a layer.
  const out = frozenCopy(section);
  if (typeof out === 'object' && out !== null) parsedSections.add(out);
  return out;
}

/**
 * Resolve layers into one configuration: defaults first, then each patch in order (later wins,
 * field by field, deep for nested objects). A section's `false` discards what earlier patches set
 * in it: a later object configures it from the defaults.
 * @throws MeshError `MESH_CONFIG_INVALID` when the merged result is inconsistent
 * (e.g. `healthCheck` without `path`, `minRingSize` > `maxRingSize`).
 */
export function resolveBalancerConfig(...patches: BalancerPatch[]): BalancerConfig {
  return resolveBalancerPatches(patches);
}

/**
 * {@link resolveBalancerConfig} over a list (the mesh's layers, for every service of a document:
 * no spread call).
 * @internal
 */
export function resolveBalancerPatches(patches: readonly BalancerPatch[]): BalancerConfig {
  let lb: Record<string, unknown> = DEFAULT_LOAD_BALANCER as unknown as Record<string, unknown>;
  let od: Record<string, unknown> = DEFAULT_OUTLIER_DETECTION as unknown as Record<string, unknown>;
  let hc: Record<string, unknown> | undefined;
  for (let i = 0; i < patches.length; i++) {
    const p = patches[i]!;
    if (p.loadBalancer) lb = merged(lb, p.loadBalancer as Record<string, unknown>, mergeLoadBalancer);
    // A section `false` discards the fields of the layers below, as `healthCheck: false` does
    // (the config keeps its shape: off is `enabled: false` over the defaults).
    if (p.outlierDetection === false) od = OUTLIER_DETECTION_OFF;
    else if (p.outlierDetection) od = merged(od, p.outlierDetection as Record<string, unknown>, deepMerge);
    if (p.healthCheck === false) hc = undefined;
    else if (p.healthCheck)
      hc = merged(
        hc ?? (DEFAULT_HEALTH_CHECK as unknown as Record<string, unknown>),
        p.healthCheck as Record<string, unknown>,
        deepMerge,
      );
  }
  const issues = new Issues();
  if ((lb.minRingSize as number) > (lb.maxRingSize as number)) {
    issues.add(
      'loadBalancer.minRingSize',
      `at most loadBalancer.maxRingSize (${lb.maxRingSize})${builtInNote(patches, 'loadBalancer', 'maxRingSize', String(lb.maxRingSize), 'set it too')}${builtInNote(patches, 'loadBalancer', 'minRingSize', String(lb.minRingSize), 'set a smaller one')}`,
      lb.minRingSize,
    );
  }
  const cb = lb.connectBackoff as Record<string, number>;
  if (cb.maxMs! < cb.initialMs! && !setInSomeLayer(patches, 'loadBalancer', 'connectBackoff', 'maxMs')) {
    // Unset, the cap is at least the first wait (as outlier detection's maxEjectionTime).
    lb = Object.freeze({ ...lb, connectBackoff: Object.freeze({ ...cb, maxMs: cb.initialMs }) });
  } else if (cb.maxMs! < cb.initialMs!) {
    issues.add(
      'loadBalancer.connectBackoff.max',
      `at least loadBalancer.connectBackoff.initial (${cb.initialMs}ms)${setInSomeLayer(patches, 'loadBalancer', 'connectBackoff', 'initialMs') ? '' : ` (${cb.initialMs}ms is the built-in default loadBalancer.connectBackoff.initial: set a smaller one)`}`,
      cb.maxMs,
    );
  }
  if (
    (od.maxEjectionTime as number) < (od.baseEjectionTime as number) &&
    !setInSomeLayer(patches, 'outlierDetection', 'maxEjectionTime')
  ) {
    // Envoy's rule: unset, the cap is the larger of its default (300 s) and baseEjectionTime.
    od = Object.freeze({ ...od, maxEjectionTime: od.baseEjectionTime });
  }
  if ((od.maxEjectionTime as number) < (od.baseEjectionTime as number)) {
    issues.add(
      'outlierDetection.maxEjectionTime',
      `at least outlierDetection.baseEjectionTime (${od.baseEjectionTime}ms)${builtInNote(patches, 'outlierDetection', 'baseEjectionTime', `${od.baseEjectionTime}ms`, 'set it too')}${builtInNote(patches, 'outlierDetection', 'maxEjectionTime', `${od.maxEjectionTime}ms`, 'set a larger one')}`,
      od.maxEjectionTime,
    );
  }
  if (hc && typeof hc.path !== 'string') issues.add('healthCheck.path', 'a path starting with "/"', hc.path);
  if (hc && (hc.timeout as number) > (hc.interval as number)) {
    // Unset, the probe's timeout is at most the interval (as the caps above): `interval: '500ms'`
    // alone is a valid check, probed with a 500 ms timeout.
    if (!setInSomeLayer(patches, 'healthCheck', 'timeout'))
      hc = Object.freeze({ ...hc, timeout: hc.interval });
    else issues.add('healthCheck.timeout', `at most healthCheck.interval (${hc.interval}ms)`, hc.timeout);
  }
  issues.throwIfAny('balancer configuration');
  return Object.freeze({
    loadBalancer: lb as unknown as LoadBalancerConfig,
    outlierDetection: od as unknown as OutlierDetectionConfig,
    ...(hc ? { healthCheck: hc as unknown as HealthCheckConfig } : {}),
  });
}
