/**
 * undici's own files, for the parts `undici.ts` loads on their own (undici publishes types for
 * its index only). Each is a CommonJS module whose `module.exports` is the value typed here.
 */
declare module 'undici/lib/dispatcher/dispatcher.js' {
  import type { Dispatcher } from 'undici';

  const value: typeof Dispatcher;
  export default value;
}
declare module 'undici/lib/dispatcher/agent.js' {
  import type { Agent } from 'undici';

  const value: typeof Agent;
  export default value;
}
declare module 'undici/lib/dispatcher/pool.js' {
  import type { Pool } from 'undici';

  const value: typeof Pool;
  export default value;
}
declare module 'undici/lib/core/errors.js' {
  import type { errors } from 'undici';

  const value: typeof errors;
  export default value;
}
declare module 'undici/lib/api/index.js' {
  import type { Dispatcher } from 'undici';

  const value: Pick<Dispatcher, 'request' | 'stream' | 'pipeline' | 'upgrade' | 'connect'>;
  export default value;
}
declare module 'undici/lib/global.js' {
  import type { getGlobalDispatcher } from 'undici';

  const value: { getGlobalDispatcher: typeof getGlobalDispatcher };
  export default value;
}
declare module 'undici/lib/core/symbols.js' {
  const value: { readonly [name: string]: symbol };
  export default value;
}
declare module 'undici/lib/dispatcher/pool-base.js' {
  const value: { readonly kClients: symbol; readonly kNeedDrain: symbol };
  export default value;
}
declare module 'undici/lib/core/util.js' {
  const value: {
    isValidHTTPToken(s: string): boolean;
    isValidHeaderValue(s: string): boolean;
    readonly normalizedMethodRecords: Readonly<Record<string, string>>;
    isStream(v: unknown): boolean;
    isBuffer(v: unknown): boolean;
    isFormDataLike(v: unknown): boolean;
    isIterable(v: unknown): boolean;
    isBlobLike(v: unknown): boolean;
    pathHasQueryOrFragment(path: string): boolean;
  };
  export default value;
}
