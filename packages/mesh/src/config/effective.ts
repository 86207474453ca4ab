import type { BalancerConfig, LoadBalancerPolicy } from '@proxyless/balancer';
import type { ConfigIssue } from '@proxyless/core';
import { type ResilienceConfig, resilienceWarnings } from '@proxyless/resilience';
import { type Layer, type LayerName, resolveLayers } from './layers.js';
import { POLICY_KEYS } from './schema.js';

/** Where one setting of an effective config came from. */
export interface SettingSource {
  readonly layer: LayerName | 'built-in';
  /** The version of that layer's document (`undefined` for built-in defaults). */
  readonly version: number | undefined;
}

/** The configuration in force for one service, with the provenance of every setting. */
export interface EffectiveConfig {
  readonly service: string | undefined;
  readonly balancer: BalancerConfig;
  readonly resilience: ResilienceConfig;
  /**
   * The layer and version each setting came from, by document path (`retry.maxRetries`,
   * `circuitBreaker` for a section switched as a whole). Paths not listed are built-in defaults.
   */
  readonly sources: Readonly<Record<string, SettingSource>>;
  /** Rules that warn rather than reject (e.g. a `perTryTimeout` above `timeout`). */
  readonly warnings: readonly ConfigIssue[];
}

/** A policy section, named as in the document: the unit a change rebuilds. */
export type PolicyRole =
  | 'loadBalancer'
  | 'outlierDetection'
  | 'healthCheck'
  | 'timeout'
  | 'perTryTimeout'
  | 'connectTimeout'
  | 'retry'
  | 'hedge'
  | 'circuitBreaker'
  | 'concurrencyLimit'
  | 'rateLimit'
  | 'faultInjection';

