/**
 * What the release and the packaging test share: the publishable packages in dependency order,
 * packing them as pnpm publishes them (publishConfig applied, `workspace:` ranges replaced), and
 * the checks every tarball must pass before it may be published (manifest rules, publint, attw).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPOSITORY = 'https://github.com/proxyless/proxyless';

interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  exports?: Record<string, unknown>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  optionalDependencies?: Record<string, string>;
  publishConfig?: Record<string, unknown>;
  repository?: { url?: string; directory?: string };
  homepage?: string;
  bugs?: { url?: string };
  engines?: { node?: string };
  [key: string]: unknown;
}

/** A publishable workspace package. */
export interface WorkspacePackage {
  readonly name: string;
  readonly version: string;
  /** Absolute directory. */
  readonly dir: string;
  readonly manifest: Manifest;
}

/** The packages under packages/, each after the workspace packages it depends on. */
export function workspacePackages(root = ROOT): WorkspacePackage[] {
  const all = readdirSync(path.join(root, 'packages'))
    .map((d) => path.join(root, 'packages', d))
    .filter((dir) => existsSync(path.join(dir, 'package.json')))
    .map((dir) => {
      const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as Manifest;
      return { name: manifest.name, version: manifest.version, dir, manifest };
    })
    .filter((p) => p.manifest.private !== true);
  const byName = new Map(all.map((p) => [p.name, p]));
  const ordered: WorkspacePackage[] = [];
  const visiting = new Set<string>();
  const visit = (p: WorkspacePackage): void => {
    if (ordered.includes(p)) return;
    if (visiting.has(p.name)) throw new Error(`dependency cycle through ${p.name}`);
    visiting.add(p.name);
    for (const dep of Object.keys({ ...p.manifest.dependencies, ...p.manifest.peerDependencies })) {
      const d = byName.get(dep);
      if (d) visit(d);
    }
    visiting.delete(p.name);
    ordered.push(p);
  };
  for (const p of [...all].sort((a, b) => a.name.localeCompare(b.name))) visit(p);
  return ordered;
}

