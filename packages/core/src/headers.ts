import type { Dispatcher } from 'undici';
import type { RequestHeaders } from './filter.js';
import { undiciErrors as errors } from './undici.js';

/** Request headers as undici's dispatch takes them. */
export type DispatchHeaders = Dispatcher.DispatchOptions['headers'];

/**
 * undici's rule for a header object with an iterator (`lib/core/util.js` `hasSafeIterator`): only an
 * own iterator or one from a non-`Object` prototype counts. An iterator planted on
 * `Object.prototype` never makes a plain record iterable (prototype pollution).
 */
export function hasSafeIterator(obj: object): boolean {
  if (Object.hasOwn(obj, Symbol.iterator)) return true;
  const proto = Object.getPrototypeOf(obj) as object | null;
  return (
    proto !== null &&
    proto !== Object.prototype &&
    typeof (obj as { [Symbol.iterator]?: unknown })[Symbol.iterator] === 'function'
  );
}

/**
 * Visit every header as undici reads it, names exactly as written. A flat array must be even; an
 * iterable must yield `[name, value]` pairs; anything else but an object (a string, a number) is
 * refused (undici's own `InvalidArgumentError` and message in each case, as its `Request` raises).
 */
export function forEachHeader(
  headers: DispatchHeaders,
  fn: (name: string, value: string | string[] | number | undefined | null) => void,
): void {
  if (headers == null) return;
  if (Array.isArray(headers)) {
    if (headers.length % 2 !== 0) throw new errors.InvalidArgumentError('headers array must be even');
    for (let i = 0; i < headers.length; i += 2) fn(String(headers[i]), headers[i + 1] as string);
    return;
  }
  if (typeof headers !== 'object') throw notHeaders();
  if (hasSafeIterator(headers)) {
    for (const pair of headers as Iterable<unknown>) {
      if (!Array.isArray(pair) || pair.length !== 2) {
        throw new errors.InvalidArgumentError('headers must be in key-value pair format');
      }
      fn(String(pair[0]), pair[1] as string);
    }
    return;
  }
  const rec = headers as Record<string, string | string[] | number | undefined | null>;
  for (const key of Object.keys(rec)) fn(key, rec[key]);
}

function notHeaders(): Error {
  return new errors.InvalidArgumentError('headers must be an object or an array');
}

/**
 * Set `key` on a record as undici's `Object.keys` read will see it: a plain assignment of
 * `__proto__` (a key `JSON.parse` can give) would change the prototype and lose the header.
 */
function setKey(rec: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(rec, key, { value, enumerable: true, writable: true, configurable: true });
  } else rec[key] = value;
}

/**
 * Whether the headers contain `name` (lower-case), compared case-insensitively, as undici sends
 * them (`processHeader`): a header whose value is `undefined` is skipped, so it is not there; one
 * whose value is `null` is sent empty, so it is. Only a record's own keys count (`Object.keys`).
 */
export function hasHeader(headers: DispatchHeaders, name: string): boolean {
  if (headers == null) return false;
  if (!Array.isArray(headers) && typeof headers === 'object' && !hasSafeIterator(headers)) {
    const rec = headers as Record<string, unknown>;
    if (rec[name] !== undefined && Object.hasOwn(rec, name)) return true;
    for (const key of Object.keys(rec))
      if (key.length === name.length && key.toLowerCase() === name && rec[key] !== undefined) return true;
    return false;
  }
  let found = false;
  forEachHeader(headers, (k, v) => {
    if (!found && v !== undefined && k.length === name.length && k.toLowerCase() === name) found = true;
  });
  return found;
}

/**
 * The headers with `name: value` added, in the caller's own form, without touching or re-casing
 * the caller's headers: a flat array gets two more items, a record a copy with one more key, an
 * iterable is read once (with undici's checks) into a flat array ({@link pairsToFlat}); any other form is refused, as
 * undici refuses it. A header of the same name (any case) the caller set is replaced;
 * `value: undefined` removes it.
 */
export function withHeader(
  headers: DispatchHeaders,
  name: string,
  value: string | undefined,
): DispatchHeaders {
  if (headers == null) return value === undefined ? headers : { [name]: value };
  if (Array.isArray(headers)) {
    const out: (string | string[] | Buffer)[] = [];
    for (let i = 0; i < headers.length; i += 2) {
      const k = String(headers[i]);
      if (k.length === name.length && k.toLowerCase() === name) continue;
      out.push(headers[i] as string, headers[i + 1] as string);
    }
    if (value !== undefined) out.push(name, value);
    return out as unknown as DispatchHeaders;
  }
  if (typeof headers === 'object' && !hasSafeIterator(headers)) {
    const rec = headers as Record<string, string | string[] | undefined>;
    const out: Record<string, string | string[] | undefined> = {};
    for (const key of Object.keys(rec)) {
      if (key.length === name.length && key.toLowerCase() === name) continue;
      setKey(out, key, rec[key]);
    }
    if (value !== undefined) setKey(out, name, value);
    return out as DispatchHeaders;
  }
  if (typeof headers !== 'object') throw notHeaders();
  return withHeader(pairsToFlat(headers as Iterable<unknown>), name, value);
}

/**
 * An iterable of `[name, value]` pairs (a `Map`, a generator) read once into undici's flat-array
 * form, names and values exactly as given: undici reads both forms with the same rules
 * (`processHeader`: `null` sent empty, an object value or a bad name refused), so nothing changes
 * but that the list can be read again — a one-shot iterator is empty the second time.
 */
export function pairsToFlat(headers: Iterable<unknown>): DispatchHeaders {
  const flat: unknown[] = [];
  for (const pair of headers) {
    if (!Array.isArray(pair) || pair.length !== 2) {
      throw new errors.InvalidArgumentError('headers must be in key-value pair format');
    }
    flat.push(pair[0], pair[1]);
  }
  return flat as unknown as DispatchHeaders;
}

/** Whether undici reads these headers as an iterable of pairs (not a flat array, not a record). */
export function isHeaderIterable(headers: DispatchHeaders): headers is DispatchHeaders & Iterable<unknown> {
  return (
    headers != null && typeof headers === 'object' && !Array.isArray(headers) && hasSafeIterator(headers)
  );
}

/**
 * A lower-cased view of request headers for policies that read them (hash keys, fault headers),
 * built only when first read.
 */
export function headerRecord(headers: DispatchHeaders): RequestHeaders {
  // No prototype: a header named `__proto__` or `constructor` is a header like any other here.
  const out: RequestHeaders = Object.create(null) as RequestHeaders;
  forEachHeader(headers, (k, v) => {
    if (v == null) return;
    const key = k.toLowerCase();
    const prev = out[key];
    const add = Array.isArray(v) ? v.map(String) : [String(v)];
    if (prev === undefined) out[key] = add.length === 1 ? add[0]! : add;
    else out[key] = [...(Array.isArray(prev) ? prev : [prev]), ...add];
  });
  return out;
}

const bodyErrors = new WeakSet<object>();

/**
 * Mark an error as raised by the caller's own request body (its stream failed). Such an error is
 * never charged to an endpoint, never retried, and reaches the caller unchanged.
 */
export function markRequestBodyError(error: unknown): void {
  if (typeof error === 'object' && error !== null) bodyErrors.add(error);
}

/** Whether {@link markRequestBodyError} marked this error. */
export function isRequestBodyError(error: unknown): boolean {
  return typeof error === 'object' && error !== null && bodyErrors.has(error);
}
