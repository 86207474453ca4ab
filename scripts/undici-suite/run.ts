/**
 * Runs undici's own `test/fetch/*.js` and `test/request*.js` against the mesh, in three modes
 * (baseline = plain undici, passthrough, services; see preload.ts), and prints pass/fail counts per
 * mode plus every test that passes on plain undici but fails through the mesh.
 *
 *   pnpm tsx scripts/undici-suite/run.ts [--repo <undici git dir or URL>] [--modes baseline,passthrough,services]
 *                                        [--files <glob-ish substring>] [--keep] [--json <out.json>]
 *
 * undici's tests are read from its repository at the tag of the installed version (or the newest
 * older v7 tag the repository has, with a notice), into a temporary directory; nothing of undici's
 * is kept in this tree. The tests run against the installed `node_modules/undici`: the temporary
 * directory's `index.js`, `index-fetch.js`, `undici-fetch.js` and `lib/` point at it.
 */
import { execFileSync, spawn } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const require = createRequire(path.join(root, 'package.json'));

interface Args {
  repo: string;
  modes: string[];
  files: string | undefined;
  keep: boolean;
  json: string | undefined;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    repo: process.env.UNDICI_REPO ?? 'https://github.com/nodejs/undici.git',
    modes: ['baseline', 'passthrough', 'services'],
    files: undefined,
    keep: false,
    json: undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--repo') args.repo = next();
    else if (a === '--modes') args.modes = next().split(',');
    else if (a === '--files') args.files = next();
    else if (a === '--keep') args.keep = true;
    else if (a === '--json') args.json = next();
    else throw new Error(`unknown argument "${a}"`);
  }
  return args;
}

const out = (line: string) => process.stdout.write(`${line}\n`);

function git(gitDir: string, ...rest: string[]): string {
  return execFileSync('git', [`--git-dir=${gitDir}`, ...rest], { encoding: 'utf8', maxBuffer: 64 << 20 });
}

/** A git directory holding undici's history: the given one, or a fresh clone of the URL. */
function gitDirFor(repo: string, work: string, tag: string): string {
  if (!/^(https?|git|ssh):/.test(repo))
    return repo.endsWith('.git') || repo.endsWith('/repo') ? repo : path.join(repo, '.git');
  const dir = path.join(work, 'undici.git');
  execFileSync(
    'git',
    ['clone', '--bare', '--filter=blob:none', '--branch', tag, '--single-branch', repo, dir],
    {
      stdio: 'inherit',
    },
  );
  return dir;
}

/** The tag for `version`, or the newest older v7 tag present. */
function pickTag(gitDir: string, version: string): string {
  const tags = git(gitDir, 'tag', '--list', 'v7.*').split('\n').filter(Boolean);
  if (tags.includes(`v${version}`)) return `v${version}`;
  const num = (t: string) => t.slice(1).split('.').map(Number);
  const older = tags
    .filter((t) => /^v\d+\.\d+\.\d+$/.test(t))
    .filter((t) => {
      const [a, b] = [num(t), version.split('.').map(Number)];
      for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) < (b[i] ?? 0);
      return false;
    })
    .sort((x, y) => {
      const [a, b] = [num(x), num(y)];
      for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (b[i] ?? 0) - (a[i] ?? 0);
      return 0;
    });
  const tag = older[0];
  if (tag === undefined) throw new Error(`no tag v${version} (nor an older v7 tag) in ${gitDir}`);
  out(`notice: tag v${version} is not in ${gitDir}; using ${tag}, the newest older one`);
  return tag;
}

