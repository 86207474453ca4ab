/**
 * The message of an unknown key in a config object: the known names, with the nearest of them, or
 * — for a key another mesh uses in that place — what this mesh calls it.
 */
import { quote } from './errors.js';
import { closestName } from './parse.js';

/**
 * The annotation of an object's declaration that names, for keys other meshes use there (Envoy,
 * Istio, Linkerd), what says the same here: `{ attempts: { use: 'maxRetries', from: "Istio's
 * retries.attempts" } }`. Such a key is still an unknown field; its message says where to go.
 */
export const FOREIGN_NAMES = 'x-foreign-names';

/** The value of {@link FOREIGN_NAMES}: a key → what to write instead, and whose name the key is. */
export type ForeignNames = Readonly<Record<string, { readonly use: string; readonly from: string }>>;

/** Options for `Fields(…)` that annotate it with {@link FOREIGN_NAMES}. */
export function foreignNames(names: ForeignNames): { [FOREIGN_NAMES]: ForeignNames } {
  return { [FOREIGN_NAMES]: names };
}

/** What an issue for the unknown `key` expects, given the `known` names (and the foreign ones). */
export function unknownKeyExpected(key: string, known: readonly string[], foreign?: ForeignNames): string {
  const named = foreign !== undefined && Object.hasOwn(foreign, key) ? foreign[key] : undefined;
  if (named !== undefined)
    return `no such field here: use ${named.use} (${key} is ${named.from}); known: ${known.join(', ')}`;
  const hint = closestName(key, known);
  return `no such field${hint ? ` (did you mean ${quote(hint)}?)` : ''}; known: ${known.join(', ')}`;
}
