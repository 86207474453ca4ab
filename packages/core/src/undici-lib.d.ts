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
  // Typed where it is used (`UndiciChecks` in undici.ts): a type named here would be one the
  // published declarations of @proxyless/core refer to, and undici publishes none for this file.
  const value: unknown;
  export default value;
}
