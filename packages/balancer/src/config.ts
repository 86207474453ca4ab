/**
 * The balancer configuration: one schema declaration per section (under `sections/`), the
 * resolved types the balancer reads, and the layering. Documents, options and `MESH_*` variables
 * all go through the same validators.
 */
import {
  type Env,
  type EnvVarSpec,
  envFields,
  envIssues,
  envSpec,
  envToDocument,
  Fields,
  Issues,
  type SectionMemo,
  type Static,
  Type,
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
  const at = (k: string): string => (path === '' ? k : `${path}.${k}`);
  const p: BalancerPatch = {};
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    check.validate(doc, path, issues);
    return p;
  }
  const d = doc as Record<string, unknown>;
  const unknown = Object.keys(d).filter((k) => !Object.hasOwn(balancerProperties, k));
  if (unknown.length > 0) check.validate(Object.fromEntries(unknown.map((k) => [k, d[k]])), path, issues);
  const { loadBalancer: lb, outlierDetection: od, healthCheck: hc } = d;
  const read = <T>(k: string, v: unknown, parse: () => T | undefined): T | undefined =>
    memo ? memo.read(k, v, issues, parse) : parse();
  if (lb !== undefined) {
    const patch = read('loadBalancer', lb, () => {
      const ok = sectionChecks.loadBalancer.validate(lb, at('loadBalancer'), issues);
      loadBalancerRules(lb, at('loadBalancer'), issues);
      return ok ? loadBalancerPatch(lb) : undefined;
    });
    if (patch !== undefined) p.loadBalancer = patch;
  }
  if (od !== undefined) {
    const patch = read('outlierDetection', od, () =>
      sectionChecks.outlierDetection.validate(od, at('outlierDetection'), issues)
        ? outlierDetectionPatch(od)
        : undefined,
    );
    if (patch !== undefined) p.outlierDetection = patch;
  }
  if (hc !== undefined) {
    const patch = read('healthCheck', hc, () =>
      sectionChecks.healthCheck.validate(hc, at('healthCheck'), issues) ? healthCheckPatch(hc) : undefined,
    );
    if (patch !== undefined) p.healthCheck = patch;
  }
  return p;
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
  for (const k of BALANCER_CONFIG_KEYS) {
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
function deepMerge(base: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) continue;
    const prev = out[k];
    out[k] = k !== 'hashOn' && isPlainObject(v) && isPlainObject(prev) ? deepMerge(prev, v) : v;
  }
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
  let lb: Record<string, unknown> = { ...DEFAULT_LOAD_BALANCER };
  let od: Record<string, unknown> = { ...DEFAULT_OUTLIER_DETECTION };
  let hc: Record<string, unknown> | undefined;
  for (const p of patches) {
    if (p.loadBalancer) {
      const { slowStart, ...rest } = p.loadBalancer;
      lb = deepMerge(lb, rest as Record<string, unknown>);
      if (slowStart) {
        const prev = (lb.slowStart as Record<string, unknown> | undefined) ?? { ...DEFAULT_SLOW_START };
        lb.slowStart = deepMerge(prev, slowStart as Record<string, unknown>);
      }
    }
    // A section `false` discards the fields of the layers below, as `healthCheck: false` does
    // (the config keeps its shape: off is `enabled: false` over the defaults).
    if (p.outlierDetection === false) od = { ...DEFAULT_OUTLIER_DETECTION, enabled: false };
    else if (p.outlierDetection) od = deepMerge(od, p.outlierDetection as Record<string, unknown>);
    if (p.healthCheck === false) hc = undefined;
    else if (p.healthCheck)
      hc = deepMerge(hc ?? { ...DEFAULT_HEALTH_CHECK }, p.healthCheck as Record<string, unknown>);
  }
  const issues = new Issues();
  // A rule comparing two fields may compare one the user set with a built-in default: say which.
  // Only patches after the section's last `false` count: that one discarded what came before.
  const set = (section: keyof BalancerPatch, field: string): boolean =>
    patches.slice(patches.findLastIndex((p) => p[section] === false) + 1).some((p) => {
      const v = p[section] as Record<string, unknown> | boolean | undefined;
      return typeof v === 'object' && v !== null && v[field] !== undefined;
    });
  // `field` was never set: its built-in default is what the user's other field contradicts.
  const builtIn = (section: keyof BalancerPatch, field: string, value: string, fix: string): string =>
    set(section, field) ? '' : ` (${value} is the built-in default ${section}.${field}: ${fix})`;
  if ((lb.minRingSize as number) > (lb.maxRingSize as number)) {
    issues.add(
      'loadBalancer.minRingSize',
      `at most loadBalancer.maxRingSize (${lb.maxRingSize})${builtIn('loadBalancer', 'maxRingSize', String(lb.maxRingSize), 'set it too')}${builtIn('loadBalancer', 'minRingSize', String(lb.minRingSize), 'set a smaller one')}`,
      lb.minRingSize,
    );
  }
  if ((od.maxEjectionTime as number) < (od.baseEjectionTime as number)) {
    issues.add(
      'outlierDetection.maxEjectionTime',
      `at least outlierDetection.baseEjectionTime (${od.baseEjectionTime}ms)${builtIn('outlierDetection', 'baseEjectionTime', `${od.baseEjectionTime}ms`, 'set it too')}${builtIn('outlierDetection', 'maxEjectionTime', `${od.maxEjectionTime}ms`, 'set a larger one')}`,
      od.maxEjectionTime,
    );
  }
  if (hc && typeof hc.path !== 'string') issues.add('healthCheck.path', 'a path starting with "/"', hc.path);
  if (hc && (hc.timeout as number) > (hc.interval as number)) {
    const which = set('healthCheck', 'timeout')
      ? ''
      : ` (${hc.timeout}ms is the built-in default healthCheck.timeout: set a shorter one)`;
    issues.add('healthCheck.timeout', `at most healthCheck.interval (${hc.interval}ms)${which}`, hc.timeout);
  }
  issues.throwIfAny('balancer configuration');
  return {
    loadBalancer: lb as unknown as LoadBalancerConfig,
    outlierDetection: od as unknown as OutlierDetectionConfig,
    ...(hc ? { healthCheck: hc as unknown as HealthCheckConfig } : {}),
  };
}
