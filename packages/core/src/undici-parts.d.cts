/** The types of `undici-parts.cjs`: undici's files, each typed as in `undici-lib.d.ts`. */
import type api from 'undici/lib/api/index.js';
import type errors from 'undici/lib/core/errors.js';
import type symbols from 'undici/lib/core/symbols.js';
import type util from 'undici/lib/core/util.js';
import type Agent from 'undici/lib/dispatcher/agent.js';
import type Dispatcher from 'undici/lib/dispatcher/dispatcher.js';
import type Pool from 'undici/lib/dispatcher/pool.js';
import type poolBase from 'undici/lib/dispatcher/pool-base.js';
import type globals from 'undici/lib/global.js';

declare const parts: {
  readonly errors: typeof errors;
  readonly symbols: typeof symbols;
  readonly Dispatcher: typeof Dispatcher;
  api(): typeof api;
  util(): typeof util;
  agent(): typeof Agent;
  pool(): typeof Pool;
  poolBase(): typeof poolBase;
  globals(): typeof globals;
};
export = parts;
