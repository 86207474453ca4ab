/**
 * The example of this package's README runs as written (it showed the `(ctx, next)` filter of the
 * first design after policies became undici interceptors, and failed to compile and to run):
 * each `console.log` prints what its comment says.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const PKG = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

it('the README example compiles and prints what its comments say', () => {
  const readme = readFileSync(path.join(PKG, 'README.md'), 'utf8');
  const code = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(code).toBeDefined();
  const expected = [...(code as string).matchAll(/^console\.log\(.*\); \/\/ (.+)$/gm)].map((m) => m[1]);
  expect(expected.length).toBeGreaterThan(0);
  // Inside the package, so `@proxyless/core` resolves as it does for a user of it.
  const dir = mkdtempSync(path.join(PKG, '.readme-'));
  try {
    const file = path.join(dir, 'example.mts');
    writeFileSync(file, code as string);
    const out = execFileSync(process.execPath, ['--import', 'tsx', file], {
      cwd: PKG,
      encoding: 'utf8',
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    expect(out.trim().split('\n')).toEqual(expected);
    // And it compiles, strict, as a user's ES module.
    const tsc = path.join(PKG, '../../node_modules/typescript/bin/tsc');
    const flags = ['--ignoreConfig', '--strict', '--noEmit', '--module', 'nodenext'];
    flags.push('--moduleResolution', 'nodenext', '--target', 'es2022', '--skipLibCheck', '--types', 'node');
    execFileSync(process.execPath, [tsc, ...flags, file], { cwd: PKG, encoding: 'utf8' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
