import { execFileSync } from 'node:child_process';

/**
 * Integration suites that need a real server binary call this at the top:
 *
 *   const etcd = requireBinary('etcd', 'Debian package etcd-server');
 *   describe.skipIf(!etcd.available)(`etcd registry ${etcd.skipReason}`, () => { … });
 *
 * Under `CI=true` a missing binary throws (the suite fails, it never passes silently); on a
 * laptop the suite is skipped and its title says what was missing and how to install it.
 */
export interface BinaryCheck {
  available: boolean;
  path: string | undefined;
  /** `''` when available, else `(skipped: etcd not found; install Debian package etcd-server)`. */
  skipReason: string;
}

export function requireBinary(name: string, install: string): BinaryCheck {
  const path = which(name);
  if (path) return { available: true, path, skipReason: '' };
  const reason = `${name} not found on PATH; install ${install}`;
  if (process.env.CI === 'true' || process.env.CI === '1') {
    throw new Error(`CI requires ${reason} (.ci/run installs it)`);
  }
  process.stderr.write(`[proxyless tests] skipping suite: ${reason}\n`);
  return { available: false, path: undefined, skipReason: `(skipped: ${reason})` };
}

function which(name: string): string | undefined {
  for (const dir of ['', '/usr/sbin/', '/usr/local/sbin/', '/sbin/']) {
    try {
      if (dir === '') return execFileSync('which', [name], { encoding: 'utf8' }).trim() || undefined;
      execFileSync('test', ['-x', `${dir}${name}`]);
      return `${dir}${name}`;
    } catch {
      // not in this place
    }
  }
  return undefined;
}
