/**
 * What a user gets from npm: the five packages are built, packed as pnpm publishes them, checked
 * (manifest rules, publint, attw), and installed with plain npm from the tarballs into a fresh
 * project, offline. ESM, CommonJS and TypeScript (node16, bundler) consumers then make real calls
 * through the mesh to a server on 127.0.0.1, and an esbuild bundle of a minimal app starts.
 */
import { execFile, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ROOT,
  readTarball,
  run,
  tarballName,
  type WorkspacePackage,
  workspacePackages,
} from '../../scripts/packaging.js';
import { ensureBuilt, footprint, npmInstallOffline, packExtra, packThirdParty, runNode } from './install.js';

const execFileAsync = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const bin = (name: string): string => path.join(ROOT, 'node_modules', '.bin', name);
const report = (line: string): void => {
  process.stdout.write(`[packaging] ${line}\n`);
};

const TYPES = ['@types/node'];
/** What @types/node brings (the consumer's own types, not part of the mesh's footprint). */
const TYPE_PACKAGES = new Set(['@types/node', 'undici-types']);

let tmp: string;
let project: string;
let packages: WorkspacePackage[];
let tarballs: Map<string, string>;
let release: { status: number | null; output: string };
let server: http.Server;
let env: Record<string, string>;

beforeAll(async () => {
  ensureBuilt();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'proxyless-packaging-'));
  // The release's own dry run packs and checks the packages; the test installs those tarballs.
  const out = path.join(tmp, 'tarballs');
  const dry = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'scripts/release.ts', '--dry-run', '--no-build', '--out', out],
    { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } },
  );
  release = { status: dry.status, output: `${dry.stdout}${dry.stderr}` };
  packages = workspacePackages();
  tarballs = new Map(packages.map((p) => [p.name, path.join(out, tarballName(p))]));
  const thirdParty = packThirdParty(packages, path.join(tmp, 'deps'));
  project = path.join(tmp, 'app');
  cpSync(path.join(here, 'consumer'), project, { recursive: true });
  writeFileSync(
    path.join(project, 'package.json'),
    `${JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }, null, 2)}\n`,
  );
  // The TypeScript consumers bring their own @types/node (installed in the same npm run, and left
  // out of the footprint below).
  const types = packExtra(TYPES, path.join(tmp, 'types'));
  npmInstallOffline(project, [...tarballs.values(), ...thirdParty, ...types]);
  server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`echo ${req.method} ${req.url} host=${req.headers.host}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  env = { MESH_ENDPOINTS_ECHO: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}, 300_000);

afterAll(async () => {
  await new Promise<void>((resolve) => server?.close(() => resolve()));
  if (tmp && !process.env.KEEP_PACKAGING_TMP) rmSync(tmp, { recursive: true, force: true });
});

describe('packed packages', () => {
  it('pnpm release --dry-run passes: manifest rules, README links, publint, attw, internal ranges', () => {
    report(`release dry run:\n${release.output.trim()}`);
    expect(release.status).toBe(0);
    for (const [name, tgz] of tarballs) {
      const { files, bytes } = readTarball(tgz);
      report(`${name}: tarball ${(bytes / 1024).toFixed(1)} KB, ${files.length} files`);
    }
  });

  it('install small: no etcd3, no gRPC, one undici', () => {
    const { packages, bytes } = footprint(project, TYPE_PACKAGES);
    report(
      `installed footprint without optional peers: ${packages.length} packages, ${(bytes / 1e6).toFixed(2)} MB (${packages.join(', ')})`,
    );
    const names = packages.map((p) => p.replace(/@[^@]+$/, ''));
    expect(names).not.toContain('etcd3');
    expect(names).not.toContain('@grpc/grpc-js');
    expect(names).not.toContain('protobufjs');
    expect(names.filter((n) => n === 'undici')).toHaveLength(1);
    expect(names).toContain('proxyless');
  });
});

describe('consumers of the installed packages', () => {
  it('the config document JSON Schema is shipped: proxyless/config-file.schema.json, as in docs/', async () => {
    const out = await runNode(['schema.cjs'], project, env);
    expect(out.resolved).toBe(
      path.join(
        realpathSync(path.join(project, 'node_modules', 'proxyless')),
        'dist',
        'config-file.schema.json',
      ),
    );
    expect(out.schema).toEqual(
      JSON.parse(readFileSync(path.join(ROOT, 'docs', 'config-file.schema.json'), 'utf8')),
    );
  });

  it('ESM: fetch, request and undici with mesh.dispatcher; proxyless/testing; etcd without etcd3', async () => {
    const out = await runNode(['esm.mjs'], project, env);
    expect(out.fetch).toEqual({ status: 200, text: 'echo GET /esm-fetch host=echo' });
    expect(out.request).toEqual({ status: 200, text: 'echo GET /esm-request host=echo' });
    expect(out.undici).toEqual({ status: 200, text: 'echo GET /esm-undici host=echo' });
    expect(out.runPolicy).toEqual([503, 503, 200]);
    expect(out.testingErrorIsMeshError).toBe(true);
    // proxyless bundles the workspace packages (one file per entry); an error of the copy in
    // @proxyless/discovery is still `instanceof` proxyless's MeshError.
    expect(out.meshErrorFromCore).toBe(false);
    expect(out.etcdErrorIsMeshError).toBe(true);
    expect(out.errorClassName).toBe('MeshError');
    expect(out.renamedExports).toEqual([]);
    expect(out.deadlineAcrossCopies).toBeGreaterThan(400);
    expect(out.deadlineAcrossCopies).toBeLessThanOrEqual(500);
    for (const etcd of [out.etcd, out.meshEtcd] as Array<{ code: string; message: string }>) {
      expect(etcd.code).toBe('MESH_CONFIG_INVALID');
      expect(etcd.message).toContain('npm install etcd3');
    }
  });

  it('CJS: the same calls, one MeshError class across proxyless and proxyless/testing', async () => {
    const out = await runNode(['cjs.cjs'], project, env);
    expect(out.fetch).toEqual({ status: 200, text: 'echo GET /cjs-fetch host=echo' });
    expect(out.request).toEqual({ status: 200, text: 'echo GET /cjs-request host=echo' });
    expect(out.undici).toEqual({ status: 200, text: 'echo GET /cjs-undici host=echo' });
    expect(out.runPolicy).toEqual([503, 503, 200]);
    expect(out.testingErrorIsMeshError).toBe(true);
    expect(out.runPolicyErrorIsMeshError).toBe(true);
    expect(out.meshEtcd).toMatchObject({ code: 'MESH_CONFIG_INVALID' });
    expect((out.meshEtcd as { message: string }).message).toContain('npm install etcd3');
    report(`require('proxyless') + testing + undici: ${out.modulesLoaded} modules in require.cache`);
  });

  it('TypeScript: type-checks and runs with module node16 and with moduleResolution bundler', async () => {
    // skipLibCheck is off: the published .d.ts files must hold up on their own (no etcd3 needed).
    const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    await Promise.all(
      ['tsconfig.node16.json', 'tsconfig.bundler.json'].map((config) =>
        execFileAsync(process.execPath, [tsc, '-p', config], { cwd: project }).catch((error: unknown) => {
          const e = error as { stdout?: string; message: string };
          throw new Error(`tsc -p ${config}: ${e.stdout ?? ''}${e.message}`);
        }),
      ),
    );
    const esm = await runNode(['out-node16/typed.mjs'], project, env);
    expect(esm.fetch).toEqual({ status: 200, text: 'echo POST /ts-fetch host=echo' });
    expect(esm.request).toEqual({ status: 200, text: 'echo GET /ts-request host=echo' });
    expect(esm.undici).toEqual({ status: 200, text: 'echo GET /ts-undici host=echo' });
    expect(esm.runPolicy).toEqual([503, 200]);
    const cjs = await runNode(['out-node16/typed.cjs'], project, env);
    expect(cjs).toEqual({
      fetch: { status: 200, text: 'echo GET /cts-fetch host=echo' },
      undici: { status: 200, text: 'echo GET /cts-undici host=echo' },
      runPolicy: true,
    });
    const bundler = await runNode(['out-bundler/typed.mjs'], project, env);
    expect(bundler.undici).toEqual({ status: 200, text: 'echo GET /ts-undici host=echo' });
  }, 240_000);

  it('an esbuild bundle of a minimal createMesh app starts outside the project', async () => {
    const outDir = mkdtempSync(path.join(tmp, 'bundle-'));
    const outfile = path.join(outDir, 'app.js');
    run(
      bin('esbuild'),
      ['bundle-app.mjs', '--bundle', '--platform=node', '--log-level=error', `--outfile=${outfile}`],
      project,
      { NODE_PATH: '' }, // esbuild reads NODE_PATH; pnpm's would expose the workspace's packages
    );
    const out = await runNode([outfile], outDir, env);
    // undici's fetch, loaded at the first mesh.fetch, is not in the bundle: a clear MeshError
    // saying to keep undici external (it was a bare MODULE_NOT_FOUND for 'undici').
    expect(out).toEqual({
      status: 200,
      text: 'echo GET /bundle host=echo',
      fetch: { code: 'MESH_INTERNAL', external: true },
    });
  });

  it('an ESM esbuild bundle made as README says (undici external, the require banner) runs both calls', async () => {
    // Next to the project's node_modules, where the app's undici is installed.
    const outfile = path.join(project, 'bundle-esm.mjs');
    const args = ['bundle-app.mjs', '--bundle', '--platform=node', '--format=esm', '--log-level=error'];
    const esbuild = (extra: string[]): void => {
      run(bin('esbuild'), [...args, '--external:undici', ...extra, `--outfile=${outfile}`], project, {
        NODE_PATH: '',
      });
    };
    esbuild([`--banner:js=${README_ESM_BANNER}`]);
    const out = await runNode([outfile], project, env);
    expect(out).toEqual({ status: 200, text: 'echo GET /bundle host=echo', fetch: { ok: true } });
    // Without the banner, esbuild's ESM output cannot `require` an external package from the
    // CommonJS code it bundled (undici's internals): what the README's note is for.
    esbuild([]);
    await expect(runNode([outfile], project, env)).rejects.toThrow(/Dynamic require of "undici/);
  });
});

/** The banner packages/mesh/README.md gives for ESM bundles, read from it (so the two agree). */
const README_ESM_BANNER = (() => {
  const readme = readFileSync(path.join(ROOT, 'packages/mesh/README.md'), 'utf8');
  const m = /--banner:js="([^"]+)"/.exec(readme);
  if (m === null) throw new Error('packages/mesh/README.md gives no --banner:js for ESM bundles');
  return m[1] as string;
})();
