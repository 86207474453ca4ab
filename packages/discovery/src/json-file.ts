/**
 * A watched JSON file: versions of its parsed content, read at start and again when it changes
 * (an `fs.watch` of its directory, so editors' atomic saves and Kubernetes ConfigMap symlink swaps
 * are seen, with a stat poll as the fallback). A file that stops parsing keeps the last version.
 */

import {
  type FSWatcher,
  lstatSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  statSync,
  watch,
} from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import {
  type Clock,
  configError,
  createEmitter,
  type Disposable,
  type Logger,
  MeshError,
  noopLogger,
  systemClock,
  type Timer,
} from '@proxyless/core';

/** The largest config document read (a guard against reading the wrong file). */
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

export interface JsonFileOptions {
  /** Path of the JSON document (`MESH_CONFIG_FILE`). */
  path: string;
  clock?: Clock;
  logger?: Logger;
  /** Polling interval, the fallback when file events are missed or unsupported. @defaultValue 2000 */
  pollIntervalMs?: number;
  /** Quiet period after a change event before the file is read (coalesces partial writes). @defaultValue 20 */
  debounceMs?: number;
}

/**
 * One parsed version of the file. `version` counts the contents delivered, from 1: each new
 * content, and the same content again when the file is readable and valid after a failure.
 */
export interface JsonFileVersion {
  readonly version: number;
  readonly value: unknown;
}

/** A watched JSON file. It parses JSON only; what the document means is its reader's business. */
export interface JsonFile {
  readonly path: string;
  /** The version read last (at start: read synchronously by the constructor). */
  current(): JsonFileVersion;
  /** A new content was read and parsed (or the last one again, once readable after an error). */
  onVersion(listener: (v: JsonFileVersion) => void): Disposable;
  /**
   * The file became unreadable, half-written (not JSON) or was deleted; nothing new to apply.
   * The next content read that parses is delivered through `onVersion`, even if unchanged.
   */
  onError(listener: (error: MeshError) => void): Disposable;
  /** Re-read the file now (also done on file events and by polling). */
  reload(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Read a JSON file and watch it with `fs.watch` on its directory (so editors' atomic renames are
 * seen) and a polling fallback. A content that does not parse is reported, never delivered.
 *
 * @throws MeshError `MESH_CONFIG_INVALID` (field `MESH_CONFIG_FILE`) when the file cannot be read
 * or parsed at start.
 */
export function watchJsonFile(options: JsonFileOptions): JsonFile {
  return new JsonFileImpl(options);
}

class JsonFileImpl implements JsonFile {
  readonly path: string;
  readonly #options: JsonFileOptions;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #versions = createEmitter<JsonFileVersion>();
  readonly #errors = createEmitter<MeshError>();
  #current: JsonFileVersion;
  #lastText: string;
  /**
   * The error reported since the last delivered version, if any. Readers mark what they serve
   * stale on an error, and only a delivered version tells them the file is good again: so after
   * a failed read (deleted, unreadable) the same text as before is delivered, not skipped as
   * unchanged. After a parse failure the unchanged text is still the half-written one: skipped.
   */
  #failed: 'read' | 'parse' | undefined;
  /**
   * The read failure reported last (its code and message): the same failure met again — at each
   * poll while a directory stays unreadable, or by a `reload()` — is not reported again.
   */
  #readFailure: string | undefined;
  #lastStat = '';
  #watcher: FSWatcher | undefined;
  /** Watches of the directories the path's symlinks lead through (a file linked from elsewhere). */
  #linkWatchers: FSWatcher[] = [];
  /** What the watches were set up for (the real directory and the link directories): see {@link #watchKey}. */
  #watched = '';
  #poll: Timer | undefined;
  #debounce: Timer | undefined;
  /** When the first event of the pending debounce came: the wait is bounded from there. */
  #pendingSince: number | undefined;
  /** An event for the file's own name came during the debounce period. */
  #named = false;
  /** The read under way, if any. */
  #reading: Promise<void> | undefined;
  /** The read queued behind {@link #reading}, for callers that came while it was under way. */
  #queued: Promise<void> | undefined;
  #closed = false;

  constructor(options: JsonFileOptions) {
    this.#options = options;
    this.path = resolve(options.path);
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? noopLogger;
    let text: string;
    try {
      const st = statSync(this.path);
      if (st.size > MAX_CONFIG_BYTES)
        throw new Error(`file is ${st.size} bytes; the limit is ${MAX_CONFIG_BYTES}`);
      text = readFileSync(this.path, 'utf8');
      this.#lastStat = statKey(st);
    } catch (error) {
      throw configError(
        'MESH_CONFIG_FILE',
        `a readable JSON config file (${(error as Error).message})`,
        options.path,
      );
    }
    this.#current = { version: 1, value: this.#json(text) };
    this.#lastText = text;
    this.#startWatching();
  }

  current(): JsonFileVersion {
    return this.#current;
  }

  onVersion(listener: (v: JsonFileVersion) => void): Disposable {
    return this.#versions.event(listener);
  }

  onError(listener: (error: MeshError) => void): Disposable {
    return this.#errors.event(listener);
  }

  #json(text: string): unknown {
    try {
      // A byte-order mark, as some editors write at the start of a UTF-8 file, is not JSON but
      // not content either (Node's own JSON `require` drops it too).
      return JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
    } catch (error) {
      throw new MeshError(
        'MESH_CONFIG_INVALID',
        `config file ${this.#options.path}: not valid JSON (${(error as Error).message}; ${text.length} bytes, possibly half-written)`,
        { details: { field: '$', value: text.length > 80 ? `${text.slice(0, 80)}…` : text } },
      );
    }
  }

  #startWatching(): void {
    const interval = this.#options.pollIntervalMs ?? 2000;
    this.#watch();
    const tick = (): void => {
      if (this.#closed) return;
      void this.#pollOnce().finally(() => {
        if (!this.#closed) this.#poll = this.#clock.setTimer(interval, tick);
      });
    };
    this.#poll = this.#clock.setTimer(interval, tick);
  }

