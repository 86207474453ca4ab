import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  checkShippedFiles,
  run,
  satisfies,
  type WorkspacePackage,
  workspacePackages,
} from '../../scripts/packaging.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'proxyless-release-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A tarball laid out as `pnpm pack` writes one (`package/…`). */
function tarball(name: string, files: Record<string, string>): string {
  const dir = path.join(tmp, name);
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, 'package', file)), { recursive: true });
    writeFileSync(path.join(dir, 'package', file), text);
  }
  run('tar', ['-czf', `${name}.tgz`, '-C', dir, 'package'], tmp);
  return path.join(tmp, `${name}.tgz`);
}

describe('release helpers', () => {
  it('orders the packages so that each comes after the workspace packages it depends on', () => {
    const names = workspacePackages().map((p) => p.name);
    expect(names[0]).toBe('@proxyless/core');
    expect(names.at(-1)).toBe('proxyless');
    for (const [i, p] of workspacePackages().entries()) {
      for (const dep of Object.keys({ ...p.manifest.dependencies, ...p.manifest.peerDependencies })) {
        const at = names.indexOf(dep);
        if (at >= 0) expect(at).toBeLessThan(i);
      }
    }
  });

  it('checks internal ranges as npm would for ^ and exact versions', () => {
    expect(satisfies('0.1.0', '^0.1.0')).toBe(true);
    expect(satisfies('0.1.5', '^0.1.0')).toBe(true);
    expect(satisfies('0.2.0', '^0.1.0')).toBe(false);
    expect(satisfies('0.0.3', '^0.0.3')).toBe(true);
    expect(satisfies('0.0.4', '^0.0.3')).toBe(false);
    expect(satisfies('1.4.0', '^1.2.3')).toBe(true);
    expect(satisfies('2.0.0', '^1.2.3')).toBe(false);
    expect(satisfies('1.2.2', '^1.2.3')).toBe(false);
    expect(satisfies('1.2.3', '1.2.3')).toBe(true);
    expect(satisfies('1.2.4', '1.2.3')).toBe(false);
    expect(satisfies('1.2.3', 'workspace:^')).toBe(false);
  });

  it('checks that proxyless ships docs/config-file.schema.json: packed, exported, current', () => {
    const root = path.join(tmp, 'root');
    mkdirSync(path.join(root, 'docs'), { recursive: true });
    writeFileSync(path.join(root, 'docs', 'config-file.schema.json'), '{"type":"object"}\n');
    const pkg = { name: 'proxyless' } as WorkspacePackage;
    const exported = { exports: { './config-file.schema.json': './dist/config-file.schema.json' } };
    const good = tarball('good', {
      'package.json': JSON.stringify(exported),
      'dist/config-file.schema.json': '{"type":"object"}\n',
    });
    expect(checkShippedFiles(pkg, good, root)).toEqual([]);
    const missing = tarball('missing', { 'package.json': JSON.stringify(exported) });
    expect(checkShippedFiles(pkg, missing, root)).toEqual([
      'dist/config-file.schema.json (from docs/config-file.schema.json) is not in the tarball',
    ]);
    const stale = tarball('stale', {
      'package.json': JSON.stringify({}),
      'dist/config-file.schema.json': '{"type":"array"}\n',
    });
    expect(checkShippedFiles(pkg, stale, root)).toEqual([
      './config-file.schema.json is not exported as ./dist/config-file.schema.json',
      'dist/config-file.schema.json differs from docs/config-file.schema.json (a stale build: pnpm build --force)',
    ]);
    expect(checkShippedFiles({ name: '@proxyless/core' } as WorkspacePackage, missing, root)).toEqual([]);
  });
});
