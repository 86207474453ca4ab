/**
 * A config document as the mesh keeps a version of it: JSON text with every object's keys sorted,
 * read once — equal data gives equal text, and a document whose reading throws is named as such.
 */

import { MeshError } from '@proxyless/core';

/**
 * A document as JSON text with every object's keys sorted (arrays keep their order): equal data
 * gives equal text whatever order a source built it in. Given plain data: the mesh's own copy of a
 * caller's version ({@link ownCopy}, which read it whole) or a parsed file.
 */
export function documentText(document: unknown): string {
  return JSON.stringify(sortedCopy(document)) ?? 'null';
}

function sortedCopy(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map(sortedCopy);
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(value).sort()) out[k] = sortedCopy((value as Record<string, unknown>)[k]);
  return out;
}

/**
 * The mesh's own copy of a document a caller's source delivered: read once, whole, as JSON data
 * (what `JSON.stringify` writes, keys in their order), so that a source changing the object later
 * changes nothing in force, nor the layers' provenance, and a getter runs once. A value JSON would
 * write as something else than it holds — a `Map`, a `Set` or another class instance, written
 * `{}` with its entries lost — is refused, as are a getter's or a proxy's error and a cycle.
 */
export function ownCopy(document: unknown): unknown {
  return plainCopy(document, new Set(), '');
}

/**
 * A deep copy of objects and arrays, read once; other values as they are (an `undefined` member,
 * a function or a `NaN` is the validator's to refuse by path, as in the object delivered).
 */
function plainCopy(value: unknown, ancestors: Set<object>, path: string): unknown {
  if (typeof value !== 'object' || value === null) return value;
  // A value that says how it is written as JSON (a Date): what JSON.stringify would write.
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') {
    const written: unknown = toJSON.call(value, '');
    if (written !== value) return plainCopy(written, ancestors, path);
  }
  if (ancestors.has(value)) throw new TypeError(`the document refers to itself at ${path || 'its root'}`);
  const isArray = Array.isArray(value);
  if (!isArray) {
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
      throw new TypeError(
        `${path || 'the document'} is a ${typeof name === 'string' && name !== '' ? name : 'class instance'}, not a plain object (JSON would write it as {} and lose what it holds)`,
      );
    }
  }
  ancestors.add(value);
  try {
    if (isArray) return (value as unknown[]).map((v, i) => plainCopy(v, ancestors, `${path}[${i}]`));
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value))
      out[k] = plainCopy((value as Record<string, unknown>)[k], ancestors, path ? `${path}.${k}` : k);
    return out;
  } finally {
    ancestors.delete(value);
  }
}

/** {@link documentText}, or `undefined` for a document that cannot be read as JSON data. */
export function textOrUndefined(document: unknown): string | undefined {
  try {
    return documentText(document);
  } catch {
    return undefined;
  }
}

/** The rejection of a version whose document could not be read as JSON data. */
export function unreadable(what: string, version: number, error: unknown): MeshError {
  return new MeshError(
    'MESH_CONFIG_INVALID',
    `${what} (version ${version}): the document cannot be read as JSON data: ${(error as Error | undefined)?.message ?? String(error)}`,
    { cause: error, details: { field: 'document', value: undefined } },
  );
}