/** Run a command; its output is returned (stderr is shown only when it fails). */
export function run(cmd: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = {}): string {
  try {
    return execFileSync(cmd, args, {
      cwd,
      encoding: 'utf8',
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `${cmd} ${args.join(' ')} (in ${cwd}) failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`,
    );
  }
}

/** The tarball name `pnpm pack` gives a package. */
export function tarballName(pkg: WorkspacePackage): string {
  return `${pkg.name.replace(/^@/, '').replace('/', '-')}-${pkg.version}.tgz`;
}

/**
 * `pnpm pack` the packages into `dest` in one pnpm run (publishConfig applied, `workspace:` ranges
 * replaced, as `pnpm publish` does); returns name → tarball. Fails when a dist/ is missing.
 */
export function packPackages(pkgs: readonly WorkspacePackage[], dest: string): Map<string, string> {
  for (const pkg of pkgs)
    if (!existsSync(path.join(pkg.dir, 'dist', 'index.js')))
      throw new Error(`${pkg.name}: dist/ is missing; run pnpm build first`);
  const filters = pkgs.flatMap((p) => ['--filter', p.name]);
  run('pnpm', ['-r', ...filters, 'pack', '--pack-destination', dest], ROOT);
  const out = new Map<string, string>();
  for (const pkg of pkgs) {
    const file = path.join(dest, tarballName(pkg));
    if (!existsSync(file)) throw new Error(`${pkg.name}: pnpm pack wrote no ${file}`);
    out.set(pkg.name, file);
  }
  return out;
}

/** File names (without the `package/` prefix) and the manifest inside a tarball. */
export function readTarball(tgz: string): { files: string[]; manifest: Manifest; bytes: number } {
  const files = run('tar', ['-tzf', tgz], path.dirname(tgz))
    .split('\n')
    .filter(Boolean)
    .map((f) => f.replace(/^package\//, ''));
  const manifest = JSON.parse(
    run('tar', ['-xzOf', tgz, 'package/package.json'], path.dirname(tgz)),
  ) as Manifest;
  return { files, manifest, bytes: statSync(tgz).size };
}

function exportTargets(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) exportTargets(v, out);
  return out;
}

/** Rules of this project for a packed manifest; returns the problems found. */
export function checkPackedManifest(tgz: string): string[] {
  const { files, manifest: m } = readTarball(tgz);
  const problems: string[] = [];
  const text = JSON.stringify(m);
  if (text.includes('@proxyless/source')) problems.push('the @proxyless/source condition is published');
  if (text.includes('workspace:')) problems.push('a workspace: range is published');
  if (m.publishConfig?.access !== 'public') problems.push('publishConfig.access is not "public"');
  if (!m.repository?.url?.includes('github.com/proxyless/proxyless')) problems.push('repository is missing');
  if (!m.homepage) problems.push('homepage is missing');
  if (!m.bugs?.url) problems.push('bugs is missing');
  if (m.engines?.node !== '>=20.18.1') problems.push(`engines.node is ${JSON.stringify(m.engines?.node)}`);
  if (m.exports?.['./package.json'] !== './package.json') problems.push('./package.json is not exported');
  if (m.dependencies?.undici) problems.push('undici is a dependency (it must be a peer)');
  if (m.dependencies?.etcd3) problems.push('etcd3 is a dependency (it must be an optional peer)');
  for (const t of exportTargets(m.exports)) {
    if (!files.includes(t.replace(/^\.\//, ''))) problems.push(`exports target ${t} is not in the tarball`);
  }
  for (const f of files) if (f.endsWith('.map')) problems.push(`source map ${f} is packed`);
  if (!files.includes('README.md')) problems.push('README.md is not packed');
  return problems;
}

/** Code a package publishes: its JavaScript and its declaration files. */
const CODE_FILE = /\.(?:[cm]?js|d\.[cm]?ts)$/;

/**
 * The specifiers a module's text imports that are not relative: `import … from`, `export … from`,
 * `import 'x'`, `import('x')` (dynamic, and type imports in .d.ts files) and `require('x')`.
 * Comments are left out (a JSDoc example may name a package the code does not use).
 */
export function bareImports(code: string): string[] {
  const text = code.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\\w])\/\/.*$/gm, '$1');
  const found = new Set<string>();
  const patterns = [
    /\bfrom\s*(['"])([^'"\n]+)\1/g,
    /(?:^|[;\s])import\s*(['"])([^'"\n]+)\1/g,
    /\b(?:import|require)\s*\(\s*(['"])([^'"\n]+)\1\s*\)/g,
  ];
  for (const pattern of patterns)
    for (const m of text.matchAll(pattern)) if (!/^[./]/.test(m[2]!)) found.add(m[2]!);
  return [...found].sort();
}

/** The package a bare specifier names: `@scope/name` or `name`, without a subpath. */
export function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return (specifier.startsWith('@') ? parts.slice(0, 2) : parts.slice(0, 1)).join('/');
}

/**
 * Every package the published code of the package in `dir` (its package.json and files, as
 * packed) imports without declaring it in `dependencies`, `peerDependencies` or
 * `optionalDependencies`: under pnpm (no hoisting) such an import fails for the user, at run time
 * in .js files and with TS2307 in .d.ts files. Node builtins and the package's own name are fine.
 * `roots`: the folders of `dir` to read (`['dist']` for a workspace package).
 */
export function undeclaredImports(dir: string, roots: readonly string[] = ['.']): string[] {
  const m = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as Manifest;
  const declared = new Set([
    m.name,
    ...Object.keys({ ...m.dependencies, ...m.peerDependencies, ...m.optionalDependencies }),
  ]);
  const problems: string[] = [];
  const walk = (rel: string): void => {
    for (const entry of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const file = path.posix.join(rel, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== 'node_modules') walk(file);
        continue;
      }
      if (!CODE_FILE.test(entry.name)) continue;
      for (const spec of bareImports(readFileSync(path.join(dir, file), 'utf8'))) {
        if (isBuiltin(spec) || declared.has(packageOf(spec))) continue;
        problems.push(
          `${file} imports ${spec}, but ${packageOf(spec)} is not in dependencies, peerDependencies or optionalDependencies`,
        );
      }
    }
  };
  for (const root of roots) walk(root);
  return problems;
}

/** {@link undeclaredImports} of a tarball's contents. */
export function checkPackedImports(tgz: string): string[] {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'proxyless-imports-'));
  try {
    run('tar', ['-xzf', tgz, '-C', dir], dir);
    return undeclaredImports(path.join(dir, 'package'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Files copied into a package at build, checked to be packed, exported and current. */
export const SHIPPED_FILES: Record<
  string,
  ReadonlyArray<{ source: string; packed: string; subpath: string }>
> = {
  // `"$schema": "./node_modules/proxyless/dist/config-file.schema.json"` in a config file, or
  // `require.resolve('proxyless/config-file.schema.json')`.
  proxyless: [
    {
      source: 'docs/config-file.schema.json',
      packed: 'dist/config-file.schema.json',
      subpath: './config-file.schema.json',
    },
  ],
};

/** Each of {@link SHIPPED_FILES} of the package: in the tarball, exported, and equal to its source. */
export function checkShippedFiles(pkg: WorkspacePackage, tgz: string, root = ROOT): string[] {
  const problems: string[] = [];
  const { files, manifest } = readTarball(tgz);
  for (const f of SHIPPED_FILES[pkg.name] ?? []) {
    if (!files.includes(f.packed)) {
      problems.push(`${f.packed} (from ${f.source}) is not in the tarball`);
      continue;
    }
    if (manifest.exports?.[f.subpath] !== `./${f.packed}`)
      problems.push(`${f.subpath} is not exported as ./${f.packed}`);
    const packed = run('tar', ['-xzOf', tgz, `package/${f.packed}`], path.dirname(tgz));
    if (packed !== readFileSync(path.join(root, f.source), 'utf8'))
      problems.push(`${f.packed} differs from ${f.source} (a stale build: pnpm build --force)`);
  }
  return problems;
}

/** The README may only link to absolute URLs (relative links are dead on npmjs.com). */
export function checkReadmeLinks(pkg: WorkspacePackage): string[] {
  const text = readFileSync(path.join(pkg.dir, 'README.md'), 'utf8');
  return [...text.matchAll(/\]\(([^)]+)\)/g)]
    .map((m) => m[1]!)
    .filter((href) => !/^(https?:|mailto:|#)/.test(href))
    .map((href) => `README.md links to ${href} (use an absolute URL)`);
}

/** publint on the tarball, warnings counted as errors. */
export async function publintTarball(tgz: string): Promise<string[]> {
  const { publint } = await import('publint');
  const { formatMessage } = await import('publint/utils');
  const buf = readFileSync(tgz);
  const tarball = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  const { messages, pkg } = await publint({ pack: { tarball }, level: 'warning', strict: true });
  return messages.map((msg) => `publint: ${formatMessage(msg, pkg) ?? msg.code}`);
}

/**
 * attw (Are the Types Wrong?) on the tarball, offline and in-process. Every resolution mode of its
 * strict profile is checked, `node10` included (subpaths resolve through `typesVersions`).
 */
export async function attwTarball(tgz: string): Promise<string[]> {
  const { checkPackage, createPackageFromTarballData } = await import('@arethetypeswrong/core');
  const result = await checkPackage(createPackageFromTarballData(new Uint8Array(readFileSync(tgz))));
  if (!result.types) return ['attw: the package has no types'];
  return result.problems.map((problem) => `attw: ${JSON.stringify(problem)}`);
}

/** Every check of one packed package. */
export async function checkTarball(pkg: WorkspacePackage, tgz: string): Promise<string[]> {
  return [
    ...checkPackedManifest(tgz),
    ...checkPackedImports(tgz),
    ...checkShippedFiles(pkg, tgz),
    ...checkReadmeLinks(pkg),
    ...(await publintTarball(tgz)),
    ...(await attwTarball(tgz)),
  ].map((p) => `${pkg.name}: ${p}`);
}

/**
 * Whether `version` satisfies `range`, for the ranges pnpm writes for internal dependencies
 * (`x.y.z` from `workspace:*`, `^x.y.z` from `workspace:^`); any other range is reported as not.
 */
export function satisfies(version: string, range: string): boolean {
  if (/^\d+\.\d+\.\d+$/.test(range)) return range === version;
  const caret = /^\^(\d+)\.(\d+)\.(\d+)$/.exec(range);
  const v = /^(\d+)\.(\d+)\.(\d+)$/.exec(version);
  if (!caret || !v) return false;
  const [maj, min, pat] = caret.slice(1).map(Number) as [number, number, number];
  const [a, b, c] = v.slice(1).map(Number) as [number, number, number];
  const atLeast = a - maj || b - min || c - pat;
  if (atLeast < 0) return false;
  if (maj > 0) return a === maj;
  if (min > 0) return a === 0 && b === min;
  return a === 0 && b === 0 && c === pat;
}