function isPlain(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Objects a layer replaces whole instead of merging field by field (`hashOn: { header }`). */
const WHOLE = new Set(['loadBalancer.hashOn']);

/**
 * Sections whose switch is also a field of the settings in force (`outlierDetection.enabled`): a
 * section `false` sets it, and whatever turns the section back on is its source too.
 */
const SWITCH_FIELD = new Set(['outlierDetection']);

/**
 * Record `src` as the source of `value` at `prefix` and below. `off` holds the paths whose recorded
 * value turns something off: a section's `false`, or an `enabled: false` (outlier detection).
 */
function record(
  out: Map<string, SettingSource>,
  off: Set<string>,
  prefix: string,
  value: unknown,
  sourceOf: (path: string) => SettingSource,
): void {
  const src = sourceOf(prefix);
  if (isPlain(value) && !WHOLE.has(prefix)) {
    // An object turns its section on (over a lower layer's `false`, or `enabled: false` when it
    // does not say `enabled` itself): this layer, not the one that turned it off, is the source
    // of the switch.
    if (off.delete(prefix)) out.set(prefix, src);
    // The switch field (`outlierDetection.enabled`): an object that turns it back on, or one that
    // turns it off (`MESH_OUTLIER_ENABLED=false`), is the source of the section's switch too.
    if ((value.enabled === undefined || value.enabled === true) && off.delete(`${prefix}.enabled`)) {
      out.set(`${prefix}.enabled`, src);
      out.set(prefix, src);
    }
    if (value.enabled === false && SWITCH_FIELD.has(prefix)) out.set(prefix, src);
    for (const [k, v] of Object.entries(value))
      if (v !== undefined) record(out, off, `${prefix}.${k}`, v, sourceOf);
    return;
  }
  // `true` turns a section on and keeps what the layers below set in it; `false` or any other
  // value decides everything below it.
  if (value !== true) {
    for (const k of [...out.keys()]) if (k.startsWith(`${prefix}.`)) out.delete(k);
    for (const k of [...off]) if (k.startsWith(`${prefix}.`)) off.delete(k);
  }
  if (value === false) off.add(prefix);
  else off.delete(prefix);
  if (value === false && SWITCH_FIELD.has(prefix)) {
    // Its `enabled` is this layer's `false` too, turned back on by the next object or `true`.
    off.add(`${prefix}.enabled`);
    out.set(`${prefix}.enabled`, src);
  }
  // `true` turns a section on over a lower layer's `enabled: false` (outlier detection) too.
  if (value === true && off.delete(`${prefix}.enabled`)) out.set(`${prefix}.enabled`, src);
  out.set(prefix, src);
}

/** The merged settings of a list of layers, apart from whose they are. */
export interface ResolvedPolicy {
  readonly balancer: BalancerConfig;
  readonly resilience: ResilienceConfig;
  readonly warnings: readonly ConfigIssue[];
}

/**
 * Merge layers (lowest precedence first) into settings.
 * @throws MeshError `MESH_CONFIG_INVALID` when the merged policy breaks a rule that spans layers.
 */
export function resolvePolicy(layers: readonly Layer[], own?: readonly Layer[]): ResolvedPolicy {
  const { balancer, resilience } = resolveLayers(layers);
  const warnings = resilienceWarnings(resilience);
  if (own !== undefined && own.length > 0) {
    const unread = unreadSettings(own, balancer, resilience);
    if (unread.length > 0) warnings.push(...unread);
  }
  for (const w of warnings) Object.freeze(w);
  return Object.freeze({ balancer, resilience, warnings: Object.freeze(warnings) });
}

/** The `loadBalancer` fields only some policies read, and those policies. */
const READ_BY: ReadonlyArray<readonly [string, readonly LoadBalancerPolicy[]]> = [
  ['choiceCount', ['least_request', 'peak_ewma']],
  ['decayTime', ['peak_ewma']],
  ['defaultRtt', ['peak_ewma']],
  ['minRingSize', ['ring_hash']],
  ['maxRingSize', ['ring_hash']],
  ['tableSize', ['maglev']],
  ['hashOn', ['ring_hash', 'maglev']],
  ['slowStart', ['round_robin', 'weighted_round_robin', 'least_request', 'peak_ewma']],
];

const READERS: ReadonlyMap<string, readonly LoadBalancerPolicy[]> = new Map(READ_BY);

const NONE: ConfigIssue[] = [];

/**
 * Settings a service's own layers (`layers`) wrote that nothing in force for it reads — not the
 * defaults' or the environment's, which hold for services of every policy: a field of another load-balancing
 * policy (a `hashOn` under `round_robin` gives no affinity), `circuitBreaker.maxRetries` with
 * retries off, `retry.retriableStatusCodes` / `retriableHeaders` without their `retryOn`
 * condition, `concurrencyLimit.queueTimeout` with no queue, or a `circuitBreaker.maxPendingRequests`
 * above the `concurrencyLimit.queue` it caps. Warned, not rejected: layers combine (a service may
 * turn off what the defaults configure), and the setting harms nothing but the reader's expectations.
 */
function unreadSettings(
  layers: readonly Layer[],
  balancer: BalancerConfig,
  resilience: ResilienceConfig,
): ConfigIssue[] {
  // Most entries set none of these: nothing to look up (this runs for every service of a document,
  // in code V8 has not compiled yet at start: plain loops, no closure).
  let any = false;
  for (let i = 0; i < layers.length && !any; i++) {
    const patch = layers[i]!.patch;
    const r = patch.resilience;
    any =
      patch.balancer?.loadBalancer !== undefined ||
      (r !== undefined &&
        (r.circuitBreaker !== undefined || r.retry !== undefined || r.concurrencyLimit !== undefined));
  }
  if (!any) return NONE;
  const out: ConfigIssue[] = [];
  const policy = balancer.loadBalancer.policy;
  // The `loadBalancer` fields the layers set that this policy does not read: the last value set.
  let unread: Map<string, unknown> | undefined;
  for (let i = 0; i < layers.length; i++) {
    const lb = layers[i]!.patch.balancer?.loadBalancer as Record<string, unknown> | undefined;
    if (lb === undefined) continue;
    for (const field in lb) {
      const readers = READERS.get(field);
      const value = lb[field];
      if (readers === undefined || value === undefined || readers.includes(policy)) continue;
      if (unread === undefined) unread = new Map();
      unread.set(field, value);
    }
  }
  if (unread !== undefined) {
    for (const [field, readers] of READ_BY) {
      const value = unread.get(field);
      if (value === undefined) continue;
      out.push({
        field: `loadBalancer.${field}`,
        expected: `no value with loadBalancer.policy "${policy}": only ${readers.join(', ')} ${readers.length === 1 ? 'reads' : 'read'} it, so it has no effect`,
        value,
      });
    }
  }
  if (resilience.retry === undefined || resilience.retry.maxRetries === 0) {
    const value = lastSet(layers, (l) => set(l.patch.resilience?.circuitBreaker)?.maxRetries);
    if (value !== undefined && resilience.circuitBreaker !== undefined) {
      out.push({
        field: 'circuitBreaker.maxRetries',
        expected: 'no value with retries off: it bounds the retries in flight, so it has no effect',
        value,
      });
    }
  }
  const retry = resilience.retry;
  if (retry !== undefined) {
    // The retry policy reads these lists only under their condition (retry.ts `retriable`).
    for (let j = 0; j < RETRY_LISTS.length; j++) {
      const field = RETRY_LISTS[j]![0];
      const condition = RETRY_LISTS[j]![1];
      if (retry.retryOn.includes(condition) || !retryFieldSet(layers, field)) continue;
      out.push({
        field: `retry.${field}`,
        expected: `no value without "${condition}" in retry.retryOn: only that condition reads it, so it has no effect`,
        value: retry[field],
      });
    }
    if (retry.maxRetries > 0) {
      // The reverse: a condition whose list is empty matches nothing.
      for (let j = 0; j < RETRY_LISTS.length; j++) {
        const field = RETRY_LISTS[j]![0];
        const condition = RETRY_LISTS[j]![1];
        if (!retry.retryOn.includes(condition) || retry[field].length > 0) continue;
        out.push({
          field: 'retry.retryOn',
          expected: `no "${condition}" without retry.${field}: with the list empty it matches nothing`,
          value: retry.retryOn,
        });
      }
      if (retry.retryOn.length === 0) {
        out.push({
          field: 'retry.retryOn',
          expected: `at least one condition with retry.maxRetries ${retry.maxRetries}: with none, nothing is retried (retry: false or maxRetries: 0 turns retries off)`,
          value: retry.retryOn,
        });
      }
    }
  }
  const limit = resilience.concurrencyLimit;
  if (limit !== undefined) {
    const pending = resilience.circuitBreaker?.maxPendingRequests;
    // The limit's queue is the smaller of the two (stack.ts `concurrencyLimitOf`).
    if (
      Math.min(limit.queue, pending ?? limit.queue) === 0 &&
      lastSet(layers, (l) => set(l.patch.resilience?.concurrencyLimit)?.queueTimeoutMs) !== undefined
    ) {
      out.push({
        field: 'concurrencyLimit.queueTimeout',
        expected:
          'no value without a queue (concurrencyLimit.queue, or circuitBreaker.maxPendingRequests, is 0): nothing waits, so it has no effect',
        value: limit.queueTimeoutMs,
      });
    }
    // `maxPendingRequests` caps the queue: above it, the queue decides and the cap never applies.
    // (A queue of 0 with it is an error: resolveResilienceConfig.)
    if (pending !== undefined && limit.queue > 0 && pending > limit.queue) {
      if (lastSet(layers, (l) => set(l.patch.resilience?.circuitBreaker)?.maxPendingRequests) !== undefined) {
        out.push({
          field: 'circuitBreaker.maxPendingRequests',
          expected: `at most concurrencyLimit.queue (${limit.queue}): it caps that queue, so above it it has no effect`,
          value: pending,
        });
      }
    }
  }
  return out;
}

/** The retry lists read only under a `retryOn` condition, and that condition. */
const RETRY_LISTS = [
  ['retriableStatusCodes', 'retriable-status-codes'],
  ['retriableHeaders', 'retriable-headers'],
] as const;

/** Whether a layer sets `retry[field]` (a plain loop: this runs for every service of a document). */
function retryFieldSet(layers: readonly Layer[], field: (typeof RETRY_LISTS)[number][0]): boolean {
  for (let i = layers.length - 1; i >= 0; i--) {
    const r = layers[i]!.patch.resilience?.retry;
    if (r !== undefined && r !== false && r[field] !== undefined) return true;
  }
  return false;
}

/** A section as a layer sets it: its fields, or `undefined` when the layer turns it off or leaves it. */
function set<T>(section: T | false | undefined): T | undefined {
  return section === false ? undefined : section;
}

/** The value the last layer that sets it gives. */
function lastSet(layers: readonly Layer[], read: (layer: Layer) => unknown): unknown {
  for (let i = layers.length - 1; i >= 0; i--) {
    const v = read(layers[i] as Layer);
    if (v !== undefined) return v;
  }
  return undefined;
}

/**
 * Resolve one service's layers (lowest precedence first) into its effective config; `resolved`,
 * when given, is `resolvePolicy(layers)` computed already (services with the same layers share it).
 * @throws MeshError `MESH_CONFIG_INVALID` when the merged policy breaks a rule that spans layers.
 */
export function effectiveConfig(
  service: string | undefined,
  layers: readonly Layer[],
  resolved: ResolvedPolicy = resolvePolicy(layers),
): EffectiveConfig {
  const { balancer, resilience, warnings } = resolved;
  let sources: Readonly<Record<string, SettingSource>> | undefined;
  // Provenance is computed when asked for (admin views), not for every service at start.
  const config = {
    service,
    balancer,
    resilience,
    get sources(): Readonly<Record<string, SettingSource>> {
      sources ??= provenance(layers, resilience);
      return sources;
    },
    warnings,
  };
  return Object.freeze(config);
}

/**
 * `[derived, from]`: `retry.backoff.max` is 10× the base (Envoy's rule), `rateLimit.burst` the
 * rate rounded up, when no layer sets them.
 */
const DERIVED: ReadonlyArray<readonly [string, string]> = [
  ['retry.backoff.max', 'retry.backoff.base'],
  ['rateLimit.burst', 'rateLimit.rps'],
];

/** Sections off in the built-in defaults (`DEFAULT_RESILIENCE_CONFIG`, `DEFAULT_BALANCER_CONFIG`). */
const OFF_BY_DEFAULT: readonly string[] = [
  'hedge',
  'concurrencyLimit',
  'rateLimit',
  'faultInjection',
  'healthCheck',
  'loadBalancer.slowStart',
];

function provenance(
  layers: readonly Layer[],
  resilience: ResilienceConfig,
): Readonly<Record<string, SettingSource>> {
  const sources = new Map<string, SettingSource>();
  // The sections the built-in defaults leave off: whatever turns one on (`hedge: {}` as much as
  // `hedge: true`) is the source of its switch.
  const off = new Set<string>(OFF_BY_DEFAULT);
  for (const layer of layers) {
    if (!layer.raw) continue;
    const src: SettingSource = Object.freeze({ layer: layer.name, version: layer.version });
    const since = layer.since;
    // A setting this layer has held unchanged since an earlier version of its document came from
    // that version (as Envoy's per-resource `version_info`: the version that last changed it).
    const sourceOf =
      since === undefined
        ? () => src
        : (path: string): SettingSource => {
            const v = since.get(path);
            return v === undefined ? src : Object.freeze({ layer: layer.name, version: v });
          };
    for (const key of POLICY_KEYS) {
      const v = layer.raw[key];
      if (v !== undefined) record(sources, off, key, v, sourceOf);
    }
  }
  // Values derived from another setting when no layer sets them (resolveResilienceConfig) come
  // from where that setting came from, not from the built-in defaults.
  for (const [derived, from] of DERIVED) {
    const src = sources.get(from);
    if (src !== undefined && !sources.has(derived)) sources.set(derived, src);
  }
  // A threshold dropped because a higher layer took away what it bounds (resolveResilienceConfig:
  // `maxPendingRequests` with no queue) is in force from no layer.
  if (resilience.circuitBreaker?.maxPendingRequests === undefined)
    sources.delete('circuitBreaker.maxPendingRequests');
  return Object.freeze(Object.fromEntries([...sources].sort(([a], [b]) => a.localeCompare(b))));
}

/** Structural equality of plain JSON-like data (what resolved configs are). */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

const ROLE_VALUE: Record<PolicyRole, (c: EffectiveConfig) => unknown> = {
  loadBalancer: (c) => c.balancer.loadBalancer,
  outlierDetection: (c) => c.balancer.outlierDetection,
  healthCheck: (c) => c.balancer.healthCheck,
  timeout: (c) => c.resilience.timeoutMs,
  perTryTimeout: (c) => c.resilience.perTryTimeoutMs,
  connectTimeout: (c) => c.resilience.connectTimeoutMs,
  retry: (c) => c.resilience.retry,
  hedge: (c) => c.resilience.hedge,
  circuitBreaker: (c) => c.resilience.circuitBreaker,
  concurrencyLimit: (c) => c.resilience.concurrencyLimit,
  rateLimit: (c) => c.resilience.rateLimit,
  faultInjection: (c) => c.resilience.faultInjection,
};

/** Every role, in stack order (outermost first, the balancer's last). */
export const POLICY_ROLES: readonly PolicyRole[] = Object.freeze(Object.keys(ROLE_VALUE) as PolicyRole[]);

/**
 * Which roles of a service differ between two effective configs: the mesh rebuilds only these.
 * Provenance alone (the same value from another layer or version) is no change.
 */
export function changedRoles(before: EffectiveConfig | undefined, after: EffectiveConfig): PolicyRole[] {
  if (before === undefined) return [...POLICY_ROLES];
  return POLICY_ROLES.filter((r) => !sameValue(ROLE_VALUE[r](before), ROLE_VALUE[r](after)));
}
