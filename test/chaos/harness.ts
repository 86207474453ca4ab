import { type ChildProcess, fork } from 'node:child_process';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Mesh } from 'proxyless';

const BACKEND = fileURLToPath(new URL('./backend.mjs', import.meta.url));

/** What a backend can be told to do (see backend.mjs). */
export interface BackendMode {
  delayMs?: number;
  errorEvery?: number;
  reset?: boolean;
  hang?: boolean;
}

/** A backend in its own process on 127.0.0.1, steered over IPC. */
export interface Backend {
  readonly name: string;
  readonly port: number;
  readonly address: string;
  readonly pid: number;
  setMode(mode: BackendMode): Promise<void>;
  /** Requests received so far (the last figure, if the process is gone). */
  count(): Promise<{ requests: number; posts: number; postIds: string[] }>;
  signal(sig: 'SIGKILL' | 'SIGSTOP' | 'SIGCONT' | 'SIGTERM'): void;
  readonly alive: boolean;
  close(): Promise<void>;
}

/** Start a backend process and wait until it listens. */
export async function startBackend(name: string, mode: BackendMode = {}): Promise<Backend> {
  const child: ChildProcess = fork(BACKEND, [name], {
    execArgv: [],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`backend ${name} did not start in 10 s`)), 10_000);
    child.once('message', (m: { type?: string; port?: number }) => {
      clearTimeout(timer);
      if (m.type === 'ready' && typeof m.port === 'number') resolve(m.port);
      else reject(new Error(`backend ${name} sent ${JSON.stringify(m)}`));
    });
    child.once('exit', (code) => reject(new Error(`backend ${name} exited (${code})`)));
  });
  let seq = 0;
  let alive = true;
  let last = { requests: 0, posts: 0, postIds: [] as string[] };
  child.on('exit', () => {
    alive = false;
  });
  const call = <T>(msg: Record<string, unknown>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = ++seq;
      const timer = setTimeout(() => {
        child.off('message', on);
        reject(new Error(`backend ${name} did not answer ${String(msg.type)}`));
      }, 5000);
      const on = (m: { id?: number }): void => {
        if (m.id !== id) return;
        clearTimeout(timer);
        child.off('message', on);
        resolve(m as T);
      };
      child.on('message', on);
      child.send({ ...msg, id });
    });
  const backend: Backend = {
    name,
    port,
    address: `127.0.0.1:${port}`,
    pid: child.pid ?? 0,
    get alive() {
      return alive;
    },
    setMode: async (m) => {
      await call({ type: 'mode', mode: m });
    },
    count: async () => {
      if (!alive) return last;
      last = await call<typeof last>({ type: 'count' });
      return last;
    },
    signal: (sig) => {
      child.kill(sig);
    },
    close: async () => {
      if (!alive) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGCONT');
      child.send({ type: 'close' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(timer);
    },
  };
  await backend.setMode(mode);
  return backend;
}

/** One request as the caller saw it. */
export interface Sample {
  /** Start, ms since the load began. */
  readonly at: number;
  readonly ms: number;
  /** `undefined` when the request succeeded (2xx and the whole body read). */
  readonly error: string | undefined;
  /** Where it failed: before the response head, or while reading the body. */
  readonly phase: 'head' | 'body' | undefined;
  readonly method: string;
}

export interface LoadOptions {
  url: string;
  callers: number;
  /** Stop after this many requests… */
  maxRequests: number;
  /** …or after this long, whichever comes first. */
  maxMs: number;
  init?: (i: number) => RequestInit;
  /** Called (at most once per request) with the number of requests started; may start a fault. */
  onProgress?: (started: number, elapsedMs: number) => void;
  /** Stop early once this says so (checked before each request). */
  shouldStop?: () => boolean;
}

/**
 * The samples of a load while it runs, kept off the JavaScript heap: one column of a growable
 * typed array per field, strings (error codes, methods) as indexes into a small table. A soak
 * measures the heap of the process the mesh runs in, and an object per request kept by the load
 * itself (about 90 bytes each: 9 MB over a minute at 1,900 requests/s) would be counted as the
 * mesh's growth. The `Sample` objects are made once the load is over.
 */
export class SampleLog {
  #n = 0;
  #at = new Float64Array(1024);
  #ms = new Float64Array(1024);
  /** Index into `#strings` + 1 (0: none), of the error and of the method. */
  #error = new Uint32Array(1024);
  #method = new Uint32Array(1024);
  #phase = new Uint8Array(1024);
  readonly #strings: string[] = [];
  readonly #index = new Map<string, number>();

  get length(): number {
    return this.#n;
  }

  add(s: Sample): void {
    if (this.#n === this.#at.length) this.#grow();
    const i = this.#n++;
    this.#at[i] = s.at;
    this.#ms[i] = s.ms;
    this.#error[i] = s.error === undefined ? 0 : this.#intern(s.error);
    this.#method[i] = this.#intern(s.method);
    this.#phase[i] = s.phase === undefined ? 0 : s.phase === 'head' ? 1 : 2;
  }

  /** The samples as objects, in the order they were added. */
  samples(): Sample[] {
    const out: Sample[] = [];
    for (let i = 0; i < this.#n; i++) {
      const e = this.#error[i] as number;
      const p = this.#phase[i] as number;
      out.push({
        at: this.#at[i] as number,
        ms: this.#ms[i] as number,
        error: e === 0 ? undefined : this.#strings[e - 1],
        phase: p === 0 ? undefined : p === 1 ? 'head' : 'body',
        method: this.#strings[(this.#method[i] as number) - 1] as string,
      });
    }
    return out;
  }

  #intern(value: string): number {
    let k = this.#index.get(value);
    if (k === undefined) {
      this.#strings.push(value);
      k = this.#strings.length;
      this.#index.set(value, k);
    }
    return k;
  }

  #grow(): void {
    const size = this.#at.length * 2;
    const grown = <T extends Float64Array | Uint32Array | Uint8Array>(a: T, make: (n: number) => T): T => {
      const b = make(size);
      b.set(a);
      return b;
    };
    this.#at = grown(this.#at, (n) => new Float64Array(n));
    this.#ms = grown(this.#ms, (n) => new Float64Array(n));
    this.#error = grown(this.#error, (n) => new Uint32Array(n));
    this.#method = grown(this.#method, (n) => new Uint32Array(n));
    this.#phase = grown(this.#phase, (n) => new Uint8Array(n));
  }
}

