/**
 * One value per process for `key`, whichever copy of this package asks: made by the first copy,
 * kept under a global `Symbol.for` key, and given to every copy after it. `proxyless` bundles the
 * workspace packages into its own entries, so an application that also imports one of them (its
 * deadline helpers, a Consul resolver of its own) has two copies of their modules; state that
 * must be one for the process (the incoming deadline's async context, the long-poll slots per
 * Consul agent) is kept here instead of in a module's own variable. The key names a version of
 * the value's shape (`proxyless.incomingDeadline.1`): a copy that changes the shape takes a new key.
 */
export function processWide<T>(key: string, make: () => T): T {
  const symbol = Symbol.for(key);
  const store = globalThis as unknown as Record<symbol, T | undefined>;
  let value = store[symbol];
  if (value === undefined) {
    value = make();
    Object.defineProperty(globalThis, symbol, {
      value,
      configurable: false,
      enumerable: false,
      writable: false,
    });
  }
  return value;
}
