/**
 * What the release and the packaging test share: the publishable packages in dependency order,
 * packing them as pnpm publishes them (publishConfig applied, `workspace:` ranges replaced), and
 * the checks every tarball must pass before it may be published (manifest rules, publint, attw).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
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
    throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

/** `pnpm pack` one package into `dest`; returns the tarball's path. Fails when dist/ is missing. */
export function packPackage(pkg: WorkspacePackage, dest: string): string {
  if (!existsSync(path.join(pkg.dir, 'dist')))
    throw new Error(`${pkg.name}: dist/ is missing; run pnpm build first`);
  run('pnpm', ['pack', '--pack-destination', dest], pkg.dir);
  const file = path.join(dest, `${pkg.name.replace(/^@/, '').replace('/', '-')}-${pkg.version}.tgz`);
  if (!existsSync(file)) throw new Error(`${pkg.name}: pnpm pack wrote no ${file}`);
  return file;
}

/** File names (without the `package/` prefix) and the manifest inside a tarball. */
export function readTarball(tgz: string): { files: string[]; manifest: Manifest; bytes: number } {
  const files = run('tar', ['-tzf', tgz], path.dirname(tgz))
    .split('\n')
    .filter(Boolean)
    .map((f) => f.replace(/^package\//, ''));
  const manifest = JSON.parse(run('tar', ['-xzOf', tgz, 'package/package.json'], path.dirname(tgz))) as Manifest;
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
 * attw (Are the Types Wrong?) on the tarball, offline (`--no-definitely-typed`). Every resolution
 * mode of the default profile is checked, `node10` included (subpaths resolve through typesVersions).
 */
export function attwTarball(tgz: string): string[] {
  const attw = path.join(ROOT, 'node_modules', '.bin', 'attw');
  try {
    execFileSync(attw, [tgz, '--no-definitely-typed', '--format', 'ascii', '--no-color', '--no-emoji'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return [];
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string };
    return [`attw: ${(e.stdout ?? '').trim()}\n${(e.stderr ?? '').trim()}`];
  }
}

/** Every check of one packed package. */
export async function checkTarball(pkg: WorkspacePackage, tgz: string): Promise<string[]> {
  return [
    ...checkPackedManifest(tgz),
    ...checkReadmeLinks(pkg),
    ...(await publintTarball(tgz)),
    ...attwTarball(tgz),
  ].map((p) => `${pkg.name}: ${p}`);
}
