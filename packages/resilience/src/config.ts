/**
 * The resilience configuration: one schema declaration per section (under `sections/`), the
 * resolved types the policies read, and the parser that turns a document, options or `MESH_*`
 * variables into a patch through the same validators. Layering the patches is `resolve.ts`.
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
  parseDuration,
  type SectionMemo,
  type Static,
  Type,
  unknownKeys,
  validator,
} from '@proxyless/core';
import { markParsed } from './patch-shape.js';
import {
  type CircuitBreakerConfig,
  type CircuitBreakerPatch,
  circuitBreakerPatch,
  circuitBreakerSection,
} from './sections/circuit-breaker.js';
import {
  type FaultInjectionConfig,
  type FaultInjectionPatch,
  faultInjectionPatch,
  faultInjectionSection,
} from './sections/fault-injection.js';
import { type HedgeConfig, type HedgePatch, hedgePatch, hedgeSection } from './sections/hedge.js';
import {
  type ConcurrencyLimitConfig,
  type ConcurrencyLimitPatch,
  concurrencyLimitPatch,
  concurrencyLimitSection,
  type RateLimitConfig,
  type RateLimitPatch,
  rateLimitPatch,
  rateLimitSection,
} from './sections/limits.js';
import { type RetryConfig, type RetryPatch, retryPatch, retryRules, retrySection } from './sections/retry.js';
import {
  connectTimeoutSection,
  perTryTimeoutSection,
  timeoutMs,
  timeoutSection,
} from './sections/timeouts.js';

export { isParsedPatch } from './patch-shape.js';
export {
  DEFAULT_RESILIENCE_CONFIG,
  isResolvedConfig,
  resilienceWarnings,
  resolveParsedPatches,
  resolveResilienceConfig,
} from './resolve.js';
export * from './sections/circuit-breaker.js';
export * from './sections/fault-injection.js';
export * from './sections/hedge.js';
export * from './sections/limits.js';
export * from './sections/retry.js';
export * from './sections/timeouts.js';

/** Every resilience section of a service entry, by key: one schema declaration each. */
export const resilienceProperties = {
  timeout: Type.Optional(timeoutSection),
  perTryTimeout: Type.Optional(perTryTimeoutSection),
  connectTimeout: Type.Optional(connectTimeoutSection),
  retry: Type.Optional(retrySection),
  hedge: Type.Optional(hedgeSection),
  circuitBreaker: Type.Optional(circuitBreakerSection),
  concurrencyLimit: Type.Optional(concurrencyLimitSection),
  rateLimit: Type.Optional(rateLimitSection),
  faultInjection: Type.Optional(faultInjectionSection),
};

/** The resilience keys of a service entry, as a schema. */
export const resilienceSchema = Fields(resilienceProperties);

/** The resilience keys of a service entry as written (document or options). */
export type ResilienceOptions = Static<typeof resilienceSchema>;

/** The keys of a service entry this package reads. */
export const RESILIENCE_CONFIG_KEYS: readonly string[] = Object.freeze(Object.keys(resilienceProperties));

/** Every resilience setting of one destination, with defaults applied. Disabled policies are `undefined`. */
export interface ResilienceConfig {
  /** Overall deadline of a call, ms; 0 = none. */
  readonly timeoutMs: number;
  /** Deadline of each attempt, ms; 0 = none. */
  readonly perTryTimeoutMs: number;
  /** How long a new connection may take to open, ms. */
  readonly connectTimeoutMs: number;
  readonly retry: RetryConfig | undefined;
  readonly hedge: HedgeConfig | undefined;
  readonly circuitBreaker: CircuitBreakerConfig | undefined;
  readonly concurrencyLimit: ConcurrencyLimitConfig | undefined;
  readonly rateLimit: RateLimitConfig | undefined;
  readonly faultInjection: FaultInjectionConfig | undefined;
}

/**
 * The resilience settings of one configuration layer (options, environment, config file), already
 * validated. `false` turns a policy off; an object turns it on and sets the fields it names.
 */
export interface ResiliencePatch {
  timeoutMs?: number;
  perTryTimeoutMs?: number;
  connectTimeoutMs?: number;
  retry?: RetryPatch | false;
  hedge?: HedgePatch | false;
  circuitBreaker?: CircuitBreakerPatch | false;
  concurrencyLimit?: ConcurrencyLimitPatch | false;
  rateLimit?: RateLimitPatch | false;
  faultInjection?: FaultInjectionPatch | false;
}

const check = validator(resilienceSchema);

const sectionChecks = Object.fromEntries(
  Object.entries(resilienceProperties).map(([k, schema]) => [k, validator(schema)]),
) as { [K in keyof ResilienceOptions]-?: ReturnType<typeof validator<(typeof resilienceProperties)[K]>> };

/**
 * Validate a resilience document section by section (so every problem is found at once, cross-field
 * ones included) and turn the valid sections into a patch.
 * @returns the patch; `issues` is empty when the whole document was valid.
 */
