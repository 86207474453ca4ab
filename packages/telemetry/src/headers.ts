import type { Dispatcher } from 'undici';

type Headers = Dispatcher.DispatchOptions['headers'];

/**
 * Return `headers` with `extra` (lower-case name/value pairs, flat) set, in whichever of undici's
 * three forms the caller used: a record, a flat `[name, value, …]` array, or an iterable of pairs.
 * The caller's own headers keep their names, case and order; only headers with the same names as
 * `extra` (compared case-insensitively) are replaced. The caller's value is never modified.
 */
export function withHeaders(headers: Headers, extra: readonly string[]): Headers {
  if (extra.length === 0) return headers;
  if (headers === undefined || headers === null) {
    const out: Record<string, string> = {};
    for (let i = 0; i < extra.length; i += 2) out[extra[i]!] = extra[i + 1]!;
    return out;
  }
  if (Array.isArray(headers)) {
    const out: string[] = [];
    for (let i = 0; i < headers.length; i += 2) {
      if (!isOneOf(headers[i] as string, extra)) out.push(headers[i] as string, headers[i + 1] as string);
    }
    out.push(...extra);
    return out;
  }
  if (hasSafeIterator(headers as object)) {
    const out: Array<[string, string | string[] | undefined]> = [];
    for (const pair of headers as Iterable<[string, string | string[] | undefined]>) {
      if (!isOneOf(pair[0], extra)) out.push(pair);
    }
    for (let i = 0; i < extra.length; i += 2) out.push([extra[i]!, extra[i + 1]!]);
    // Not an array: undici reads an array as the flat form.
    return { [Symbol.iterator]: () => out[Symbol.iterator]() };
  }
  const record = headers as Record<string, string | string[] | undefined>;
  // No prototype: a header named `__proto__` (JSON.parse gives such keys) stays an own key.
  const out: Record<string, string | string[] | undefined> = Object.create(null);
  for (const name of Object.keys(record)) if (!isOneOf(name, extra)) out[name] = record[name];
  for (let i = 0; i < extra.length; i += 2) out[extra[i]!] = extra[i + 1]!;
  return out as Headers;
}

/** Whether `name` equals (ignoring case) one of the names at even indices of `pairs`. */
function isOneOf(name: string, pairs: readonly string[]): boolean {
  if (typeof name !== 'string') return false;
  for (let i = 0; i < pairs.length; i += 2) {
    const p = pairs[i]!;
    if (name.length === p.length && name.toLowerCase() === p) return true;
  }
  return false;
}

/**
 * undici's rule for headers with an iterator (`lib/core/util.js` `hasSafeIterator`): only an own
 * iterator or one from a non-`Object` prototype makes them iterable, so an iterator planted on
 * `Object.prototype` never turns a plain record into pairs.
 */
function hasSafeIterator(obj: object): boolean {
  if (Object.hasOwn(obj, Symbol.iterator)) return true;
  const proto = Object.getPrototypeOf(obj) as object | null;
  return (
    proto !== null &&
    proto !== Object.prototype &&
    typeof (obj as { [Symbol.iterator]?: unknown })[Symbol.iterator] === 'function'
  );
}
