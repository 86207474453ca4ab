import { createRequire } from 'node:module';
import { MeshError } from '@proxyless/core';

/** The `etcd3` module, as far as the etcd resolver and registrar use it. */
export type Etcd3Module = Pick<typeof import('etcd3'), 'Etcd3' | 'isRecoverableError'>;

let loading: Promise<Etcd3Module> | undefined;

/**
 * Load the optional peer dependency `etcd3` (with `@grpc/grpc-js` and `protobufjs` behind it) on
 * first use, so that an application that never selects the etcd registry neither installs nor loads
 * it. Rejects with `MESH_CONFIG_INVALID` naming the package to install when it is missing.
 */
export function loadEtcd3(): Promise<Etcd3Module> {
  loading ??= importEtcd3().catch((error: unknown) => {
    loading = undefined; // a later call tries again (the package may have been installed since)
    throw missingPeer(error);
  });
  return loading;
}

/**
 * Throw `MESH_CONFIG_INVALID` at once when `etcd3` cannot be resolved from this package, so that
 * selecting the etcd registry without it fails when the mesh is created rather than at the first
 * call. Where the location of this module is unknown (some bundles) the check is left to the load.
 */
export function assertEtcd3Installed(): void {
  const from: unknown = import.meta.url; // the CJS build gets a shim from the build
  if (typeof from !== 'string' || from === '') return;
  let resolve: (id: string) => string;
  try {
    resolve = createRequire(from).resolve;
  } catch {
    return;
  }
  try {
    resolve('etcd3');
  } catch (error) {
    throw missingPeer(error);
  }
}

async function importEtcd3(): Promise<Etcd3Module> {
  try {
    const mod = (await import('etcd3')) as Etcd3Module & { default?: Etcd3Module };
    // Node exposes a CommonJS module's exports as `default`; its named exports when it can see them.
    const Etcd3 = mod.Etcd3 ?? mod.default?.Etcd3;
    const isRecoverableError = mod.isRecoverableError ?? mod.default?.isRecoverableError;
    if (typeof Etcd3 !== 'function') throw new TypeError('the etcd3 module has no Etcd3 class');
    if (typeof isRecoverableError !== 'function')
      throw new TypeError('the etcd3 module has no isRecoverableError function');
    return { Etcd3, isRecoverableError };
  } catch (error) {
    // biome-ignore lint/complexity/noUselessCatch: the try block tells bundlers (esbuild) that an unresolvable `etcd3` is expected.
    throw error;
  }
}

function missingPeer(error: unknown): MeshError {
  const code = (error as { code?: unknown } | null)?.code;
  const notFound = code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
  const reason = error instanceof Error ? error.message : String(error);
  return new MeshError(
    'MESH_CONFIG_INVALID',
    notFound
      ? 'registry: "etcd" needs the optional peer dependency etcd3, which is not installed: npm install etcd3'
      : `registry: "etcd" needs the optional peer dependency etcd3, which failed to load (${reason}): npm install etcd3`,
    {
      cause: error,
      details: {
        field: 'registry',
        value: 'etcd',
        issues: [
          { field: 'registry', value: 'etcd', expected: 'the etcd3 package installed (npm install etcd3)' },
        ],
      },
    },
  );
}
