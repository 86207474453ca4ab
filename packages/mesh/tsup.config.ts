import { copyFileSync } from 'node:fs';
import { defineConfig } from 'tsup';
import { asciiOutput } from '../../scripts/tsup-ascii.js';

/**
 * The CommonJS files the workspace packages keep next to their chunks (each `require`s the parts of
 * a third-party package it names; why one file: see each): external in the bundle, and copied next
 * to this package's chunks, where the bundled code looks for them.
 */
const PARTS = {
  'undici-parts.cjs': '../core/src/undici-parts.cjs',
  'prom-parts.cjs': '../telemetry/src/prom-parts.cjs',
  'opossum-part.cjs': '../resilience/src/opossum-part.cjs',
} as const;

/**
 * ESM and CJS, each split into shared chunks so that every entry of one format (`index`,
 * `testing`) uses the same classes: an error thrown by a testing helper is `instanceof MeshError`
 * of the public entry in CommonJS too. No source maps in the package: the output is unminified,
 * readable JavaScript, and maps of it would double the tarball for little gain.
 *
 * The workspace packages (`@proxyless/core`, `discovery`, `balancer`, `resilience`, `telemetry`)
 * are bundled into the entries: Node resolves, reads, compiles and links every ES module file of
 * every package an import reaches, and three files (an entry and the two chunks it shares with
 * `testing`) instead of twelve across six packages make a cold `import('proxyless')` about 8 ms
 * faster (docs/architecture.md, "One file per entry"). They stay dependencies, pinned to this
 * package's version, for their type declarations, which the `.d.ts` files import; a `MeshError`
 * from either copy is `instanceof MeshError` of the other, and state that must be one per process
 * is kept under `Symbol.for` keys (`processWide`).
 */
export default defineConfig({
  entry: ['src/index.ts', 'src/testing.ts', 'src/otel.ts'],
  format: ['esm', 'cjs'],
  splitting: true,
  dts: true,
  clean: true,
  sourcemap: false,
  target: 'node20',
  plugins: [asciiOutput()],
  // TypeBox's own build is ~250 small modules (about as long to load as undici); bundled, only
  // the parts in use are kept, in one file. The package stays a dependency for the types.
  noExternal: [/^@sinclair\/typebox/, /^@proxyless\//],
  // `import.meta.url` in the CommonJS build (the bundled packages load undici, etcd3 and the
  // OpenTelemetry packages with it).
  shims: true,
  // telemetry's `otel` entry imports its shared chunk (esbuild's `__require` helper) for no side
  // effect; bundled, that import is dropped on purpose.
  esbuildOptions(options) {
    options.logOverride = { ...options.logOverride, 'ignored-bare-import': 'silent' };
  },
  esbuildPlugins: [
    {
      name: 'workspace-parts-external',
      setup(build) {
        build.onResolve({ filter: /^\.\/(undici-parts|prom-parts|opossum-part)\.cjs$/ }, (args) => ({
          path: args.path,
          external: true,
        }));
      },
    },
  ],
  onSuccess: async () => {
    for (const [name, from] of Object.entries(PARTS)) copyFileSync(from, `dist/${name}`);
  },
});
