import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MeshError } from '@proxyless/core';
import { VirtualClock } from '@proxyless/core/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type JsonFile, type JsonFileVersion, watchJsonFile } from './json-file.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'proxyless-json-file-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** The next version the file delivers, or a rejection after `ms` (the watch did not see it). */
function nextVersion(file: JsonFile, ms = 5_000): Promise<JsonFileVersion> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sub.dispose();
      reject(new Error(`no version within ${ms}ms`));
    }, ms);
    const sub = file.onVersion((v) => {
      clearTimeout(timer);
      sub.dispose();
      resolve(v);
    });
  });
}

/**
 * A Kubernetes ConfigMap volume: `mesh.json -> ..data/mesh.json`, `..data -> ..<timestamp>`; an
 * update writes a new timestamped directory and renames a new `..data_tmp` symlink over `..data`.
 */
function configMap(): { path: string; publish(text: string): void } {
  let generation = 0;
  const publish = (text: string): void => {
    generation++;
    const ts = `..2026_01_01_00_00_0${generation}`;
    mkdirSync(join(dir, ts));
    writeFileSync(join(dir, ts, 'mesh.json'), text);
    symlinkSync(ts, join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  };
  return { path: join(dir, 'mesh.json'), publish };
}

describe('watchJsonFile: file events', () => {
  // Polling is pushed out of reach: only the directory watch can deliver within the timeout.
  const options = { pollIntervalMs: 10 * 60_000 };

  it('sees a ConfigMap-style `..data` symlink swap through the directory watch', async () => {
    const cm = configMap();
    cm.publish('{"v":1}');
    symlinkSync('..data/mesh.json', cm.path);
    const file = watchJsonFile({ path: cm.path, ...options });
    try {
      expect(file.current().value).toEqual({ v: 1 });
      const next = nextVersion(file);
      cm.publish('{"v":2}');
      expect((await next).value).toEqual({ v: 2 });
      const again = nextVersion(file);
      cm.publish('{"v":3}');
      expect((await again).value).toEqual({ v: 3 });
    } finally {
      await file.close();
    }
  });

  it('sees a ConfigMap swap through a symlink from another directory (a mount linked into the app)', async () => {
    const cm = configMap();
    cm.publish('{"v":1}');
    symlinkSync('..data/mesh.json', cm.path);
    const app = join(dir, 'app');
    mkdirSync(app);
    const linked = join(app, 'mesh.json');
    symlinkSync(cm.path, linked);
    const file = watchJsonFile({ path: linked, ...options });
    try {
      expect(file.current().value).toEqual({ v: 1 });
      const next = nextVersion(file);
      cm.publish('{"v":2}');
      expect((await next).value).toEqual({ v: 2 });
    } finally {
      await file.close();
    }
  });

  it('still sees an atomic rename over the file', async () => {
    const path = join(dir, 'mesh.json');
    writeFileSync(path, '{"v":1}');
    const file = watchJsonFile({ path, ...options });
    try {
      const next = nextVersion(file);
      writeFileSync(`${path}.tmp`, '{"v":2}');
      renameSync(`${path}.tmp`, path);
      expect((await next).value).toEqual({ v: 2 });
    } finally {
      await file.close();
    }
  });

  it('delivers nothing for an unrelated file in the same directory', async () => {
    const path = join(dir, 'mesh.json');
    writeFileSync(path, '{"v":1}');
    const file = watchJsonFile({ path, ...options });
    const versions: JsonFileVersion[] = [];
    file.onVersion((v) => versions.push(v));
    try {
      writeFileSync(join(dir, 'other.json'), '{"x":1}');
      // Then a change of the file itself: once it is delivered, the unrelated write was handled too.
      const next = nextVersion(file);
      writeFileSync(path, '{"v":2}');
      await next;
      expect(versions.map((v) => v.value)).toEqual([{ v: 2 }]);
    } finally {
      await file.close();
    }
  });
});

describe('watchJsonFile: watches that follow the path (probe of file watching)', () => {
  const options = { pollIntervalMs: 10 * 60_000 };

  /** Replace `path` atomically with `text` (write aside, rename over). */
  const replace = (path: string, text: string): void => {
    writeFileSync(`${path}.tmp`, text);
    renameSync(`${path}.tmp`, path);
  };
  /** Re-point the symlink `link` at `target` atomically (a new link renamed over it). */
  const repoint = (link: string, target: string): void => {
    symlinkSync(target, `${link}.tmp`);
    renameSync(`${link}.tmp`, link);
  };

  it('a busy neighbour file does not hold a change back (the debounce is bounded)', async () => {
    const path = join(dir, 'mesh.json');
    writeFileSync(path, '{"v":1}');
    const file = watchJsonFile({ path, ...options });
    // A log written next to the config every few ms, until the version comes (at most 3 s).
    let writes = 0;
    const writer = setInterval(() => {
      writeFileSync(join(dir, 'app.log'), `line ${++writes}\n`, { flag: 'a' });
      if (writes >= 600) clearInterval(writer);
    }, 5);
    try {
      const next = nextVersion(file, 1_000);
      replace(path, '{"v":2}');
      expect((await next).value).toEqual({ v: 2 });
    } finally {
      clearInterval(writer);
      await file.close();
    }
  });

  it('follows a file symlink re-pointed to another directory', async () => {
    for (const d of ['A', 'B', 'app']) mkdirSync(join(dir, d));
    writeFileSync(join(dir, 'A', 'mesh.json'), '{"v":1}');
    writeFileSync(join(dir, 'B', 'mesh.json'), '{"v":2}');
    const path = join(dir, 'app', 'mesh.json');
    symlinkSync('../A/mesh.json', path);
    const file = watchJsonFile({ path, ...options });
    try {
      const moved = nextVersion(file);
      repoint(path, '../B/mesh.json');
      expect((await moved).value).toEqual({ v: 2 });
      const next = nextVersion(file);
      replace(join(dir, 'B', 'mesh.json'), '{"v":3}');
      expect((await next).value).toEqual({ v: 3 });
    } finally {
      await file.close();
    }
  });

  it('watches a directory deleted and made again (rm -rf cfg; mkdir cfg), also when its inode is reused', async () => {
    const cfg = join(dir, 'cfg');
    mkdirSync(cfg);
    const path = join(cfg, 'mesh.json');
    writeFileSync(path, '{"v":1}');
    const file = watchJsonFile({ path, ...options });
    try {
      const recreated = nextVersion(file);
      rmSync(cfg, { recursive: true });
      mkdirSync(cfg);
      writeFileSync(path, '{"v":2}');
      expect((await recreated).value).toEqual({ v: 2 });
      const next = nextVersion(file);
      replace(path, '{"v":3}');
      expect((await next).value).toEqual({ v: 3 });
    } finally {
      await file.close();
    }
  });

  it('follows a directory symlink on the way (a deploy re-pointing current -> release)', async () => {
    for (const d of ['rel1', 'rel2']) mkdirSync(join(dir, d));
    writeFileSync(join(dir, 'rel1', 'mesh.json'), '{"v":1}');
    writeFileSync(join(dir, 'rel2', 'mesh.json'), '{"v":2}');
    symlinkSync('rel1', join(dir, 'cur'));
    const file = watchJsonFile({ path: join(dir, 'cur', 'mesh.json'), ...options });
    try {
      const moved = nextVersion(file);
      repoint(join(dir, 'cur'), 'rel2');
      expect((await moved).value).toEqual({ v: 2 });
      const next = nextVersion(file);
      replace(join(dir, 'rel2', 'mesh.json'), '{"v":3}');
      expect((await next).value).toEqual({ v: 3 });
    } finally {
      await file.close();
    }
  });
});

describe('watchJsonFile: reload()', () => {
  // No polling and no file events in reach: only reload() reads.
  const options = { pollIntervalMs: 10 * 60_000, debounceMs: 10 * 60_000 };

  it('resolves after a read that began after the call, also while another read is under way', async () => {
    const path = join(dir, 'mesh.json');
    writeFileSync(path, '{"v":1}');
    const file = watchJsonFile({ path, ...options });
    let inner: Promise<void> | undefined;
    // The listener runs inside the read of v2, which is still under way: a write now and a
    // reload() must not be answered by that read.
    const sub = file.onVersion((v) => {
      if ((v.value as { v: number }).v !== 2) return;
      writeFileSync(path, '{"v":3}');
      inner = file.reload();
    });
    try {
      writeFileSync(path, '{"v":2}');
      await file.reload();
      expect(inner).toBeDefined();
      await inner;
      expect(file.current().value).toEqual({ v: 3 });
      // Calls made while one read is under way share the one read queued behind it.
      writeFileSync(path, '{"v":4}');
      const first = file.reload();
      const second = file.reload();
      const third = file.reload();
      expect(third).toBe(second);
      await Promise.all([first, second, third]);
      expect(file.current()).toEqual({ version: 4, value: { v: 4 } });
    } finally {
      sub.dispose();
      await file.close();
    }
  });
});

/** Point the symlink `name` in `dir` at `target`, atomically (a new link renamed over it). */
function repoint(name: string, target: string): void {
  symlinkSync(target, join(dir, 'repoint.tmp'));
  renameSync(join(dir, 'repoint.tmp'), join(dir, name));
}

describe('watchJsonFile: a failed read mended without changing the file', () => {
  // `via.json -> link -> mesh.json`. Made a loop (`link -> link`), the path cannot be read; undone,
  // it reads the very same file, with the stat it had: as after `chmod` fixes permissions on the
  // file or its directory, which change neither its time, size nor inode (root ignores modes, so
  // a loop stands in for them here).
  function linked(clock: VirtualClock): { file: JsonFile; versions: JsonFileVersion[]; errors: MeshError[] } {
    writeFileSync(join(dir, 'mesh.json'), '{"v":1}');
    symlinkSync('mesh.json', join(dir, 'link'));
    symlinkSync('link', join(dir, 'via.json'));
    const file = watchJsonFile({ path: join(dir, 'via.json'), clock });
    const versions: JsonFileVersion[] = [];
    const errors: MeshError[] = [];
    file.onVersion((v) => versions.push(v));
    file.onError((e) => errors.push(e));
    return { file, versions, errors };
  }

  it('is read again by the poll and delivered, though the stat the poll compares is unchanged', async () => {
    const clock = new VirtualClock();
    const { file, errors } = linked(clock);
    try {
      repoint('link', 'link');
      await file.reload();
      expect(errors).toHaveLength(1);
      expect(errors[0]!.message).toMatch(/cannot be read/);
      repoint('link', 'mesh.json');
      const next = nextVersion(file);
      await clock.advance(2_000);
      expect((await next).value).toEqual({ v: 1 });
    } finally {
      await file.close();
    }
  });

  it('reports a read failure that persists once, however often it is re-read (polls, reload())', async () => {
    const clock = new VirtualClock();
    const { file, errors, versions } = linked(clock);
    try {
      repoint('link', 'link');
      await file.reload();
      await file.reload();
      await file.reload();
      expect(errors).toHaveLength(1);
      // Mended, then broken again: a new failure, reported.
      repoint('link', 'mesh.json');
      await file.reload();
      expect(versions).toHaveLength(1);
      repoint('link', 'link');
      await file.reload();
      expect(errors).toHaveLength(2);
    } finally {
      await file.close();
    }
  });
});
