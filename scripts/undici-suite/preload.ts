/**
 * Loaded (with `--import`) into every process of undici's own test files: makes the mesh the
 * global dispatcher, so every test that uses undici's default dispatcher goes through
 * `mesh.dispatcher`. `UNDICI_SUITE_MODE` picks how:
 *
 * - `baseline`: nothing (plain undici, the reference counts).
 * - `passthrough`: `createMesh({ env: {} })` and `mesh.install()`: every origin is unknown to the
 *   mesh and passes through its dispatcher.
 * - `services`: every `http://127.0.0.1:PORT`, `http://localhost:PORT` and `http://[::1]:PORT` origin
 *   becomes a mesh service. The mesh never names IP literals or `localhost` (RFC 6761), so an
 *   interceptor in front of `mesh.dispatcher` renames the origin to `http://undici-suite-N`, and a
 *   custom resolver (`createMesh({ resolvers })`) answers that name with the original host and port.
 *   `hostHeader: 'endpoint'` keeps the `Host` header the tests expect (`localhost:PORT`).
 */
import { createEndpoint, createEndpointSet, type Resolver } from '@proxyless/core';
import { createMesh } from 'proxyless';
import type { Dispatcher } from 'undici';

const mode = process.env.UNDICI_SUITE_MODE ?? 'baseline';

/** Service name → the loopback endpoint it stands for. */
const byService = new Map<string, { address: string; port: number }>();
/** Original origin → service name. */
const byOrigin = new Map<string, string>();

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

function serviceFor(origin: string): string | undefined {
  const known = byOrigin.get(origin);
  if (known !== undefined) return known;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' || !LOOPBACK.has(url.hostname)) return undefined;
  const name = `undici-suite-${byOrigin.size + 1}`;
  const address = url.hostname === '[::1]' ? '::1' : url.hostname;
  byService.set(name, { address, port: Number(url.port || 80) });
  byOrigin.set(origin, name);
  return name;
}

const loopbackResolver: Resolver = {
  name: 'undici-suite',
  match: (host) => (byService.has(host) ? host : undefined),
  watch(service, listener) {
    let live = true;
    const target = byService.get(service);
    setImmediate(() => {
      if (!live || target === undefined) return;
      const endpoints = [createEndpoint({ address: target.address, port: target.port })];
      listener({
        kind: 'endpoints',
        set: createEndpointSet({
          service,
          version: 1,
          endpoints,
          source: 'undici-suite',
          updatedAt: Date.now(),
        }),
      });
    });
    return {
      dispose() {
        live = false;
      },
    };
  },
  close: () => Promise.resolve(),
};

/** Renames loopback origins to their mesh service before the mesh sees them. */
const renameLoopback =
  (dispatch: Dispatcher['dispatch']): Dispatcher['dispatch'] =>
  (opts, handler) => {
    const origin = opts.origin === undefined ? undefined : String(opts.origin).replace(/\/+$/, '');
    const service = origin === undefined ? undefined : serviceFor(origin);
    return dispatch(service === undefined ? opts : { ...opts, origin: `http://${service}` }, handler);
  };

if (mode === 'passthrough') {
  const mesh = createMesh({ env: {} });
  mesh.install();
} else if (mode === 'services') {
  const mesh = createMesh({ env: {}, resolvers: [loopbackResolver], hostHeader: 'endpoint' });
  const dispatcher = mesh.dispatcher.compose(renameLoopback);
  (globalThis as Record<symbol, unknown>)[Symbol.for('undici.globalDispatcher.1')] = dispatcher;
} else if (mode !== 'baseline') {
  throw new Error(`UNDICI_SUITE_MODE must be baseline, passthrough or services, not "${mode}"`);
}