/** Extract the test tree of `tag` and point the package entry points at the installed undici. */
function prepare(gitDir: string, tag: string, dir: string, undiciDir: string): void {
  const tar = execFileSync('git', [`--git-dir=${gitDir}`, 'archive', tag, 'test', 'package.json'], {
    maxBuffer: 512 << 20,
  });
  execFileSync('tar', ['-x', '-C', dir], { input: tar });
  const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as {
    devDependencies: Record<string, string>;
  };
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'undici-suite', private: true }));
  writeFileSync(path.join(dir, 'index.js'), `module.exports = require(${JSON.stringify(undiciDir)})\n`);
  const fetchEntry = JSON.stringify(path.join(undiciDir, 'index-fetch.js'));
  writeFileSync(path.join(dir, 'index-fetch.js'), `module.exports = require(${fetchEntry})\n`);
  writeFileSync(path.join(dir, 'undici-fetch.js'), `module.exports = require(${fetchEntry})\n`);
  symlinkSync(path.join(undiciDir, 'lib'), path.join(dir, 'lib'));
  // Only the test helpers these files use, at undici's own version ranges.
  const wanted = [
    '@matteo.collina/tspl',
    '@metcoder95/https-pem',
    '@sinonjs/fake-timers',
    'abort-controller',
  ];
  const specs = wanted.map((n) => `${n}@${pkg.devDependencies[n] ?? 'latest'}`);
  execFileSync('npm', ['install', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', ...specs], {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

interface Result {
  result: 'pass' | 'fail' | 'skip' | 'todo';
  file: string;
  name: string;
  message?: string;
}

function runMode(dir: string, files: string[], mode: string): Promise<Result[]> {
  const tsx = pathToFileURL(require.resolve('tsx/esm')).href;
  const preload = pathToFileURL(path.join(here, 'preload.ts')).href;
  const reporter = pathToFileURL(path.join(here, 'reporter.mjs')).href;
  const nodeOptions = [
    '--conditions=@proxyless/source',
    `--import=${tsx}`,
    `--import=${preload}`,
    '--expose-gc',
    '--no-warnings',
  ].join(' ');
  const child = spawn(
    process.execPath,
    ['--test', '--test-concurrency=2', '--test-timeout=120000', `--test-reporter=${reporter}`, ...files],
    {
      cwd: dir,
      env: { ...process.env, NODE_OPTIONS: nodeOptions, UNDICI_SUITE_MODE: mode, NODE_ENV: 'test' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const results: Result[] = [];
  let buffered = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    buffered += chunk;
    let nl = buffered.indexOf('\n');
    while (nl >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.startsWith('{')) {
        const r = JSON.parse(line) as Result;
        results.push({ ...r, file: path.relative(dir, r.file ?? '') });
      }
      nl = buffered.indexOf('\n');
    }
  });
  child.stderr.resume();
  return new Promise((resolve) => child.on('close', () => resolve(results)));
}

const key = (r: Result) => `${r.file} › ${r.name}`;

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const undiciDir = path.dirname(require.resolve('undici/package.json'));
  const version = (
    JSON.parse(readFileSync(path.join(undiciDir, 'package.json'), 'utf8')) as { version: string }
  ).version;
  const work = mkdtempSync(path.join(os.tmpdir(), 'undici-suite-'));
  try {
    const gitDir = gitDirFor(args.repo, work, `v${version}`);
    const tag = pickTag(gitDir, version);
    const dir = path.join(work, 'undici');
    mkdirSync(dir);
    prepare(gitDir, tag, dir, undiciDir);
    const files = [
      ...readdirSync(path.join(dir, 'test/fetch'))
        .filter((f) => f.endsWith('.js'))
        .map((f) => `test/fetch/${f}`),
      ...readdirSync(path.join(dir, 'test'))
        .filter((f) => /^request.*\.js$/.test(f))
        .map((f) => `test/${f}`),
    ]
      .filter((f) => args.files === undefined || f.includes(args.files))
      .sort();
    out(`undici ${version} (tests from ${tag}), ${files.length} files, modes: ${args.modes.join(', ')}`);
    const byMode = new Map<string, Result[]>();
    for (const mode of args.modes) {
      const t0 = Date.now();
      const results = await runMode(dir, files, mode);
      byMode.set(mode, results);
      const count = (k: Result['result']) => results.filter((r) => r.result === k).length;
      out(
        `${mode.padEnd(12)} ${count('pass')} passed, ${count('fail')} failed, ${count('skip') + count('todo')} skipped` +
          ` (${results.length} tests, ${((Date.now() - t0) / 1000).toFixed(1)} s)`,
      );
    }
    const baseline = byMode.get('baseline');
    const failedOnUndici = new Set(baseline?.filter((r) => r.result === 'fail').map(key));
    for (const [mode, results] of byMode) {
      if (mode === 'baseline') continue;
      const regressions = results.filter((r) => r.result === 'fail' && !failedOnUndici.has(key(r)));
      out(`\n${mode}: ${regressions.length} failing test(s) that do not fail on plain undici`);
      for (const r of regressions) out(`  ✗ ${key(r)}${r.message ? `: ${r.message}` : ''}`);
    }
    if (args.json) {
      writeFileSync(
        args.json,
        JSON.stringify({ version, tag, results: Object.fromEntries(byMode) }, null, 2),
      );
    }
  } finally {
    if (args.keep) out(`kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}

await main();
