/**
 * The published JavaScript is ASCII: one non-ASCII character (an em dash in a kept comment, a `µ`
 * in a regular expression) makes Node decode the whole file as UTF-8 and V8 parse it as a
 * two-byte string, at every start-up of every user (about 5 % of `import('proxyless')`).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { workspacePackages } from '../../scripts/packaging.js';
import { escapeNonAscii } from '../../scripts/tsup-ascii.js';
import { ensureBuilt } from './install.js';

const NON_ASCII = /[\u0080-\uffff]/;

describe('ASCII output', () => {
  it('escapes what esbuild leaves: comments, regular expressions, characters past U+FFFF', () => {
    const code = '/** a — b */\nexport const re = /(µs|μs)$/;\nexport const s = "😀";\n';
    const escaped = escapeNonAscii(code);
    expect(NON_ASCII.test(escaped)).toBe(false);
    expect(escaped).toContain('/(\\u00b5s|\\u03bcs)$/');
    // The same program: the pattern matches the same text, the string is the same string.
    const run = (src: string): [boolean, boolean, string] =>
      new Function(`${src.replace(/export /g, '')}; return [re.test('3µs'), re.test('3μs'), s];`)();
    expect(run(escaped)).toEqual(run(code));
    expect(run(escaped)).toEqual([true, true, '😀']);
  });

  it('holds for the dist/ of every workspace package', () => {
    ensureBuilt();
    const offending: string[] = [];
    for (const pkg of workspacePackages()) {
      const dist = path.join(pkg.dir, 'dist');
      for (const name of readdirSync(dist, { recursive: true }) as string[]) {
        if (!/\.[cm]?js$/.test(name)) continue;
        const text = readFileSync(path.join(dist, name), 'utf8');
        const at = text.search(NON_ASCII);
        if (at >= 0)
          offending.push(
            `${pkg.name} dist/${name}: ${JSON.stringify(text.slice(Math.max(0, at - 30), at + 10))}`,
          );
      }
    }
    expect(offending).toEqual([]);
  }, 300_000);
});
