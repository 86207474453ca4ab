import type { Options } from 'tsup';

type Plugin = NonNullable<Options['plugins']>[number];

/**
 * The packages' JavaScript in ASCII: esbuild escapes non-ASCII characters in strings and names
 * (`charset: 'ascii'`), and this escapes the rest — in the comments esbuild keeps and in regular
 * expression literals, where `\uXXXX` means the same character. One non-ASCII character makes
 * Node decode a whole file as UTF-8 and V8 parse it as a two-byte string, at every start-up:
 * about 5 % of the time `import('proxyless')` takes (test/bench/config.ts).
 */
export function asciiOutput(): Plugin {
  return {
    name: 'ascii-output',
    esbuildOptions(options) {
      options.charset = 'ascii';
    },
    renderChunk(code, info) {
      if (!/\.[cm]?js$/.test(info.path) || !NON_ASCII.test(code)) return undefined;
      return { code: escapeNonAscii(code) };
    },
  };
}

/** A UTF-16 code unit above U+007F (written as a range: no control character in the pattern). */
const NON_ASCII = /[\u0080-\uffff]/;
const NON_ASCII_ALL = /[\u0080-\uffff]/g;

/** Every UTF-16 code unit above U+007F as `\uXXXX` (a character past U+FFFF as its pair). */
export function escapeNonAscii(code: string): string {
  return code.replace(NON_ASCII_ALL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
