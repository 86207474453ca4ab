/**
 * Builds the packages once per test run, packs them as pnpm publishes them, and installs the
 * tarballs with plain npm into a fresh project, offline: the third-party packages they need are
 * packed from the workspace's own installed copies, so nothing is fetched from a registry.
 */
import { execFile } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { ROOT, run, type WorkspacePackage } from '../../scripts/packaging.js';

const execFileAsync = promisify(execFile);

/**
 * `turbo run build` once per vitest run (test files run in child processes of one vitest process:
 * the parent's pid marks the run), under a lock, so two test files never rebuild dist/ under each
 * other. With an unchanged source turbo answers from its cache in about a second.
 */
export function ensureBuilt(): void {
  const dir = path.join(ROOT, '.tmp');
  mkdirSync(dir, { recursive: true });
  const stamp = path.join(dir, `built-${process.ppid}`);
  const lock = path.join(dir, 'build.lock');
  const deadline = Date.now() + 8 * 60_000;
  for (;;) {
    if (existsSync(stamp)) return;
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`${lock} held for too long`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200); // the other file is building
    }
  }
  try {
    if (!existsSync(stamp)) {
      run('pnpm', ['turbo', 'run', 'build', '--output-logs=errors-only'], ROOT, {
        TURBO_TELEMETRY_DISABLED: '1',
      });
      for (const f of readdirSync(dir))
        if (f.startsWith('built-')) rmSync(path.join(dir, f), { force: true });
      writeFileSync(stamp, '');
    }
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** Where `name` resolves from `fromDir`, following Node's lookup (pnpm links included). */
function findPackageDir(name: string, fromDir: string): string {
  for (let d = fromDir; ; d = path.dirname(d)) {
    const candidate =
      path.basename(d) === 'node_modules' ? path.join(d, name) : path.join(d, 'node_modules', name);
    if (existsSync(path.join(candidate, 'package.json'))) return realpathSync(candidate);
    if (path.dirname(d) === d) throw new Error(`cannot find ${name} from ${fromDir}`);
  }
}

interface DepManifest {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

/** Required third-party packages (dependencies and non-optional peers), transitively. */
export function thirdPartyClosure(
  pkgs: readonly WorkspacePackage[],
  extra: readonly string[] = [],
): string[] {
  const workspace = new Set(pkgs.map((p) => p.name));
  const seen = new Map<string, string>(); // name@version → dir
  const visit = (name: string, fromDir: string): void => {
    if (workspace.has(name)) return;
    const dir = findPackageDir(name, fromDir);
    const m = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as DepManifest;
    const key = `${m.name}@${m.version}`;
    if (seen.has(key)) return;
    seen.set(key, dir);
    for (const dep of required(m)) visit(dep, dir);
  };
  for (const p of pkgs) for (const dep of required(p.manifest as DepManifest)) visit(dep, p.dir);
  for (const name of extra) visit(name, ROOT);
  return [...seen.values()];
}

function required(m: DepManifest): string[] {
  const peers = Object.keys(m.peerDependencies ?? {}).filter((n) => !m.peerDependenciesMeta?.[n]?.optional);
  return [...Object.keys(m.dependencies ?? {}), ...peers];
}

/**
 * Tar an installed package folder the way npm packs it (everything under `package/`). The folders
 * come from the pnpm store, which holds exactly the files the registry tarball had. The store
 * hard-links files of equal content; npm drops link entries, so links are archived as files.
 */
function tarInstalled(dir: string, dest: string): string {
  const m = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as DepManifest;
  const file = path.join(dest, `${m.name.replace(/^@/, '').replace('/', '-')}-${m.version}.tgz`);
  run(
    'tar',
    [
      '-czf',
      file,
      '--hard-dereference',
      '--exclude=./node_modules',
      '--transform',
      's,^\\.,package,',
      '-C',
      dir,
      '.',
    ],
    dest,
  );
  return file;
}

/** Tar the third-party packages the workspace packages need at run time into `dest`. */
export function packThirdParty(packages: readonly WorkspacePackage[], dest: string): string[] {
  mkdirSync(dest, { recursive: true });
  return thirdPartyClosure(packages).map((dir) => tarInstalled(dir, dest));
}

/** Tarballs of extra packages a consumer brings itself (`@types/node` for the TypeScript ones). */
export function packExtra(names: readonly string[], dest: string): string[] {
  mkdirSync(dest, { recursive: true });
  return thirdPartyClosure([], names).map((dir) => tarInstalled(dir, dest));
}

/** `npm install` tarballs into `project`, offline, with a private cache. */
export function npmInstallOffline(project: string, tarballs: readonly string[]): void {
  run(
    'npm',
    ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', '--no-package-lock', ...tarballs],
    project,
    { npm_config_cache: path.join(project, '.npm-cache'), npm_config_update_notifier: 'false' },
  );
}

/** Installed packages and bytes under `node_modules` (nested copies included, `.bin` and caches not). */
export function footprint(
  project: string,
  exclude: ReadonlySet<string> = new Set(),
): { packages: string[]; bytes: number } {
  const packages: string[] = [];
  let bytes = 0;
  const size = (p: string): number => {
    const st = statSync(p);
    if (!st.isDirectory()) return st.size;
    return readdirSync(p).reduce((n, f) => n + size(path.join(p, f)), 0);
  };
  const scan = (nm: string): void => {
    if (!existsSync(nm)) return;
    for (const entry of readdirSync(nm)) {
      if (entry.startsWith('.')) continue;
      const dirs = entry.startsWith('@')
        ? readdirSync(path.join(nm, entry)).map((e) => path.join(nm, entry, e))
        : [path.join(nm, entry)];
      for (const d of dirs) {
        if (!existsSync(path.join(d, 'package.json'))) continue;
        const m = JSON.parse(readFileSync(path.join(d, 'package.json'), 'utf8')) as DepManifest;
        if (exclude.has(m.name)) continue;
        packages.push(`${m.name}@${m.version}`);
        const nested = path.join(d, 'node_modules');
        bytes += size(d) - (existsSync(nested) ? size(nested) : 0);
        scan(nested);
      }
    }
  };
  scan(path.join(project, 'node_modules'));
  return { packages: packages.sort(), bytes };
}

/**
 * The environment of a process started as a user would start it: no NODE_PATH (pnpm sets one for
 * its scripts, which makes hoisted workspace packages such as etcd3 resolvable), no NODE_OPTIONS.
 */
export function cleanEnv(): NodeJS.ProcessEnv {
  const { PATH, HOME, TMPDIR, LANG } = process.env;
  return Object.fromEntries(
    Object.entries({ PATH, HOME, TMPDIR, LANG }).filter(([, v]) => v !== undefined),
  ) as NodeJS.ProcessEnv;
}

/**
 * Run a node script in `cwd` and parse its JSON output. Asynchronous: the test's HTTP server runs on
 * the test's own event loop.
 */
export async function runNode(
  args: readonly string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
): Promise<Record<string, unknown>> {
  const { stdout } = await execFileAsync(process.execPath, args, {
    cwd,
    env: { ...cleanEnv(), ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return JSON.parse(stdout) as Record<string, unknown>;
}