  /**
   * (Re)start the watches for where the path leads now. A symlink on the way that is re-pointed
   * (a deploy's `current -> release-2`, a ConfigMap's `..data`) moves the file to another directory:
   * after each read the watches follow it when that changed.
   */
  #watch(): void {
    const { key, links } = this.#watchPlan();
    if (key === this.#watched) return;
    this.#watched = key;
    this.#watcher?.close();
    this.#watcher = undefined;
    for (const w of this.#linkWatchers.splice(0)) w.close();
    try {
      // Watch the directory: editors and deploy tools replace files by rename, which a watch on
      // the file itself would lose. An event for another name may still change what the path
      // reads: a Kubernetes ConfigMap swaps its `..data` symlink (`mesh.json -> ..data/mesh.json`)
      // and fires only for `..data_tmp` / `..data`. Those are checked by stat first, cheaply.
      const file = basename(this.path);
      const watcher = watch(dirname(this.path), { persistent: false }, (_event, name) => {
        this.#schedule(name === null || name.toString() === file);
      });
      watcher.on('error', (error) => {
        this.#logger.warn('config file watch failed; polling only', { path: this.path, error });
        watcher.close();
        if (this.#watcher === watcher) this.#watcher = undefined;
      });
      this.#watcher = watcher;
    } catch (error) {
      this.#logger.warn('config file cannot be watched; polling', { path: this.path, error });
    }
    // The directories the path's symlinks lie in (a file linked from elsewhere, a directory on the
    // way that is a link): a change there changes what the path reads (stat first).
    for (const dir of links) {
      try {
        const w = watch(dir, { persistent: false }, () => this.#schedule(false));
        w.on('error', () => w.close());
        this.#linkWatchers.push(w);
      } catch {
        // The poll still sees it.
      }
    }
  }

  /** Where the path leads now: its real directory, and the directories of the links on the way. */
  #watchPlan(): { key: string; links: string[] } {
    const own = dirname(this.path);
    const links = new Set(linkDirectories(this.path));
    // A directory on the way that is itself a link (`cur/mesh.json`, `cur -> rel1`): the directory
    // holding the link sees it re-pointed.
    for (let d = own, up = dirname(own); d !== up; d = up, up = dirname(up)) {
      try {
        if (lstatSync(d).isSymbolicLink()) links.add(up);
      } catch {
        // A missing directory: the poll sees it come back.
      }
    }
    let real = own;
    try {
      // With its inode and birth time: a directory deleted and made again (`rm -rf cfg; mkdir
      // cfg`, which may reuse the inode number) is another one, and a watch on the old one hears
      // nothing more.
      const st = statSync(own);
      real = `${realpathSync(own)}#${st.ino}:${st.birthtimeMs}`;
    } catch {
      // As given.
    }
    links.delete(own);
    const list = [...links].sort();
    return { key: [real, ...list].join('\n'), links: list };
  }

  async #pollOnce(): Promise<void> {
    try {
      const key = statKey(await fsPromises().stat(this.path));
      // After a failed read the file is read again even when its stat is unchanged: permissions
      // fixed (`chmod`, a directory made traversable again) change neither its time, size nor inode.
      if (key !== this.#lastStat || this.#failed === 'read') await this.reload();
    } catch {
      if (this.#lastStat !== 'missing') await this.reload();
    }
  }

  /**
   * Read the file once the events stop for the debounce period: whatever it holds when `named`
   * (an event for the file itself), or only when its stat changed (an event for another name).
   */
  #schedule(named: boolean): void {
    if (this.#closed) return;
    this.#debounce?.cancel();
    this.#named ||= named;
    // Bounded: a busy neighbour (a log file written every few ms in the same directory) must not
    // keep restarting the wait until the poll finds the change.
    const debounce = this.#options.debounceMs ?? 20;
    const now = this.#clock.now();
    this.#pendingSince ??= now;
    const wait = Math.max(0, Math.min(debounce, this.#pendingSince + debounce * MAX_DEBOUNCES - now));
    this.#debounce = this.#clock.setTimer(wait, () => {
      this.#debounce = undefined;
      this.#pendingSince = undefined;
      const reread = this.#named;
      this.#named = false;
      void (reread ? this.reload() : this.#pollOnce());
    });
  }

  /**
   * Resolves once a read that began after this call has been handled. A read already under way may
   * have read the file before the caller's write: one more read is queued behind it, shared by
   * every call made meanwhile (the watcher's and the poll's too), and its promise is returned.
   */
  reload(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#reading === undefined) return this.#startRead();
    this.#queued ??= this.#reading.then(() => {
      this.#queued = undefined;
      // A read started since the one awaited began after every queued call: it will do.
      return this.#reading ?? this.#startRead();
    });
    return this.#queued;
  }

  #startRead(): Promise<void> {
    const reading = this.#read()
      .catch((error: unknown) => this.#logger.error('config file read failed', { path: this.path, error }))
      .finally(() => {
        if (this.#reading === reading) this.#reading = undefined;
      });
    this.#reading = reading;
    return reading;
  }

  async #read(): Promise<void> {
    if (this.#closed) return;
    let text: string;
    try {
      const st = await fsPromises().stat(this.path);
      this.#lastStat = statKey(st);
      if (st.size > MAX_CONFIG_BYTES)
        throw new Error(`file is ${st.size} bytes; the limit is ${MAX_CONFIG_BYTES}`);
      text = await fsPromises().readFile(this.path, 'utf8');
    } catch (error) {
      if (!this.#closed) this.#watch();
      const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
      if (missing) {
        if (this.#lastStat === 'missing') return;
        this.#lastStat = 'missing';
      }
      this.#failed = 'read';
      const failure = `${(error as NodeJS.ErrnoException).code ?? ''}:${(error as Error).message}`;
      if (failure === this.#readFailure) return;
      this.#readFailure = failure;
      this.#errors.fire(
        new MeshError(
          'MESH_CONFIG_INVALID',
          missing
            ? `config file ${this.#options.path} was deleted; keeping the last good configuration`
            : `config file ${this.#options.path} cannot be read: ${(error as Error).message}; keeping the last good configuration`,
          { cause: error, details: { field: 'MESH_CONFIG_FILE', value: this.#options.path } },
        ),
      );
      return;
    }
    if (this.#closed) return;
    this.#readFailure = undefined;
    // The watches follow where the path leads now, before anyone hears of this version: a change
    // made right after it must be seen.
    this.#watch();
    if (text === this.#lastText && this.#failed !== 'read') return;
    this.#lastText = text;
    let value: unknown;
    try {
      value = this.#json(text);
    } catch (error) {
      this.#failed = 'parse';
      this.#errors.fire(error as MeshError);
      return;
    }
    this.#failed = undefined;
    this.#current = { version: this.#current.version + 1, value };
    this.#versions.fire(this.#current);
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#watcher?.close();
      for (const w of this.#linkWatchers.splice(0)) w.close();
      this.#poll?.cancel();
      this.#debounce?.cancel();
      this.#versions.clear();
      this.#errors.clear();
    }
    return Promise.resolve();
  }
}

/** The longest a read waits for events to stop: this many debounce periods from the first event. */
const MAX_DEBOUNCES = 10;

/** `node:fs/promises`, at the first poll rather than when the mesh is imported. */
function fsPromises(): typeof import('node:fs/promises') {
  return process.getBuiltinModule('node:fs/promises');
}

function statKey(st: { mtimeMs: number; size: number; ino: number }): string {
  return `${st.mtimeMs}:${st.size}:${st.ino}`;
}

/**
 * The directories, other than the path's own, that the symlinks on the way from `path` to its file
 * lie in (at most 8 hops): a change there (a link re-pointed) changes what the path reads.
 */
function linkDirectories(path: string): string[] {
  const own = dirname(path);
  const dirs = new Set<string>();
  let at = path;
  for (let hop = 0; hop < 8; hop++) {
    let target: string;
    try {
      if (!lstatSync(at).isSymbolicLink()) break;
      target = resolve(dirname(at), readlinkSync(at));
    } catch {
      break;
    }
    const dir = dirname(target);
    if (dir !== own) dirs.add(dir);
    at = target;
  }
  return [...dirs];
}
