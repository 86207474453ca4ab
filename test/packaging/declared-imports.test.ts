/**
 * Every package a published .js or .d.ts file imports is declared by the package that publishes
 * it. With pnpm (no hoisting) an undeclared one is not there for the user: `tsc` on an app that
 * imports `proxyless` failed with TS2307 on `@sinclair/typebox`, imported by the declarations of
 * `@proxyless/balancer` and `@proxyless/resilience` and declared only by `@proxyless/core`.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bareImports, packageOf, undeclaredImports, workspacePackages } from '../../scripts/packaging.js';
import { ensureBuilt } from './install.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function fakePackage(manifest: object, files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'proxyless-declared-'));
  dirs.push(dir);
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify(manifest));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

describe('imports of published files', () => {
  it('finds the bare specifiers of import, export, import(), require() and side-effect imports', () => {
    const code = [
      "import { Type } from '@sinclair/typebox';",
      "import {\n  a,\n  b,\n} from 'multi-line';",
      "export * from './local.js';",
      "export { x } from 're-exported/sub/path.js';",
      "import 'side-effect';",
      "type T = import('type-only').T;",
      "const lazy = () => import('dynamic');",
      "const c = require('common');",
      "const r = require('../relative.cjs');",
      "// import { y } from 'in-a-line-comment';",
      "/** @example import { z } from 'in-a-jsdoc'; */",
      "const url = 'http://example.com/x'; import { w } from 'after-a-url';",
    ].join('\n');
    expect(bareImports(code)).toEqual([
      '@sinclair/typebox',
      'after-a-url',
      'common',
      'dynamic',
      'multi-line',
      're-exported/sub/path.js',
      'side-effect',
      'type-only',
    ]);
    expect(packageOf('@sinclair/typebox/value')).toBe('@sinclair/typebox');
    expect(packageOf('prom-client/lib/counter.js')).toBe('prom-client');
  });

  it('reports a package imported without being declared; dependencies, peers, optionals, builtins and itself are fine', () => {
    const dir = fakePackage(
      {
        name: '@scope/pkg',
        dependencies: { dep: '1' },
        peerDependencies: { peer: '1' },
        optionalDependencies: { opt: '1' },
      },
      {
        'dist/index.js':
          "import 'dep/sub.js'; import p from 'peer'; import o from 'opt'; import fs from 'node:fs'; import net from 'net'; export * from '@scope/pkg/testing';",
        'dist/index.d.ts': "import { Static } from '@sinclair/typebox';\nexport type S = Static<never>;",
        'dist/notes.txt': "import x from 'not-code';",
      },
    );
    expect(undeclaredImports(dir)).toEqual([
      'dist/index.d.ts imports @sinclair/typebox, but @sinclair/typebox is not in dependencies, peerDependencies or optionalDependencies',
    ]);
  });

  it('holds for the dist/ of every workspace package', () => {
    ensureBuilt();
    for (const pkg of workspacePackages()) expect(undeclaredImports(pkg.dir, ['dist']), pkg.name).toEqual([]);
  }, 300_000);
});
