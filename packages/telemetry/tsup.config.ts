import { copyFileSync } from 'node:fs';
import { defineConfig } from 'tsup';
import { asciiOutput } from '../../scripts/tsup-ascii.js';

/**
 * ESM and CJS, each split into shared chunks so that every entry of one format (`index`, `otel`)
 * uses the same classes. No source maps in the package: the output is unminified, readable
 * JavaScript, and maps of it would double the tarball for little gain.
 */
export default defineConfig({
  entry: ['src/index.ts', 'src/otel.ts'],
  format: ['esm', 'cjs'],
  splitting: true,
  dts: true,
  clean: true,
  sourcemap: false,
  target: 'node20',
  plugins: [asciiOutput()],
  // `import.meta.url` in the CommonJS build (otel-api.ts loads the OpenTelemetry API with it).
  shims: true,
  // TypeBox's own build is ~250 small modules (about as long to load as undici); bundled, only
  // the parts in use are kept, in one file. The package stays a dependency for the types.
  noExternal: [/^@sinclair\/typebox/],
  // prom-client's files are required by src/prom-parts.cjs (why: see there). It stays a file of
  // its own next to the chunks, in both formats: bundled into the ESM output, its `require` calls
  // would become esbuild's throwing `__require` shim.
  esbuildPlugins: [
    {
      name: 'prom-parts-external',
      setup(build) {
        build.onResolve({ filter: /^\.\/prom-parts\.cjs$/ }, (args) => ({ path: args.path, external: true }));
      },
    },
  ],
  onSuccess: async () => {
    copyFileSync('src/prom-parts.cjs', 'dist/prom-parts.cjs');
  },
});