export function resiliencePatchOf(
  doc: unknown,
  path: string,
  issues: Issues,
  memo?: SectionMemo,
): ResiliencePatch {
  const p: ResiliencePatch = {};
  markParsed(p);
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    check.validate(doc, path, issues);
    return p;
  }
  const d = doc as Record<string, unknown>;
  const unknown = unknownKeys(d, resilienceProperties);
  if (unknown !== undefined) check.validate(Object.fromEntries(unknown.map((k) => [k, d[k]])), path, issues);
  // Each section: validated (with its cross-field rules), then turned into its part of the patch.
  // A plain loop over a table: this runs for every service of a document, in code V8 has not
  // compiled yet at start.
  const out = p as Record<string, unknown>;
  for (let i = 0; i < SECTIONS.length; i++) {
    const section = SECTIONS[i]!;
    const v = d[section.key];
    if (v === undefined) continue;
    const made = memo
      ? memo.read(section.key, v, path, issues, parseSection, section)
      : parseSection(v, path, issues, section);
    if (made !== undefined) out[section.field] = made;
  }
  return p;
}

/** How one section of a document becomes its part of a patch. */
interface SectionParser {
  readonly key: keyof ResilienceOptions;
  /** The patch field it sets. */
  readonly field: keyof ResiliencePatch;
  readonly make: (v: never) => unknown;
  /** Cross-field rules the schema cannot say. */
  readonly rules?: (v: unknown, path: string, issues: Issues) => void;
}

const SECTIONS: readonly SectionParser[] = [
  { key: 'timeout', field: 'timeoutMs', make: timeoutMs },
  { key: 'perTryTimeout', field: 'perTryTimeoutMs', make: timeoutMs },
  { key: 'connectTimeout', field: 'connectTimeoutMs', make: durationMs },
  { key: 'retry', field: 'retry', make: retryPatch, rules: retryRules },
  { key: 'hedge', field: 'hedge', make: hedgePatch },
  { key: 'circuitBreaker', field: 'circuitBreaker', make: circuitBreakerPatch },
  { key: 'concurrencyLimit', field: 'concurrencyLimit', make: concurrencyLimitPatch },
  { key: 'rateLimit', field: 'rateLimit', make: rateLimitPatch },
  { key: 'faultInjection', field: 'faultInjection', make: faultInjectionPatch },
];

/** One section validated (its path built only to name a problem) and, when valid, made. */
function parseSection(v: unknown, path: string, issues: Issues, section: SectionParser): unknown {
  const check = sectionChecks[section.key];
  let ok = check.check(v);
  if (!ok) ok = check.validate(v, at(path, section.key), issues);
  section.rules?.(v, at(path, section.key), issues);
  // Frozen all the way down, and no list of the document's (see `frozenCopy`).
  return ok ? frozenCopy(section.make(v as never)) : undefined;
}

/**
 * Read the resilience keys of a service entry (or a `defaults` block); other keys are left to
 * their owners. Every problem is recorded in `issues` by path (`${path}.retry.maxRetries`),
 * unknown nested keys with the nearest valid name.
 * @returns the patch, or `undefined` when the entry sets none of {@link RESILIENCE_CONFIG_KEYS}.
 */
export function parseResiliencePatch(
  entry: Record<string, unknown>,
  path: string,
  issues: Issues,
  memo?: SectionMemo,
  /** Also with problems recorded: the sections that passed (a rejected document's rules across layers are still checked on them). */
  partial = false,
): ResiliencePatch | undefined {
  const own: Record<string, unknown> = {};
  let any = false;
  for (let i = 0; i < RESILIENCE_CONFIG_KEYS.length; i++) {
    const k = RESILIENCE_CONFIG_KEYS[i]!;
    if (entry[k] === undefined) continue;
    own[k] = entry[k];
    any = true;
  }
  if (!any) return undefined;
  const before = issues.list.length;
  const patch = resiliencePatchOf(own, path, issues, memo);
  return partial || issues.list.length === before ? patch : undefined;
}

/** Every environment variable this package reads (mesh-wide defaults for all destinations). */
export const resilienceEnvVars: readonly EnvVarSpec[] = Object.freeze(
  envFields(resilienceSchema).map(envSpec),
);

/**
 * Resilience defaults from `MESH_*` variables (see {@link resilienceEnvVars}), turned into the
 * document shape and validated like a document. Blank means unset.
 * @throws MeshError `MESH_CONFIG_INVALID` listing every bad variable (field = variable name, value repeated).
 */
export function resiliencePatchFromEnv(env: Env): ResiliencePatch | undefined {
  const { document, names, offFieldIssues } = envToDocument(resilienceSchema, env);
  if (document === undefined) return undefined;
  const found = new Issues();
  const issues = new Issues();
  const patch = resiliencePatchOf(document, '', found);
  envIssues([...found.list, ...offFieldIssues], names, issues);
  issues.throwIfAny('environment');
  return patch;
}

/** A validated duration → milliseconds. */
function durationMs(v: number | string): number {
  return parseDuration(v, '');
}
