/**
 * Deep immutability for parsed configuration: what a layer set (a `retryOn` list, a `hashOn`
 * object) is shared by every service with the same settings and read by the running stages, so
 * it must not be changed through `mesh.config()` or through the caller's own options object.
 */

/**
 * A copy of `value` in which every plain object and array, at every depth, is a new frozen one.
 * Other objects (a `RegExp`, a class instance, a function) are kept as they are, unfrozen: a
 * global `RegExp` writes its `lastIndex`. Parsed sections are small and parsed once per distinct
 * section (`SectionMemo`), so the copy costs nothing per call.
 */
export function frozenCopy<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    const out = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i++) out[i] = frozenCopy(value[i]);
    return Object.freeze(out) as T;
  }
  const proto = Object.getPrototypeOf(value) as object | null;
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = proto === null ? Object.create(null) : {};
  for (const k of Object.keys(value)) out[k] = frozenCopy((value as Record<string, unknown>)[k]);
  return Object.freeze(out) as T;
}

/** Whether `value` and every plain object and array inside it are frozen. */
export function isDeepFrozen(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return true;
  const proto = Object.getPrototypeOf(value) as object | null;
  if (!Array.isArray(value) && proto !== Object.prototype && proto !== null) return true;
  if (!Object.isFrozen(value)) return false;
  for (const k of Object.keys(value)) if (!isDeepFrozen((value as Record<string, unknown>)[k])) return false;
  return true;
}
