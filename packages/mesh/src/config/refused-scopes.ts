/**
 * Which problems of a rejected document's rules across layers to report: a merge of what is left
 * of a layer with refused values could report problems that are not there (a refused
 * `concurrencyLimit` may be the queue `maxPendingRequests` lacks), so a problem the merge finds is
 * reported only in a section no refused value of its service or of `defaults` bears on (a refused
 * `defaults.timeout` says nothing of `circuitBreaker.maxPendingRequests`). A misspelt section
 * bears on what the section it is nearest to would (`healtCheck` on `healthCheck`'s rules, not on
 * `rateLimit`'s); a refused value of no known section and near none (an entry that is no object,
 * an unknown key like no section) could be any: then none of that scope's is reported.
 */
import { type ConfigIssue, closestName } from '@proxyless/core';
import type { DocumentLayers } from './layers.js';

/** The problems of `merged` (rules across layers) that no problem of `refused` may have caused. */
export function unhiddenProblems(
  layers: DocumentLayers,
  refused: readonly ConfigIssue[],
  merged: readonly ConfigIssue[],
): ConfigIssue[] {
  const scopes = new Scopes(layers);
  const blocked = new Map<string, Set<string> | 'all'>();
  for (const i of refused) {
    const at = scopes.of(i.field);
    if (at === undefined) continue;
    const was = blocked.get(at.scope) ?? new Set<string>();
    const reach = at.section === undefined ? undefined : reachOf(at.section);
    if (was === 'all' || reach === undefined) blocked.set(at.scope, 'all');
    else blocked.set(at.scope, new Set([...was, ...reach]));
  }
  return merged.filter((i) => {
    const at = scopes.of(i.field);
    if (at === undefined) return false;
    const own = blocked.get(at.scope);
    const common = blocked.get('defaults');
    if (own === 'all' || common === 'all') return false;
    return at.section === undefined || !(own?.has(at.section) || common?.has(at.section));
  });
}

/** The sections a refused `section` (or the known section a misspelt one is nearest to) bears on. */
function reachOf(section: string): readonly string[] | undefined {
  if (Object.hasOwn(SECTION_REACH, section)) return SECTION_REACH[section];
  const nearest = closestName(section, Object.keys(SECTION_REACH));
  return nearest === undefined ? undefined : SECTION_REACH[nearest];
}

/**
 * Where a problem's field lies: its scope (`defaults`, or the service as the document spells it)
 * and the policy section under it, if any (`services.a.b.retry.maxRetries` → `a.b`, `retry`).
 */
class Scopes {
  readonly #names: string[];

  constructor(layers: DocumentLayers) {
    // Longest first: a service `a.b` is not the section `b` of a service `a`.
    this.#names = [...layers.spelled.values()].sort((x, y) => y.length - x.length);
  }

  of(field: string): { scope: string; section: string | undefined } | undefined {
    // The section's name, without an index (`endpoints[1]` is of `endpoints`).
    const section = (rest: string | undefined): string | undefined =>
      rest?.split('.')[0]?.replace(/\[.*$/, '');
    if (field === 'defaults' || field.startsWith('defaults.'))
      return { scope: 'defaults', section: section(field.slice('defaults.'.length) || undefined) };
    for (const name of this.#names) {
      const prefix = `services.${name}`;
      if (field === prefix) return { scope: name, section: undefined };
      if (field.startsWith(`${prefix}.`) || field.startsWith(`${prefix}[`))
        return { scope: name, section: section(field.slice(prefix.length + 1)) };
    }
    return undefined;
  }
}

/**
 * Each section, and the sections whose rules across layers (errors; warnings are not problems)
 * read it: only the queue's threshold spans two (`circuitBreaker.maxPendingRequests` needs a
 * `concurrencyLimit` queue); every other rule is within its section.
 */
const SECTION_REACH: Readonly<Record<string, readonly string[]>> = {
  timeout: ['timeout'],
  perTryTimeout: ['perTryTimeout'],
  connectTimeout: ['connectTimeout'],
  retry: ['retry'],
  hedge: ['hedge'],
  circuitBreaker: ['circuitBreaker', 'concurrencyLimit'],
  concurrencyLimit: ['concurrencyLimit', 'circuitBreaker'],
  rateLimit: ['rateLimit'],
  faultInjection: ['faultInjection'],
  loadBalancer: ['loadBalancer'],
  outlierDetection: ['outlierDetection'],
  healthCheck: ['healthCheck'],
  // An entry's endpoint list takes part in no rule across layers.
  endpoints: [],
};
