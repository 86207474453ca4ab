/**
 * `mesh.install()`: a mesh's dispatcher as undici's global dispatcher (Node's global `fetch` reads
 * it too), undone by the function it returns. Installs of several meshes stack; one undone out of
 * order is skipped when the one above it is undone, and the dispatcher before both comes back.
 */
import { undiciAgent } from '@proxyless/core';

const GLOBAL_DISPATCHER = Symbol.for('undici.globalDispatcher.1');

/** One `install()` not yet undone, or undone while another install sat on top of it. */
interface Install {
  readonly dispatcher: unknown;
  /** The global dispatcher it replaced. */
  readonly previous: unknown;
  undone: boolean;
}

/** The installs of every mesh of this process, in order (undone ones wait until uncovered). */
const installs: Install[] = [];

/** Undone installs with no install above them are kept for nothing: drop them. */
function dropUndoneTop(): void {
  while (installs.length > 0 && (installs.at(-1) as Install).undone) installs.pop();
}

function undoneInstallOf(dispatcher: unknown): Install | undefined {
  for (let i = installs.length - 1; i >= 0; i--) {
    const r = installs[i] as Install;
    if (r.dispatcher === dispatcher) return r.undone ? r : undefined;
  }
  return undefined;
}

/** Make `dispatcher` the global dispatcher; the function returned undoes it (once). */
export function installGlobally(dispatcher: unknown): () => void {
  const g = globalThis as Record<symbol, unknown>;
  const record: Install = { dispatcher, previous: g[GLOBAL_DISPATCHER], undone: false };
  installs.push(record);
  g[GLOBAL_DISPATCHER] = dispatcher;
  return () => {
    if (record.undone) return;
    record.undone = true;
    // Only undo our own install when it is on top: a later install stays in place, and skips
    // this one when it is undone in turn (restoring what this one replaced).
    if (installs.at(-1) !== record) return;
    if (g[GLOBAL_DISPATCHER] !== dispatcher) {
      // The caller put a dispatcher of their own over this install (a test's MockAgent, say): it
      // stays. This install is over: no record of it is kept (it would pin a closed mesh, and
      // skip the caller's own `setGlobalDispatcher(mesh.dispatcher)` on a later undo).
      dropUndoneTop();
      return;
    }
    installs.pop();
    // An install undone while another sat on top of it is not brought back: what it replaced is.
    let restore = record.previous;
    for (let under = undoneInstallOf(restore); under !== undefined; under = undoneInstallOf(restore)) {
      installs.splice(installs.indexOf(under), 1);
      restore = under.previous;
    }
    // Nothing was installed before: undici's own default comes back, a plain `Agent`. Deleting the
    // global is not enough: Node's bundled undici sets its default only when it first loads, so
    // if that happened while the mesh was installed, its `fetch` would find no dispatcher at all.
    g[GLOBAL_DISPATCHER] = restore === undefined ? new (undiciAgent())() : restore;
    dropUndoneTop();
  };
}
