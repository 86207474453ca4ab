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

/**
 * What an issue for the unknown `key` expects, given the `known` names (and the foreign ones). A
 * key in snake_case or kebab-case, as Envoy's and Consul's own configs spell them (`num_retries`,
 * `base_ejection_time`), is matched in camelCase too: the camelCase name it stands for, or the
 * foreign name it is.
 */
export function unknownKeyExpected(key: string, known: readonly string[], foreign?: ForeignNames): string {
  const camel = camelCase(key);
  const named = foreignName(key, foreign) ?? (camel === key ? undefined : foreignName(camel, foreign));
  if (named !== undefined)
    return `no such field here: use ${named.use} (${key} is ${named.from}); known: ${known.join(', ')}`;
  if (camel !== key && known.includes(camel))
    return `no such field (did you mean ${quote(camel)}? names here are camelCase); known: ${known.join(', ')}`;
  const hint = closestName(key, known) ?? (camel === key ? undefined : closestName(camel, known));
  return `no such field${hint ? ` (did you mean ${quote(hint)}?)` : ''}; known: ${known.join(', ')}`;
}

function foreignName(key: string, foreign: ForeignNames | undefined) {
  return foreign !== undefined && Object.hasOwn(foreign, key) ? foreign[key] : undefined;
}

/** `num_retries`, `num-retries` → `numRetries`; a key without `_` or `-` is returned as it is. */
function camelCase(key: string): string {
  if (!key.includes('_') && !key.includes('-')) return key;
  const words = key === key.toUpperCase() ? key.toLowerCase() : key;
  return words.replace(/[_-]+([a-zA-Z0-9])/g, (_m, c: string) => c.toUpperCase());
}
