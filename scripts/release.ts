/**
 * `pnpm release` — build, pack, check, publish, in dependency order (core → balancer, discovery,
 * resilience → proxyless). The tarballs that are checked are the ones published.
 *
 *   pnpm release --dry-run    build, pack and check; publish nothing (offline; runs in CI)
 *   pnpm release              … then `npm publish` each tarball not yet on the registry, and
 *                             `changeset tag` the released versions
 *   options: --no-build (use the dist/ there is), --out DIR (where tarballs go; default .tmp/release)
 *
 * Versions and changelogs come from changesets: `pnpm changeset` records a change,
 * `pnpm version-packages` applies them (bumps versions and internal ranges, writes CHANGELOG.md).
 * Checks per package: the packed manifest (no source condition or `workspace:` range, access public,
 * repository/homepage/bugs, engines, `./package.json` exported, every export target packed, no
 * source maps, undici and etcd3 as peers), every bare import of the packed code declared, shipped
 * files (proxyless's config schema) packed, exported and current, absolute README links, publint,
 * attw, and every internal dependency range satisfied by the version released with it.
 */
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import {
  checkTarball,
  packPackages,
  ROOT,
  readTarball,
  run,
  satisfies,
  type WorkspacePackage,
  workspacePackages,
} from './packaging.js';

interface Args {
  dryRun: boolean;
  build: boolean;
  out: string;
}

function parseArgs(argv: readonly string[]): Args {
  const outIndex = argv.indexOf('--out');
  return {
    dryRun: argv.includes('--dry-run'),
    build: !argv.includes('--no-build'),
    out: path.resolve(
      outIndex >= 0 && argv[outIndex + 1] ? argv[outIndex + 1]! : path.join(ROOT, '.tmp', 'release'),
    ),
  };
}

const log = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};

function internalRangeProblems(pkgs: readonly WorkspacePackage[], tarballs: Map<string, string>): string[] {
  const versions = new Map(pkgs.map((p) => [p.name, p.version]));
  const problems: string[] = [];
  for (const p of pkgs) {
    const { manifest } = readTarball(tarballs.get(p.name)!);
    for (const [dep, range] of Object.entries(manifest.dependencies ?? {})) {
      const v = versions.get(dep);
      if (v !== undefined && !satisfies(v, range))
        problems.push(`${p.name}: depends on ${dep}@${range}, but ${dep}@${v} is released with it`);
    }
  }
  return problems;
}

function publishedAlready(name: string, version: string): boolean {
  try {
    return run('npm', ['view', `${name}@${version}`, 'version'], ROOT).trim() === version;
  } catch {
    return false; // E404: not published yet
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const pkgs = workspacePackages();
  log(`release ${args.dryRun ? '(dry run) ' : ''}of ${pkgs.map((p) => `${p.name}@${p.version}`).join(', ')}`);
  if (args.build) {
    log('build: turbo run build');
    run('pnpm', ['turbo', 'run', 'build', '--output-logs=errors-only'], ROOT, {
      TURBO_TELEMETRY_DISABLED: '1',
    });
  }
  rmSync(args.out, { recursive: true, force: true });
  mkdirSync(args.out, { recursive: true });
  const tarballs = packPackages(pkgs, args.out);
  const problems: string[] = internalRangeProblems(pkgs, tarballs);
  log('');
  log('| order | package | tarball KB | files |');
  log('|---|---|---|---|');
  for (const [i, p] of pkgs.entries()) {
    const tgz = tarballs.get(p.name)!;
    problems.push(...(await checkTarball(p, tgz)));
    const { files, bytes } = readTarball(tgz);
    log(`| ${i + 1} | ${p.name}@${p.version} | ${(bytes / 1024).toFixed(1)} | ${files.length} |`);
  }
  log('');
  if (problems.length > 0) {
    for (const p of problems) log(`problem: ${p}`);
    log(`release stopped: ${problems.length} problem(s); nothing was published`);
    process.exitCode = 1;
    return;
  }
  log(
    'checks passed: manifests, declared imports, shipped files, README links, publint, attw, internal ranges',
  );
  if (args.dryRun) {
    for (const p of pkgs) log(`would publish ${p.name}@${p.version} from ${tarballs.get(p.name)}`);
    return;
  }
  for (const p of pkgs) {
    if (publishedAlready(p.name, p.version)) {
      log(`skip ${p.name}@${p.version}: already on the registry`);
      continue;
    }
    log(`publish ${p.name}@${p.version}`);
    // The packed manifest carries publishConfig.access = public; provenance follows
    // NPM_CONFIG_PROVENANCE when the CI provides an identity.
    run('npm', ['publish', tarballs.get(p.name)!, '--access', 'public'], ROOT);
  }
  run('pnpm', ['changeset', 'tag'], ROOT);
  log('published; git tags created (push them with git push --follow-tags)');
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