/** Client-side load through `mesh.fetch`: bounded in count and time. */
export async function runLoad(mesh: Mesh, o: LoadOptions): Promise<{ samples: Sample[]; t0: number }> {
  const t0 = performance.now();
  const log = new SampleLog();
  let started = 0;
  const caller = async (): Promise<void> => {
    while (started < o.maxRequests && performance.now() - t0 < o.maxMs && !o.shouldStop?.()) {
      const i = started++;
      o.onProgress?.(started, performance.now() - t0);
      const s = performance.now();
      let error: string | undefined;
      let phase: Sample['phase'];
      const init = o.init?.(i);
      try {
        phase = 'head';
        const res = await mesh.fetch(o.url, init);
        phase = 'body';
        await res.arrayBuffer();
        if (res.status >= 300) error = `HTTP_${res.status}`;
      } catch (e) {
        error = errorCode(e);
      }
      const end = performance.now();
      // A call refused by the mesh itself (an open breaker, a limit) settles in microtasks: a
      // caller that starts the next one at once never lets the event loop reach its timers or
      // I/O, so no response, no fault's end and no breaker timer would ever be seen. Requests
      // that reach a server arrive through the event loop; a failed call yields to it here.
      if (error !== undefined) await yieldToLoop();
      log.add({
        at: s - t0,
        ms: end - s,
        error,
        phase: error === undefined ? undefined : phase,
        method: init?.method ?? 'GET',
      });
    }
  };
  await Promise.all(Array.from({ length: o.callers }, caller));
  return { samples: log.samples(), t0 };
}

/** The mesh error code of a failure (fetch wraps mesh errors in `TypeError: fetch failed`). */
export function errorCode(e: unknown): string {
  let cur: unknown = e;
  for (let depth = 0; depth < 4 && cur !== undefined && cur !== null; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return e instanceof Error ? e.message : String(e);
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

/** p50/p99 of the samples that started in [from, to). */
export function latency(samples: readonly Sample[], from: number, to: number): { p50: number; p99: number } {
  const ms = samples.filter((s) => s.at >= from && s.at < to).map((s) => s.ms);
  return { p50: percentile(ms, 50), p99: percentile(ms, 99) };
}

/** Error codes with their counts, most frequent first. */
export function errorCounts(samples: readonly Sample[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const s of samples) if (s.error !== undefined) m.set(s.error, (m.get(s.error) ?? 0) + 1);
  return new Map([...m].sort((a, b) => b[1] - a[1]));
}

/**
 * Time to recover: from `from` (the fault's start for a permanent fault, its end for a transient
 * one) to the end of the last 250 ms window that had an error or a p99 above `slowMs`; 0 when none.
 */
export function recoveryMs(samples: readonly Sample[], from: number, slowMs: number): number {
  const bucket = 250;
  const windows = new Map<number, number[]>();
  const errors = new Set<number>();
  for (const s of samples) {
    const end = s.at + s.ms;
    if (end < from) continue;
    const w = Math.floor((end - from) / bucket);
    if (s.error !== undefined) errors.add(w);
    const list = windows.get(w) ?? [];
    list.push(s.ms);
    windows.set(w, list);
  }
  let last = -1;
  for (const [w, list] of windows) {
    if (errors.has(w) || percentile(list, 99) > slowMs) last = Math.max(last, w);
  }
  return (last + 1) * bucket;
}

/** Sum of requests received by the backends. */
export async function backendAttempts(backends: readonly Backend[]): Promise<number> {
  let n = 0;
  for (const b of backends) n += (await b.count()).requests;
  return n;
}

/** Real-time sleep for the suite's phases (the suite drives real processes on real time). */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
